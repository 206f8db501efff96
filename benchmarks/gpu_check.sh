#!/usr/bin/env bash
# The whole GPU check in one command, for a machine with an NVIDIA GPU:
#   1. build the extension for the visible GPU (all cores),
#   2. run every CUDA test (pytest -m cuda),
#   3. compute-sanitizer --tool memcheck on a small pytest subset that runs
#      every CUDA kernel (class_counts, softmax_loss rows/columns,
#      the long-tail adjusted softmax path, seesaw_loss, sigmoid_focal_loss,
#      region_loss, ohem_weights, affine_color, affine_mask, focus_pixels,
#      knn, kcenter_update),
#   4. the GPU benchmark cases (pytest-benchmark: peer ratios, copies of the
#      input, and GB/s against copy_ on the same GPU, goal >= 85%),
# and writes one Markdown report, gpu_check.md, to OUT_DIR (default:
# gpu_check_out). Sized for 10 minutes on an H100/H200.
#
#   benchmarks/gpu_check.sh [OUT_DIR]
#
# Environment: PYTHON (default python3: the interpreter with torch), JOBS
# (default: all cores), SKIP_BUILD=1 (use the extension already built), and
# per-stage limits in seconds TESTS_S, SANITIZER_S, BENCH_S. Without a GPU the
# script still checks what it can (the build configuration, that every stage
# selects tests) and reports the GPU stages as not run; it exits 0 when every
# stage that ran passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
TESTS_S=${TESTS_S:-240}
SANITIZER_S=${SANITIZER_S:-150}
BENCH_S=${BENCH_S:-150}
REPORT=$OUT/gpu_check.md
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
status=0

# The CUDA kernels each sanitised test reaches (one or two per kernel).
SANITIZER_TESTS=(
  "tests/ops/test_class_counts.py::test_matches_bincount"
  "tests/ops/test_class_counts.py::test_segmentation_masks_with_ignore_index"
  "tests/losses/test_losses.py::test_cross_entropy_equals_torch"
  "tests/losses/test_losses.py::test_focal_loss_matches_reference"
  "tests/losses/test_losses.py::test_sigmoid_focal_equals_torchvision"
  "tests/augment/test_augment.py::test_whole_chain_matches_torchvision"
  "tests/augment/test_augment.py::test_single_channel_and_masks"
  "tests/ops/test_knn.py::test_matches_brute_force"
  "tests/losses/test_region_losses.py::test_cuda_equals_cpu"
  "tests/losses/test_ohem.py::test_matches_reference_float64"
  "tests/augment/test_crop_focus.py::test_focus_pixels_cpu_and_cuda_agree"
  "tests/ops/test_kcenter_op.py::test_cuda_equals_cpu"
  "tests/losses/test_longtail_losses.py::test_op_every_mode_equals_reference"
  "tests/losses/test_seesaw_loss.py::test_equals_reference"
)

section() { printf '\n## %s\n\n' "$1" >>"$REPORT"; }
elapsed() { echo $(($(date +%s) - $1)); }

gpu=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)
{
  echo "# balancedtorch GPU check"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- python: $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "/ torch", torch.__version__, "/ CUDA", torch.version.cuda)' 2>&1)"
  echo "- GPU: ${gpu:-none visible}"
  if command -v nvidia-smi >/dev/null; then
    echo "- driver: $(nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  fi
} >"$REPORT"

# -- 1. build -----------------------------------------------------------------
section "Build"
if [[ -n "$gpu" ]]; then
  arch=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch}
fi
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  echo "skipped (SKIP_BUILD=1)" >>"$REPORT"
else
  t0=$(date +%s)
  if MAX_JOBS=$JOBS BALANCEDTORCH_USE_CUDA=${BALANCEDTORCH_USE_CUDA:-auto} "$PY" setup.py build_ext --inplace >"$OUT/build.log" 2>&1; then
    echo "built in $(elapsed "$t0") s with $JOBS jobs, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-default} (log: build.log)" >>"$REPORT"
  else
    echo "**build FAILED** after $(elapsed "$t0") s; last lines of build.log:" >>"$REPORT"
    { echo '```'; tail -n 30 "$OUT/build.log"; echo '```'; } >>"$REPORT"
    echo "report: $REPORT"
    exit 1
  fi
fi
echo "- build_info: \`$("$PY" -c 'import balancedtorch as bt; print(bt.build_info())' 2>&1 | tail -1)\`" >>"$REPORT"

