// Module init and the operator schemas of the `balancedtorch` namespace.
//
// Every schema is defined here, once; each backend registers its kernels in
// its own TORCH_LIBRARY_IMPL file (csrc/<area>/cpu/*.cpp, csrc/<area>/cuda/*.cu),
// and fake kernels and autograd formulas are registered from Python. The CUDA
// files are simply left out of a CPU-only build.
#include <Python.h>

#include <string>

#include <torch/library.h>
#include <torch/version.h>

#include "augment/affine_color.h"
#include "cpu/buffer_pool.h"
#include "knn/distance_topk.h"
#include "loss/region_loss.h"
#include "loss/softmax_loss.h"

extern "C" {
// `import balancedtorch._C` loads this library, which runs the static
// TORCH_LIBRARY registrations below. The module itself holds nothing: every
// op is reached through torch.ops.balancedtorch.
PyMODINIT_FUNC PyInit__C(void) {
#ifdef BALANCEDTORCH_AVX2
  // Built for the building machine's AVX2; refuse clearly rather than crash
  // with an illegal instruction on a CPU without it.
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    PyErr_SetString(
        PyExc_ImportError,
        "balancedtorch._C was compiled with AVX2/FMA but this CPU lacks them; rebuild with "
        "BALANCEDTORCH_CPU_CAPABILITY=default pip install --no-build-isolation -e .");
    return nullptr;
  }
#endif
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",
      "balancedtorch native operators (registered as torch.ops.balancedtorch.*)",
      -1,
      nullptr,
  };
  return PyModule_Create(&module_def);
}
}

