"""The extension builds, loads, reports its build, and fails to load clearly."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import balancedtorch as bt


def test_build_info_fields():
    info = bt.build_info()
    assert info["version"] == bt.__version__
    assert info["torch_version"] == torch.__version__
    assert info["built_with_torch"] == torch.__version__
    assert isinstance(info["cuda_compiled"], bool)
    assert info["openmp"] == torch.backends.openmp.is_available()
    assert info["num_threads"] == torch.get_num_threads()
    if info["cuda_compiled"]:
        assert info["cuda_arch_list"], "CUDA kernels compiled for no architecture"
        assert torch._C._dispatch_has_kernel_for_dispatch_key("balancedtorch::class_counts", "CUDA")
    else:
        assert info["cuda_arch_list"] == []
        assert not info["cuda_available"]


def test_cuda_compiled_where_toolkit_and_cuda_torch_exist():
    want = (
        torch.version.cuda is not None
        and (shutil.which("nvcc") or os.environ.get("CUDA_HOME"))
        and os.environ.get("BALANCEDTORCH_USE_CUDA", "auto") != "0"
    )
    if want:
        assert bt.build_info()["cuda_compiled"]


def test_knn_bf16_flag_follows_cpu_and_environment(monkeypatch):
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    cpu_has = " avx512_bf16" in flags and " avx512vl" in flags
    if bt.build_info()["knn_bf16"]:
        assert cpu_has, "bfloat16 kNN search enabled on a CPU without AVX512-BF16"
    monkeypatch.setenv("BALANCEDTORCH_KNN_BF16", "0")
    assert not bt.build_info()["knn_bf16"]


def test_native_build_info_matches_running_torch():
    native = torch.ops.balancedtorch._build_info()
    fields = dict(item.split("=", 1) for item in native.split(";"))
    assert fields["torch"] == torch.__version__.split("+")[0]
    assert fields["cuda"] == ("1" if bt.build_info()["cuda_compiled"] else "0")


@pytest.mark.slow
def test_broken_extension_raises_clear_import_error(tmp_path):
    """A _C that cannot load names both torch versions and the rebuild command."""
    pkg_src = os.path.dirname(bt.__file__)
    pkg = tmp_path / "balancedtorch"
    shutil.copytree(pkg_src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in os.listdir(pkg):
        if name.startswith("_C") and name.endswith(".so"):
            (pkg / name).write_bytes(b"not a shared library")
    (pkg / "_build_config.py").write_text("TORCH_VERSION = '1.99.0+fake'\n")
    code = textwrap.dedent(
        """
        try:
            import balancedtorch
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("import unexpectedly succeeded")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    message = proc.stdout
    assert "balancedtorch._C" in message
    assert "1.99.0+fake" in message
    assert torch.__version__ in message
    assert "pip install --no-build-isolation" in message


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="runs the no-GPU side of the script; the GPU side runs on a GPU machine")
def test_gpu_check_script_without_a_gpu(tmp_path):
    """benchmarks/gpu_check.sh on a machine without a GPU: every stage selects its tests, the report says what did not run."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, SKIP_BUILD="1", PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_check.sh"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "gpu_check.md").read_text()
    for heading in ("## Build", "## CUDA tests", "## compute-sanitizer memcheck", "## GPU benchmarks"):
        assert heading in report
    counts = [int(n) for n in re.findall(r"not run: no GPU visible \((\d+) ", report)]
    assert len(counts) == 3 and all(n > 0 for n in counts), report
    assert "'cuda_compiled'" in report


def test_cuda_headers_come_from_the_compiling_toolkit_first():
    """The pip nvidia headers fill only what the toolkit lacks: none of them shadows one of the toolkit's."""
    from balancedtorch import _build_config as config

    if not config.CUDA_COMPILED:
        pytest.skip("built without the CUDA kernels")
    toolkit = Path(config.CUDA_HOME) / "include"
    gap = Path(__file__).resolve().parents[2] / "build" / "cuda-gap-include"
    if (toolkit / "cusparse.h").is_file():
        return  # a full toolkit: nothing is taken from pip
    if not gap.is_dir():
        pytest.skip("no build folder here (installed from a wheel)")
    entries = sorted(p.name for p in gap.iterdir())
    assert "cusparse.h" in entries and "cublas_v2.h" in entries
    shadowing = [name for name in entries if (toolkit / name).exists()]
    assert not shadowing, f"pip headers shadow the toolkit's: {shadowing}"
    for name in ("cuda_runtime.h", "cuda_toolkit.h", "cuda", "cub", "thrust"):
        assert name not in entries
