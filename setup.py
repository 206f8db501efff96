"""Build script for the one native extension, ``balancedtorch._C``.

Switches (environment variables):

* ``BALANCEDTORCH_USE_CUDA=auto|1|0`` (default ``auto``): ``auto`` compiles the
  CUDA kernels whenever torch is a CUDA build and nvcc is found; no GPU is
  needed to compile them. ``1`` insists (and fails clearly when it cannot),
  ``0`` builds the CPU kernels only. ``FORCE_CUDA=1`` is the same as ``1``.
* ``TORCH_CUDA_ARCH_LIST``: CUDA architectures to compile for. When unset, the
  visible GPUs decide; with no visible GPU the default is ``9.0+PTX``.
* ``CUDA_HOME``: the CUDA toolkit. When unset it is found from ``nvcc`` on the
  PATH (asking nvcc itself, since nvcc may be a wrapper script).
* ``BALANCEDTORCH_CPU_CAPABILITY=auto|avx2|default`` (default ``auto``): the
  SIMD level of the CPU kernels (at::vec). ``auto`` uses AVX2+FMA when the
  building CPU has them (the extension is built from source for the machine
  that runs it); ``default`` is portable scalar-width code.
* ``MAX_JOBS``: parallel compile jobs (ninja).

Install without build isolation, so the extension is built against the torch
that will import it::

    pip install --no-build-isolation -e .
"""

import glob
import os
import platform
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(ROOT, "csrc")
DEFAULT_ARCH_LIST = "9.0+PTX"

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    sys.exit(
        f"balancedtorch: cannot import torch in {sys.executable} ({exc}).\n"
        "Install torch first (pip install torch), then build balancedtorch against it "
        "without build isolation: pip install --no-build-isolation -e ."
    )


def _log(msg):
    print(f"balancedtorch setup: {msg}", flush=True)


