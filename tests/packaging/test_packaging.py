"""The ways people install balancedtorch: sdist -> wheel, an isolated pip install, old setuptools, optional extras.

The sdist is packed from a copy of this tree, and the wheel is compiled from
the unpacked sdist (CPU kernels only, against the running torch), then
installed into a scratch folder and imported from there.
"""

import email
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch

import balancedtorch as bt

ROOT = Path(__file__).resolve().parents[2]
# not sources: what a build or a test run leaves in the tree
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.so",
    "_build_config.py",
    ".pytest_cache",
    ".benchmarks",
    ".hypothesis",
    "demo_out",
    "demo_seg_out",
    "demo_loop_out",
)


def _run(cmd, cwd, timeout, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _source_files(root: Path):
    """The files a build needs, as the repository holds them (CPU and CUDA)."""
    names = {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in", "tests/conftest.py"}
    for pattern in ("csrc/**/*.h", "csrc/**/*.cuh", "csrc/**/*.cpp", "csrc/**/*.cu", "balancedtorch/**/*.py", "tests/**/*.py"):
        names |= {str(p.relative_to(root)) for p in root.glob(pattern)}
    return {n for n in names if not n.endswith("_build_config.py")}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """(path of the .tar.gz packed from a copy of this tree, that copy's root)."""
    tmp = tmp_path_factory.mktemp("sdist")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCES)
    env = dict(os.environ, BALANCEDTORCH_USE_CUDA="0")
    proc = _run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp / "dist")], tree, 600, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = glob.glob(str(tmp / "dist" / "balancedtorch-*.tar.gz"))
    return Path(path), tree


@pytest.mark.slow
def test_sdist_holds_every_source_the_build_needs(sdist):
    path, tree = sdist
    with tarfile.open(path) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        members = {n.split("/", 1)[1] for n in names if "/" in n}
        pkg_info = email.message_from_bytes(tar.extractfile(f"{top}/PKG-INFO").read())
    missing = _source_files(tree) - members
    assert not missing, f"the sdist lacks {sorted(missing)}"
    assert any(m.endswith(".cu") for m in members) and any(m.endswith(".cuh") or m.endswith(".h") for m in members)
    assert not [m for m in members if m.endswith(".so") or m.endswith("_build_config.py")], "build products were packed"
    # the source distribution builds against any supported torch
    assert "torch>=2.4" in pkg_info.get_all("Requires-Dist")
    assert pkg_info["License-Expression"] == "BSD-3-Clause"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the wheel is checked where CI builds it (Linux)")
def test_sdist_builds_a_cpu_wheel_that_imports(sdist, tmp_path):
    path, _ = sdist
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    env = dict(os.environ, BALANCEDTORCH_USE_CUDA="0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    start = time.perf_counter()
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "--no-cache-dir",
            "-w",
            str(tmp_path / "wheels"),
            str(src),
        ],
        tmp_path,
        1800,
        env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"sdist -> CPU wheel: {time.perf_counter() - start:.0f} s")
    (wheel,) = glob.glob(str(tmp_path / "wheels" / "balancedtorch-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(zf.read(meta_name))
        (so,) = [i for i in zf.infolist() if re.search(r"balancedtorch/_C.*\.so$", i.filename)]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "balancedtorch/_build_config.py" in names  # build_info() reads how this binary was built
    major, minor = torch.__version__.split(".")[:2]
    # the binary loads only into the torch release line it was compiled against
    assert f"torch=={major}.{minor}.*" in meta.get_all("Requires-Dist")
    assert so.file_size < 12 * 2**20, f"_C is {so.file_size / 2**20:.1f} MB: built with debug information?"
    target = tmp_path / "site"
    proc = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), wheel], tmp_path, 600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = textwrap.dedent(
        """
        import torch, balancedtorch as bt
        info = bt.build_info()
        assert bt.__file__.startswith(TARGET), bt.__file__
        assert not info["cuda_compiled"] and not info["debug_info"], info
        counts = bt.ops.class_counts(torch.tensor([0, 2, 2, 1, 2]), 3)
        assert counts.tolist() == [1, 1, 3], counts
        print("ok", info["cpu_capability"])
        """
    ).replace("TARGET", repr(str(target)))
    proc = _run([sys.executable, "-c", code], tmp_path, 300, dict(os.environ, PYTHONPATH=str(target)))
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr


