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
* ``BALANCEDTORCH_DEBUG_INFO=1``: keep debug information (``-g``) in the
  optimised extension (for gdb or perf; about 16 times the size).
  ``BALANCEDTORCH_DEBUG=1`` builds unoptimised (``-O0 -g``). By default the
  extension carries no debug information.
* ``MAX_JOBS``: parallel compile jobs (ninja).

Install without build isolation, so the extension is built against the torch
that will import it (an isolated build would compile against a different,
freshly downloaded torch; it is refused with this command in the message)::

    pip install --no-build-isolation -e .

The wheel this builds requires the torch release line it was compiled against
(``torch==2.14.*`` when built on 2.14.1): a compiled extension only loads into
the torch whose C++ ABI it was built for. The source distribution requires
``torch>=MIN_TORCH``.
"""

import glob
import os
import platform
import re
import shutil
import subprocess
import sys

import setuptools

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(ROOT, "csrc")
DEFAULT_ARCH_LIST = "9.0+PTX"
# The oldest torch the extension builds against and passes its tests with
# (`make test-min-torch`); keep in step with README.md and MIN_TORCH in the Makefile.
MIN_TORCH = "2.4"
MIN_SETUPTOOLS = 77  # PEP 639 license metadata (`license = "BSD-3-Clause"` in pyproject.toml)


def _setuptools_major():
    match = re.match(r"(\d+)", setuptools.__version__)
    return int(match.group(1)) if match else 0


if _setuptools_major() < MIN_SETUPTOOLS:
    # Without build isolation pip does not enforce build-system.requires, and
    # setuptools < 77 fails later on pyproject.toml's license with a message
    # that does not say what to do.
    sys.exit(
        f"balancedtorch: building needs setuptools>={MIN_SETUPTOOLS}, this environment has {setuptools.__version__}; "
        f"run: pip install -U 'setuptools>={MIN_SETUPTOOLS}' wheel ninja"
    )


def _in_isolated_build_env():
    """pip and `python -m build` build in a fresh temporary environment unless told not to."""
    places = os.pathsep.join([sys.prefix, os.environ.get("PYTHONPATH", ""), *sys.path])
    return "build-env-" in places  # pip's pip-build-env-*, build's build-env-*


try:
    import torch
except ImportError as exc:
    if _in_isolated_build_env():
        sys.exit(
            "balancedtorch: this is an isolated build, which cannot see your torch (the extension must be "
            "compiled against the torch that will import it); run: pip install --no-build-isolation ."
        )
    sys.exit(
        f"balancedtorch: cannot import torch in {sys.executable} ({exc}); install torch first "
        "(pip install torch), then run: pip install --no-build-isolation ."
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


def _toolkit_gap_include_dir(cuda_home):
    """A folder of links to the pip ``nvidia`` headers that the compiling toolkit lacks.

    torch's CUDA headers include cusparse.h and cublas*.h, which a toolkit
    without the math libraries does not have; a CUDA torch wheel brings them in
    its ``nvidia`` pip packages. Those packages also carry their own (often
    newer) CUDA runtime and CCCL headers, which must not shadow the toolkit's:
    nvcc refuses headers from another CUDA release. So only the entries the
    toolkit lacks are linked here, and the toolkit's own headers keep priority.
    Returns None when the toolkit lacks nothing torch needs.
    """
    toolkit = os.path.join(cuda_home, "include")
    if os.path.isfile(os.path.join(toolkit, "cusparse.h")):
        return None
    gap = os.path.join(ROOT, "build", "cuda-gap-include")
    shutil.rmtree(gap, ignore_errors=True)
    os.makedirs(gap)
    for source in _nvidia_pip_include_dirs():
        for name in sorted(os.listdir(source)):
            link = os.path.join(gap, name)
            if not os.path.exists(os.path.join(toolkit, name)) and not os.path.lexists(link):
                os.symlink(os.path.join(source, name), link)
    return gap


def _nvcc_version(cuda_home):
    """(major, minor) of the toolkit's nvcc, or None when it cannot be asked."""
    try:
        out = subprocess.run(
            [os.path.join(cuda_home, "bin", "nvcc"), "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"release (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _check_nvcc_matches_torch(cuda_home):
    """Stop with both versions and the fix when nvcc cannot compile for this torch."""
    nvcc = _nvcc_version(cuda_home)
    torch_cuda = tuple(int(v) for v in torch.version.cuda.split(".")[:2])
    if nvcc is not None and nvcc[0] != torch_cuda[0]:
        sys.exit(
            f"balancedtorch: nvcc {nvcc[0]}.{nvcc[1]} (CUDA_HOME={cuda_home}) cannot compile for torch "
            f"{torch.__version__}, which was built with CUDA {torch.version.cuda}: the CUDA major versions must match. "
            f"Build the CPU kernels only with BALANCEDTORCH_USE_CUDA=0, or point CUDA_HOME at a CUDA "
            f"{torch_cuda[0]}.x toolkit."
        )
    return nvcc


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


def _torch_requirement():
    """What the distribution asks of torch.

    A compiled extension loads only into the torch release line it was built
    against, so a wheel (or an installed tree) pins that line, as torchvision
    and other compiled torch extensions do; a source distribution builds
    against any supported torch.
    """
    if "sdist" in sys.argv[1:]:
        return f"torch>={MIN_TORCH}"
    major, minor = re.match(r"(\d+)\.(\d+)", torch.__version__).groups()
    return f"torch=={major}.{minor}.*"


def _version():
    with open(os.path.join(ROOT, "balancedtorch", "_version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


cuda_home = _find_cuda_home()
if cuda_home is not None:
    # torch.utils.cpp_extension reads CUDA_HOME once, at import; a wrapper nvcc
    # on the PATH would make it guess the folder above the wrapper.
    os.environ["CUDA_HOME"] = cuda_home

from setuptools import find_packages, setup  # noqa: E402  (after the version check above)
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

use_cuda, cuda_reason = _resolve_use_cuda(cuda_home)
arch_list = _resolve_arch_list() if use_cuda else ""
if use_cuda:
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
openmp = bool(torch.backends.openmp.is_available())
debug = os.environ.get("BALANCEDTORCH_DEBUG", "0") == "1"

cpp_sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
cuda_sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True)) if use_cuda else []

debug_info = debug or os.environ.get("BALANCEDTORCH_DEBUG_INFO", "0") == "1"
# Python's own CFLAGS (which torch's build passes on) often hold -g; -g0 last
# wins, so the extension is 2 MB instead of 35 MB unless debug info is asked for.
cxx_flags = ["-O0", "-g"] if debug else (["-O3", "-g"] if debug_info else ["-O3", "-g0"])
# No implicit fused multiply-adds: products and sums round on their own, as in
# torch's element-wise kernels (the augmentation colour arithmetic reproduces
# torchvision's bit for bit). Kernels that want FMAs ask for them explicitly.
cxx_flags.append("-ffp-contract=off")
nvcc_flags = ["-O0", "-g", "-lineinfo"] if debug else (["-O3", "-lineinfo"] if debug_info else ["-O3"])
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
nvcc_version = None
if use_cuda:
    nvcc_version = _check_nvcc_matches_torch(cuda_home)
    gap = _toolkit_gap_include_dir(cuda_home)
    if gap is not None:
        include_dirs.append(gap)

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
    "DEBUG_INFO": debug_info,
    "NVCC_VERSION": ".".join(map(str, nvcc_version)) if nvcc_version else None,
}
_write_build_config(build_config)

_log(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}), python {sys.version.split()[0]}")
_log(f"CUDA kernels: {'yes' if use_cuda else 'no'} ({cuda_reason})")
if use_cuda:
    _log(f"CUDA_HOME={cuda_home}  TORCH_CUDA_ARCH_LIST={arch_list}")
    _log(f"extra include dirs: {include_dirs[1:] or 'none'}")
_log(
    f"CPU capability: {cpu_capability}  OpenMP: {openmp}  debug: {debug}  debug info: {debug_info}  MAX_JOBS={os.environ.get('MAX_JOBS', 'default')}"
)
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
    install_requires=[_torch_requirement(), "numpy"],
    packages=find_packages(include=["balancedtorch", "balancedtorch.*"]),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExt.with_options(use_ninja=True)},
)