# Counts from a junit XML: passed failed errors skipped.
junit_counts() {
  "$PY" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 1 0"); raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root)
t = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(t["tests"] - t["failures"] - t["errors"] - t["skipped"], t["failures"], t["errors"], t["skipped"])
EOF
}

# Failed test ids from a junit XML, one per line (at most 40).
junit_failures() {
  "$PY" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    raise SystemExit
bad = [c for c in root.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
for c in bad[:40]:
    msg = (c.find("failure") if c.find("failure") is not None else c.find("error")).get("message", "")
    print(f"- `{c.get('classname')}::{c.get('name')}`: {msg.splitlines()[0][:200] if msg else ''}")
if len(bad) > 40:
    print(f"- ... and {len(bad) - 40} more")
EOF
}

# -- 2. every CUDA test ------------------------------------------------------------
section "CUDA tests (pytest -m cuda)"
if [[ -z "$gpu" ]]; then
  n=$("$PY" -m pytest tests -m cuda --collect-only -q -p no:cacheprovider 2>/dev/null | grep -c '::')
  echo "not run: no GPU visible ($n CUDA tests collected)" >>"$REPORT"
else
  t0=$(date +%s)
  timeout "$TESTS_S" "$PY" -m pytest tests -m cuda -q -p no:cacheprovider --junitxml="$OUT/cuda_tests.xml" >"$OUT/cuda_tests.log" 2>&1
  rc=$?
  read -r passed failed errors skipped <<<"$(junit_counts "$OUT/cuda_tests.xml")"
  echo "passed $passed, failed $failed, errors $errors, skipped $skipped in $(elapsed "$t0") s (exit $rc$([[ $rc == 124 ]] && echo ': stopped at the ${TESTS_S} s limit'); log: cuda_tests.log)" >>"$REPORT"
  junit_failures "$OUT/cuda_tests.xml" >>"$REPORT"
  [[ $rc == 0 ]] || status=1
fi

# -- 3. compute-sanitizer memcheck on one test per kernel ------------------------------
section "compute-sanitizer memcheck"
# the first CUDA case of each test above: enough to launch every kernel once
mapfile -t sanitizer_ids < <("$PY" -m pytest "${SANITIZER_TESTS[@]}" -m cuda --collect-only -q -p no:cacheprovider 2>/dev/null |
  grep '::' | awk -F'[' '!seen[$1]++')
if [[ -z "$gpu" ]]; then
  echo "not run: no GPU visible (${#sanitizer_ids[@]} test cases selected)" >>"$REPORT"
elif ! command -v compute-sanitizer >/dev/null; then
  echo "not run: compute-sanitizer not found" >>"$REPORT"
  status=1
else
  t0=$(date +%s)
  timeout "$SANITIZER_S" compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$PY" -m pytest "${sanitizer_ids[@]}" -q -p no:cacheprovider -x >"$OUT/sanitizer.log" 2>&1
  rc=$?
  summary=$(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)
  echo "${#sanitizer_ids[@]} test cases in $(elapsed "$t0") s, exit $rc: ${summary:-no summary line} (log: sanitizer.log)" >>"$REPORT"
  if [[ $rc != 0 ]]; then
    status=1
    { echo '```'; grep -E '^(=========|FAILED|E )' "$OUT/sanitizer.log" | head -n 40; echo '```'; } >>"$REPORT"
  fi
fi

# -- 4. GPU benchmarks --------------------------------------------------------------
section "GPU benchmarks"
if [[ -z "$gpu" ]]; then
  n=$("$PY" -m pytest benchmarks -k cuda --collect-only -q -p no:cacheprovider 2>/dev/null | grep -c '::')
  echo "not run: no GPU visible ($n benchmark cases selected)" >>"$REPORT"
else
  t0=$(date +%s)
  timeout "$BENCH_S" "$PY" -m pytest benchmarks -k cuda --benchmark-only --benchmark-min-rounds=5 -q -p no:cacheprovider \
    --benchmark-json="$OUT/bench.json" >"$OUT/bench.log" 2>&1
  rc=$?
  echo "exit $rc in $(elapsed "$t0") s (log: bench.log, raw: bench.json)" >>"$REPORT"
  [[ -s "$OUT/bench.json" ]] && { echo '```'; "$PY" benchmarks/ratios.py "$OUT/bench.json" 2>&1; echo '```'; } >>"$REPORT"
  [[ $rc == 0 ]] || status=1
fi

echo "report: $REPORT"
exit $status