@pytest.mark.slow
def test_isolated_pip_install_stops_at_once_with_the_right_command(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCES)
    start = time.perf_counter()
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"), str(tree)], tmp_path, 600)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if "Could not find a version that satisfies" in out or "No matching distribution" in out:
        pytest.skip("the package index is unreachable: pip could not set up the isolated build environment")
    assert proc.returncode != 0, "an isolated build went through; it compiles against a torch that is not the one installed"
    assert "isolated build" in out and "pip install --no-build-isolation ." in out, out[-3000:]
    assert not glob.glob(str(tmp_path / "wheels" / "*.whl"))
    # nothing was downloaded or compiled: only the build tools were set up
    assert seconds < 300, f"took {seconds:.0f} s"


def test_old_setuptools_gets_one_line_saying_what_to_upgrade(tmp_path):
    fake = tmp_path / "setuptools"
    fake.mkdir()
    (fake / "__init__.py").write_text('__version__ = "65.5.0"\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = _run([sys.executable, str(ROOT / "setup.py"), "--version"], tmp_path, 120, env)
    assert proc.returncode != 0
    assert "setuptools>=77" in proc.stderr and "65.5.0" in proc.stderr and "pip install -U" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_build_without_debug_information_by_default():
    info = bt.build_info()
    (so,) = glob.glob(os.path.join(os.path.dirname(bt.__file__), "_C*.so"))
    size = os.path.getsize(so)
    if not info["debug_info"]:
        # with -g the CPU part alone is over 30 MB; CUDA kernels for one architecture add a few MB
        limit = (40 if info["cuda_compiled"] else 12) * 2**20
        assert size < limit, f"_C is {size / 2**20:.1f} MB without debug information"


_BLOCK_OPTIONAL = textwrap.dedent(
    """
    import sys
    for name in ("sklearn", "scipy", "matplotlib", "tqdm", "pandas"):
        sys.modules[name] = None  # import raises ModuleNotFoundError, as if not installed
    from balancedtorch.cli import main
    raise SystemExit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_demo_without_optional_packages_names_the_extra(tmp_path):
    proc = _run([sys.executable, "-c", _BLOCK_OPTIONAL, "demo", "--out", str(tmp_path), "--no-progress"], tmp_path, 300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs scikit-learn" in lines[0] and "pip install 'balancedtorch[demo]'" in lines[0], proc.stderr


@pytest.mark.slow
def test_segmentation_demo_without_matplotlib_says_why_no_figures(tmp_path):
    args = ["demo", "--task", "segmentation", "--steps", "2", "--out", str(tmp_path), "--no-progress"]
    proc = _run([sys.executable, "-c", _BLOCK_OPTIONAL, *args], tmp_path, 600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "figures: not drawn, matplotlib is not installed (pip install 'balancedtorch[plots]'" in proc.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_plotting_without_matplotlib_names_the_extra(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None
        import torch, balancedtorch as bt
        m = bt.metrics.ClassificationMetrics(3)
        m.update(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]), torch.tensor([0, 2]))
        try:
            m.plot_confusion_matrix()
        except ModuleNotFoundError as exc:
            print(exc)
        """
    )
    proc = _run([sys.executable, "-c", code], tmp_path, 300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "plotting needs matplotlib: pip install 'balancedtorch[plots]' (or pip install matplotlib)"


def test_extras_cover_what_the_optional_features_import():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!\[ ]", req)[0] for req in extras["demo"]}
    assert {"scikit-learn", "matplotlib", "tqdm"} <= names
    assert {re.split(r"[<>=!\[ ]", req)[0] for req in extras["plots"]} == {"matplotlib"}
    from balancedtorch import _optional

    for module, (dist, extra) in _optional._PROVIDERS.items():
        assert any(re.split(r"[<>=!\[ ]", req)[0] == dist for req in extras[extra]), (module, extra)


@pytest.mark.slow
@pytest.mark.skipif(torch.version.cuda is None, reason="needs a CUDA build of torch")
def test_nvcc_of_another_cuda_major_stops_the_build_naming_both(tmp_path):
    major = int(torch.version.cuda.split(".")[0])
    other = f"{major - 1}.8"
    nvcc = tmp_path / "toolkit" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {other}, V{other}.89'\n")
    nvcc.chmod(0o755)
    env = dict(os.environ, CUDA_HOME=str(tmp_path / "toolkit"), BALANCEDTORCH_USE_CUDA="1")
    proc = _run([sys.executable, str(ROOT / "setup.py"), "--version"], tmp_path, 300, env)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert f"nvcc {other}" in message and torch.__version__ in message and f"CUDA {torch.version.cuda}" in message
    assert "BALANCEDTORCH_USE_CUDA=0" in message and "Traceback" not in proc.stderr
