// class_counts: validated histogram of integer class labels.
// Shared by the CPU and CUDA kernels: argument checks (host) and the per-label
// decision (host and device).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

namespace balancedtorch {
namespace sampling {

// What one label contributes to the histogram.
enum class LabelKind : int8_t { kCount, kIgnore, kInvalid };

template <typename scalar_t>
C10_HOST_DEVICE inline LabelKind classify_label(
    scalar_t label, int64_t num_classes, bool has_ignore, int64_t ignore_index) {
  const int64_t v = static_cast<int64_t>(label);
  if (has_ignore && v == ignore_index) {
    return LabelKind::kIgnore;
  }
  return (v >= 0 && v < num_classes) ? LabelKind::kCount : LabelKind::kInvalid;
}

// True when no value of the label dtype can fall outside [0, num_classes),
// so the kernels need not look for invalid labels at all.
inline bool labels_always_valid(c10::ScalarType dtype, int64_t num_classes) {
  return dtype == c10::ScalarType::Byte && num_classes >= 256;
}

inline void check_class_counts_args(const at::Tensor& labels, int64_t num_classes) {
  const c10::ScalarType dt = labels.scalar_type();
  // the five dtypes the kernels are dispatched for (not uint16/32/64)
  TORCH_CHECK_TYPE(
      dt == c10::ScalarType::Byte || dt == c10::ScalarType::Char || dt == c10::ScalarType::Short ||
          dt == c10::ScalarType::Int || dt == c10::ScalarType::Long,
      "class_counts: labels must be an integer tensor (uint8, int8, int16, int32 or int64), got dtype ",
      labels.scalar_type());
  TORCH_CHECK_VALUE(num_classes >= 0, "class_counts: num_classes must be >= 0, got ", num_classes);
}

inline void raise_invalid_label(
    int64_t index, int64_t value, int64_t num_classes, std::optional<int64_t> ignore_index) {
  std::string hint =
      ignore_index.has_value() ? " (or equal ignore_index=" + std::to_string(*ignore_index) + ")" : std::string();
  TORCH_CHECK_VALUE(
      false,
      "class_counts: labels must lie in [0, num_classes=",
      num_classes,
      ")",
      hint,
      ", got label ",
      value,
      " at flat index ",
      index);
}

}  // namespace sampling
}  // namespace balancedtorch