namespace balancedtorch {
namespace {

// Facts fixed when this binary was compiled (and whether the kNN bfloat16
// search runs on this CPU), as "key=value" pairs joined by ';'.
std::string build_info() {
  std::string info = "torch=" TORCH_VERSION;
#ifdef _OPENMP
  info += ";openmp=1";
#else
  info += ";openmp=0";
#endif
#ifdef BALANCEDTORCH_AVX2
  info += ";cpu_capability=avx2";
#else
  info += ";cpu_capability=default";
#endif
#ifdef BALANCEDTORCH_WITH_CUDA
  info += ";cuda=1";
#else
  info += ";cuda=0";
#endif
  info += ";cplusplus=" + std::to_string(__cplusplus);
  // a fact of this CPU and environment rather than of the build
  info += std::string(";knn_bf16=") + (knn::bf16_search_enabled() ? "1" : "0");
  return info;
}

// The integer codes of the enums the kernels take, declared once in the C++
// headers and read by Python at import (balancedtorch/_constants.py), so the
// two sides cannot disagree: "group.name=value;...".
std::string constants() {
  using namespace balancedtorch;
  std::string out;
  auto add = [&out](const char* key, int64_t value) {
    out += std::string(out.empty() ? "" : ";") + key + "=" + std::to_string(value);
  };
  add("reduction.none", loss::kReductionNone);
  add("reduction.mean", loss::kReductionMean);
  add("reduction.sum", loss::kReductionSum);
  add("activation.softmax", loss::kActivationSoftmax);
  add("activation.sigmoid", loss::kActivationSigmoid);
  add("activation.none", loss::kActivationNone);
  add("ce_kind.none", loss::kRegionNoCe);
  add("ce_kind.cross_entropy", loss::kRegionCe);
  add("ce_kind.focal", loss::kRegionFocal);
  add("interpolation.bilinear", augment::kBilinear);
  add("interpolation.nearest", augment::kNearest);
  return out;
}

}  // namespace

TORCH_LIBRARY(balancedtorch, m) {
  m.def("_build_info() -> str", &build_info);
  // The enum codes the kernels take (see constants() above).
  m.def("_constants() -> str", &constants);
  // The CPU buffer pool of large loss outputs (cpu/buffer_pool.h): free its
  // cached blocks (returns the bytes released) / the bytes it keeps now.
  m.def("_cpu_pool_release() -> int", &balancedtorch::cpu::release_cached);
  m.def("_cpu_pool_bytes() -> int", &balancedtorch::cpu::cached_bytes);
  // Histogram of integer labels with validation: labels outside
  // [0, num_classes) (other than ignore_index) raise a ValueError; labels
  // equal to ignore_index are never counted, whether or not it is a class.
  m.def("class_counts(Tensor labels, int num_classes, int? ignore_index=None) -> Tensor");
  // Exact k nearest neighbours (squared Euclidean), optionally within groups
  // and/or against a reference set; chunked within max_tile_bytes.
  m.def(
      "knn(Tensor x, int k, Tensor? groups=None, Tensor? ref=None, Tensor? ref_groups=None, "
      "int max_tile_bytes=268435456) -> (Tensor, Tensor)");
  // One step of the greedy farthest-first traversal (k-center), fused (see
  // csrc/knn/kcenter.h): d = squared distances of the rows of x (N, D),
  // float32/float64, to center (D,), summed in float64 in one fixed order on
  // every backend; returns (torch.minimum(min_dist, d) as a new float64 (N,)
  // tensor, the 0-d int64 index of its largest value on x's device: NaN
  // first, ties to the lowest index, -1 when N = 0). min_dist is not written.
  m.def("kcenter_update(Tensor x, Tensor center, Tensor min_dist) -> (Tensor, Tensor)");
  // Weighted sampling (CPU): Vose alias table and O(1) draws with replacement
  // from a counter-based stream keyed by a seed tensor; k draws without
  // replacement by Efraimidis-Spirakis keys from (N,) uniforms, in draw order.
  m.def("alias_table(Tensor weights) -> (Tensor, Tensor)");
  m.def("alias_sample(Tensor prob, Tensor alias, Tensor seed, int num_samples) -> Tensor");
  // The same table packed in one int64 word per cell (N < 2^31) and its sampler.
  m.def("alias_pack(Tensor prob, Tensor alias) -> Tensor");
  m.def("alias_sample_packed(Tensor packed, Tensor seed, int num_samples) -> Tensor");
  m.def("sample_without_replacement(Tensor weights, Tensor uniforms, int num_samples) -> Tensor");
  // Fused softmax cross-entropy / focal / logit-adjusted loss (see
  // csrc/loss/softmax_loss.h) on the adjusted logits
  //   scale * (input * logit_scale + logit_bias - margin[y] * onehot(y))
  // (logit_scale, logit_bias, margin: per class (C,), absent = 1, 0, 0; the
  // margin needs class-index targets; scale > 0: LDAM, VS, Balanced Softmax).
  // Returns the reduced loss and, when compute_grad, d(loss)/d(input) already
  // scaled for the reduction (an empty tensor otherwise). reduction: 0 none,
  // 1 mean, 2 sum. The last three arguments came later: defaulted, so calls
  // written before them keep working.
  m.def(
      "softmax_loss(Tensor input, Tensor target, Tensor? weight, Tensor? logit_bias, int ignore_index, "
      "float label_smoothing, float gamma, int reduction, bool compute_grad, Tensor? logit_scale=None, "
      "Tensor? margin=None, float scale=1.0) -> (Tensor, Tensor)");
  // The same kernel for plain cross-entropy with class indices and reduction
  // none (OHEM's input): (per-sample CE, its gradient buffer as above, the
  // softmax probability of each sample's target p_t = exp(z_t - m) / S in the
  // accumulation dtype, 0 where ignored), all from one pass over the logits.
  // p_t is formed as softmax forms it, so equal logits give exactly 1 / C.
  m.def(
      "softmax_loss_target_prob(Tensor input, Tensor target, int ignore_index, bool compute_grad) -> (Tensor, Tensor, "
      "Tensor)");
  // Fused region losses (Dice / Tversky / generalised Dice, with an optional
  // cross-entropy or focal part; see csrc/loss/region_loss.h). Stats: per
  // (sample, class) sums (N, 3, C) = [sum p t, sum p (p^2), sum t (t^2)] over
  // the valid pixels and (N, 2) = [CE/focal sum, its mean's denominator], in
  // the accumulation dtype. activation: 0 softmax, 1 sigmoid, 2 none (the
  // input is the probabilities); ce_kind: 0 none, 1 cross-entropy, 2 focal;
  // soft_label: MONAI's soft-label sums; alpha: sigmoid focal alpha (< 0 none), both
  // last and defaulted so that calls written before them keep working. Grad: d(loss)/d(input) given coef (N, 2, C) =
  // [dL/dI, dL/dP] and ce_coef (N,) = dL/d(CE sum of sample n).
  // Fused region loss (Dice, generalised Dice, Tversky; with a CE or focal
  // part): (loss, gradient buffer or empty, per-(B, class) sums (B, 3, C),
  // CE sums (2,)). Its CPU/CUDA kernel is written in Python
  // (balancedtorch/losses/_region_op.py) on the two passes below, with the
  // loss a small function of the sums; codes: kind 0 Dice, 1 generalised
  // Dice, 2 Tversky; activation, reduction and ce_kind as the enums in
  // loss/softmax_loss.h and loss/region_loss.h; w_type 0 square, 1 simple,
  // 2 uniform. sync all-reduces the sums over torch.distributed ranks.
  m.def(
      "region_loss(Tensor input, Tensor target, Tensor? weight, int kind, int activation, bool include_background, "
      "bool squared_pred, bool jaccard, float smooth_nr, float smooth_dr, bool batch, int ignore_index, int reduction, "
      "int w_type, float alpha, float beta, float tversky_gamma, int ce_kind, float ce_gamma, float label_smoothing, "
      "float lambda_dice, float lambda_ce, bool sync, bool compute_grad, bool soft_label=False, float "
      "focal_alpha=-1.0) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "region_loss_stats(Tensor input, Tensor target, Tensor? weight, int activation, bool squared_pred, int "
      "ignore_index, "
      "int ce_kind, float gamma, float label_smoothing, int ce_first_class, bool soft_label=False, float alpha=-1.0) "
      "-> (Tensor, Tensor)");
  m.def(
      "region_loss_grad(Tensor input, Tensor target, Tensor? weight, int activation, bool squared_pred, int "
      "ignore_index, "
      "int ce_kind, float gamma, float label_smoothing, int ce_first_class, Tensor coef, Tensor ce_coef, "
      "bool soft_label=False, float alpha=-1.0) -> Tensor");
  // Fused sigmoid focal loss (torchvision's definition plus pos_weight).
  // pos_weight (C,) follows the class dimension: dim 1 of (N, C, d1, ..., dk)
  // as the softmax losses (dim 0 of a 1-D input; the last dim of (N, C)).
  m.def(
      "sigmoid_focal_loss(Tensor input, Tensor target, Tensor? pos_weight, float alpha, float gamma, int reduction, "
      "bool compute_grad) -> (Tensor, Tensor)");
  // OHEM pixel selection (HRNet/OCR; see csrc/loss/ohem_weights.h): from the
  // per-pixel target probabilities p_y and the targets, keep * weight[target] /
  // kept for the valid pixels with p_y < max(thresh, the k-th smallest valid
  // p_y), k = min(max(1, min_kept), n_valid - 1), compared in the dtype of
  // probs; no host synchronisation on CUDA.
  m.def(
      "ohem_prob_weights(Tensor probs, Tensor target, Tensor? weight, int ignore_index, float thresh, int min_kept) -> "
      "Tensor");
  // The same selection from per-pixel losses CE = -log p_y, with p_y taken as
  // exp(-CE) in the losses' dtype (the form this op had before
  // ohem_prob_weights; kept so that calls written for it keep their meaning).
  // exp(-CE) rounds differently from softmax's p_y (equal logits give a p
  // below 1 / C), so ties at thresh can differ from HRNet's: prefer
  // ohem_prob_weights with softmax_loss_target_prob's p_y. Composite:
  // csrc/loss/ohem_weights_from_losses.cpp.
  m.def(
      "ohem_weights(Tensor losses, Tensor target, Tensor? weight, int ignore_index, float thresh, int min_kept) -> "
      "Tensor");
  // Batched per-sample affine warp + colour (brightness, contrast, saturation,
  // hue) + normalisation in one pass (see csrc/augment/affine_color.h).
  // theta (B, 2, 3) maps output to input centred pixel coordinates; colour
  // (B, 4); interpolation: 0 bilinear, 1 nearest; fill in the input's scale
  // (None: zeros padding as grid_sample; a value: torchvision's fill blend).
  // crop (B, 4) = (top, left, height, width): theta then samples the crop
  // resized to the output size (torchvision's resized_crop, then affine).
  m.def(
      "affine_color(Tensor images, Tensor theta, Tensor? colour, Tensor? crop, Tensor? mean, Tensor? std, int "
      "out_height, "
      "int out_width, int interpolation, float? fill, ScalarType out_dtype) -> Tensor");
  // Masks (B, H, W) warped with the same matrices, nearest, own fill (a value
  // of the masks' dtype: 0-255 for uint8, 0/1 for bool; anything else raises).
  m.def("affine_mask(Tensor masks, Tensor theta, Tensor? crop, int out_height, int out_width, int fill) -> Tensor");
  // The pixel each focused crop is centred on (see csrc/augment/focus_pixels.h):
  // per-sample counts (B, K) of the sorted focus classes, then, where active,
  // a class drawn by weight among those present (weights None: "rare", 1 / the
  // class's pixels in the batch, the batch's most frequent class excluded) with
  // uniforms[:, 0] and the pixel of rank floor(uniforms[:, 1] * count) in
  // raster order. Returns (flat index row * W + col or -1 (B,), counts (B, K)).
  m.def(
      "focus_pixels(Tensor masks, Tensor classes, Tensor? weights, Tensor uniforms, Tensor? active=None) -> (Tensor, "
      "Tensor)");
  // Seesaw loss (Wang et al. 2021; see csrc/loss/seesaw_loss.h): input (N, C)
  // logits, target (N,) class indices, cum_samples (C,) cumulative class
  // counts (read as max(n, 1)); the non-target logits are shifted by
  // p * min(0, log n_c - log n_t) + q * max(0, log sigma_c - max(log sigma_t,
  // log eps)) (sigma: the detached softmax), then cross-entropy. Targets equal
  // to ignore_index count 0 and leave the mean's denominator. Returns the
  // reduced loss and, when compute_grad, d(loss)/d(input) (the factors held
  // constant) scaled for the reduction (an empty tensor otherwise).
  // reduction: 0 none, 1 mean, 2 sum. cum_samples is only read.
  m.def(
      "seesaw_loss(Tensor input, Tensor target, Tensor cum_samples, float p, float q, float eps, int ignore_index, "
      "int reduction, bool compute_grad) -> (Tensor, Tensor)");
}

}  // namespace balancedtorch