def _nvcc_toolkit_root(nvcc):
    """The toolkit folder behind ``nvcc`` (which may be a wrapper script)."""
    try:
        proc = subprocess.run(
            [nvcc, "-dryrun", "balancedtorch_probe.cu"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^#\$ TOP=(.+)$", proc.stdout + proc.stderr, flags=re.MULTILINE)
    if match is None:
        return None
    top = os.path.realpath(match.group(1).strip())
    return top if os.path.isfile(os.path.join(top, "bin", "nvcc")) else None


def _find_cuda_home():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return os.path.realpath(home)
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        return _nvcc_toolkit_root(nvcc) or os.path.realpath(os.path.join(os.path.dirname(nvcc), ".."))
    if os.path.isfile("/usr/local/cuda/bin/nvcc"):
        return os.path.realpath("/usr/local/cuda")
    return None


def _resolve_use_cuda(cuda_home):
    mode = os.environ.get("BALANCEDTORCH_USE_CUDA", "auto").strip().lower()
    if os.environ.get("FORCE_CUDA", "0") == "1":
        mode = "1"
    if mode not in ("auto", "1", "0"):
        sys.exit(f"balancedtorch: BALANCEDTORCH_USE_CUDA must be auto, 1 or 0, got {mode!r}")
    torch_cuda = torch.version.cuda is not None
    if mode == "0":
        return False, "disabled by BALANCEDTORCH_USE_CUDA=0"
    if mode == "1":
        if not torch_cuda:
            sys.exit(f"balancedtorch: CUDA kernels requested but torch {torch.__version__} is not a CUDA build")
        if cuda_home is None:
            sys.exit("balancedtorch: CUDA kernels requested but no CUDA toolkit (nvcc) was found; set CUDA_HOME")
        return True, "forced"
    if not torch_cuda:
        return False, f"torch {torch.__version__} is not a CUDA build"
    if cuda_home is None:
        return False, "nvcc not found (set CUDA_HOME to build the CUDA kernels)"
    return True, "auto: CUDA torch and nvcc found"


def _resolve_arch_list():
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if archs:
        return archs
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        names = [f"{major}.{minor}" for major, minor in caps]
        names[-1] += "+PTX"
        return ";".join(names)
    # torch's arch helper crashes on an empty list when no GPU is visible.
    return DEFAULT_ARCH_LIST


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _resolve_cpu_capability():
    mode = os.environ.get("BALANCEDTORCH_CPU_CAPABILITY", "auto").strip().lower()
    if mode not in ("auto", "avx2", "default"):
        sys.exit(f"balancedtorch: BALANCEDTORCH_CPU_CAPABILITY must be auto, avx2 or default, got {mode!r}")
    if mode == "auto":
        x86 = platform.machine().lower() in ("x86_64", "amd64")
        mode = "avx2" if x86 and {"avx2", "fma", "f16c"} <= _cpu_flags() else "default"
    return mode


def _nvidia_pip_include_dirs():
    """Header folders of the ``nvidia-*`` pip packages that a CUDA torch wheel brings."""
    dirs = []
    for site in sys.path:
        base = os.path.join(site, "nvidia")
        if not os.path.isdir(base):
            continue
        for sub in sorted(glob.glob(os.path.join(base, "*", "include"))):
            if os.path.isfile(os.path.join(sub, "cusparse.h")):
                dirs.append(sub)
    return dirs


def _write_build_config(config):
    """Record how ``_C`` was built, readable even when ``_C`` itself cannot be loaded."""
    path = os.path.join(ROOT, "balancedtorch", "_build_config.py")
    lines = ['"""Generated by setup.py at build time; do not edit."""', ""]
    lines += [f"{key} = {value!r}" for key, value in config.items()]
    text = "\n".join(lines) + "\n"
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # unchanged content keeps mtimes, so nothing rebuilds needlessly
        with open(path, "w") as f:
            f.write(text)


def _version():
    with open(os.path.join(ROOT, "balancedtorch", "_version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


cuda_home = _find_cuda_home()
if cuda_home is not None:
    # torch.utils.cpp_extension reads CUDA_HOME once, at import; a wrapper nvcc
    # on the PATH would make it guess the folder above the wrapper.
    os.environ["CUDA_HOME"] = cuda_home

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

use_cuda, cuda_reason = _resolve_use_cuda(cuda_home)
arch_list = _resolve_arch_list() if use_cuda else ""
if use_cuda:
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
openmp = bool(torch.backends.openmp.is_available())
debug = os.environ.get("BALANCEDTORCH_DEBUG", "0") == "1"

cpp_sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
cuda_sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True)) if use_cuda else []

cxx_flags = ["-O0", "-g"] if debug else ["-O3"]
# No implicit fused multiply-adds: products and sums round on their own, as in
# torch's element-wise kernels (the augmentation colour arithmetic reproduces
# torchvision's bit for bit). Kernels that want FMAs ask for them explicitly.
cxx_flags.append("-ffp-contract=off")
nvcc_flags = ["-O0", "-g", "-lineinfo"] if debug else ["-O3", "-lineinfo"]
define_macros = []
link_args = []
if openmp:
    # at::parallel_for is inline: without -fopenmp it silently runs serially.
    cxx_flags.append("-fopenmp")
    link_args.append("-fopenmp")
    nvcc_flags += ["-Xcompiler", "-fopenmp"]
if use_cuda:
    define_macros.append(("BALANCEDTORCH_WITH_CUDA", None))
cpu_capability = _resolve_cpu_capability()
if cpu_capability == "avx2":
    # at::vec picks its AVX2 implementation (exp/log through torch's exported
    # Sleef) from these macros; the namespace it lives in is named after
    # CPU_CAPABILITY, so it cannot clash with torch's own copies.
    # C++ sources only: the CUDA sources never include at::vec.
    cxx_flags += ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-DBALANCEDTORCH_AVX2"]

include_dirs = [CSRC]
if use_cuda and not os.path.isfile(os.path.join(cuda_home, "include", "cusparse.h")):
    # torch's CUDA headers include cusparse.h/cublas.h; toolkits without the
    # math libraries have them only in the nvidia pip packages.
    include_dirs += _nvidia_pip_include_dirs()

ext_cls = CUDAExtension if use_cuda else CppExtension
extension = ext_cls(
    name="balancedtorch._C",
    sources=cpp_sources + cuda_sources,
    include_dirs=include_dirs,
    define_macros=define_macros,
    extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags} if use_cuda else {"cxx": cxx_flags},
    extra_link_args=link_args,
)

build_config = {
    "VERSION": _version(),
    "TORCH_VERSION": torch.__version__,
    "TORCH_CUDA_VERSION": torch.version.cuda,
    "CUDA_COMPILED": use_cuda,
    "CUDA_REASON": cuda_reason,
    "CUDA_HOME": cuda_home if use_cuda else None,
    "CUDA_ARCH_LIST": [a for a in re.split(r"[;,\s]+", arch_list) if a] if use_cuda else [],
    "OPENMP": openmp,
    "CPU_CAPABILITY": cpu_capability,
    "DEBUG": debug,
}
_write_build_config(build_config)

_log(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}), python {sys.version.split()[0]}")
_log(f"CUDA kernels: {'yes' if use_cuda else 'no'} ({cuda_reason})")
if use_cuda:
    _log(f"CUDA_HOME={cuda_home}  TORCH_CUDA_ARCH_LIST={arch_list}")
    _log(f"extra include dirs: {include_dirs[1:] or 'none'}")
_log(f"CPU capability: {cpu_capability}  OpenMP: {openmp}  debug: {debug}  MAX_JOBS={os.environ.get('MAX_JOBS', 'default')}")
_log(f"sources: {len(cpp_sources)} C++, {len(cuda_sources)} CUDA")


class BuildExt(BuildExtension):
    """Torch's build_ext (ninja) with a persistent build folder.

    pip's editable builds otherwise compile in a fresh temporary folder every
    time, so ninja could never skip unchanged sources.
    """

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "temp")


setup(
    version=_version(),
    packages=find_packages(include=["balancedtorch", "balancedtorch.*"]),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExt.with_options(use_ninja=True)},
)
