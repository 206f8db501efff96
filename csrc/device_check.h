// Device checks shared by the ops' argument checks (CPU and CUDA builds).
//
// A tensor on another device than the op's anchor tensor is a bad argument: a
// ValueError in Python (TORCH_CHECK_VALUE), like the ops' other argument checks,
// with the wording of balancedtorch/ops/_fake.py's check_same_device, which the
// fake (meta) kernels raise for the same call.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace balancedtorch {

// "<op>: <name> is on <device> but <anchor_name> is on <device>"
inline void check_same_device(
    const char* op, const char* name, const at::Tensor& t, const char* anchor_name, const at::Tensor& anchor) {
  TORCH_CHECK_VALUE(
      t.device() == anchor.device(),
      op,
      ": ",
      name,
      " is on ",
      t.device(),
      " but ",
      anchor_name,
      " is on ",
      anchor.device());
}

}  // namespace balancedtorch
