"""Loads the compiled extension ``balancedtorch._C`` and reports how it was built."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ._version import __version__

__all__ = ["build_info"]

_REBUILD = 'pip install --no-build-isolation -e ".[dev]"  (or: make install)'


def _build_config() -> Any:
    try:
        from . import _build_config as config
    except ImportError:
        return None
    return config


def _load() -> None:
    config = _build_config()
    built = getattr(config, "TORCH_VERSION", "unknown (no build record found)")
    try:
        from . import _C  # noqa: F401  (registers torch.ops.balancedtorch.*)
    except ImportError as exc:
        raise ImportError(
            f"balancedtorch {__version__} could not load its compiled extension balancedtorch._C: {exc}\n"
            f"  the extension was built against torch {built}; the running torch is {torch.__version__}.\n"
            f"  Rebuild it against the running torch, from the source folder: {_REBUILD}"
        ) from exc
    compiled_against = _native_info().get("torch", "")
    if compiled_against and compiled_against != torch.__version__.split("+")[0]:
        warnings.warn(
            f"balancedtorch._C was compiled against torch {compiled_against} but torch {torch.__version__} "
            f"is running; custom operators may misbehave. Rebuild: {_REBUILD}",
            RuntimeWarning,
            stacklevel=3,
        )


def _native_info() -> dict[str, str]:
    raw = torch.ops.balancedtorch._build_info()
    return dict(item.split("=", 1) for item in raw.split(";") if item)


def _has_kernel(op: str, dispatch_key: str) -> bool:
    return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"balancedtorch::{op}", dispatch_key))


def build_info() -> dict[str, Any]:
    """How this installation of balancedtorch was built, and what it can run.

    Returns:
        dict with ``version`` (balancedtorch), ``torch_version`` (running torch),
        ``built_with_torch`` (the torch the extension was compiled against),
        ``cuda_compiled`` (CUDA kernels are in the extension), ``cuda_arch_list``
        (architectures they were compiled for), ``cuda_version`` (of the torch
        build), ``cuda_available`` (a GPU is usable now), ``openmp`` (CPU kernels
        run in parallel through OpenMP), ``cpu_capability`` (SIMD level of the
        CPU kernels: ``"avx2"`` or ``"default"``), ``debug_info`` (the
        extension was built with debug information, ``BALANCEDTORCH_DEBUG_INFO=1``
        or ``BALANCEDTORCH_DEBUG=1``), ``knn_bf16`` (the CPU kNN
        search runs its bfloat16 kernel: AVX512-BF16 present and
        ``BALANCEDTORCH_KNN_BF16`` not ``"0"``) and ``num_threads``.

    Example:
        >>> import balancedtorch as bt
        >>> info = bt.build_info()
        >>> info["version"] == bt.__version__, isinstance(info["cuda_compiled"], bool)
        (True, True)
    """
    native = _native_info()
    config = _build_config()
    cuda_compiled = native.get("cuda") == "1" and _has_kernel("class_counts", "CUDA")
    return {
        "version": __version__,
        "torch_version": torch.__version__,
        "built_with_torch": getattr(config, "TORCH_VERSION", native.get("torch")),
        "cuda_compiled": cuda_compiled,
        "cuda_arch_list": list(getattr(config, "CUDA_ARCH_LIST", [])) if cuda_compiled else [],
        "cuda_version": torch.version.cuda,
        "cuda_available": cuda_compiled and torch.cuda.is_available(),
        "openmp": native.get("openmp") == "1",
        "cpu_capability": native.get("cpu_capability", "default"),
        "debug_info": bool(getattr(config, "DEBUG_INFO", getattr(config, "DEBUG", False))),
        "knn_bf16": native.get("knn_bf16") == "1",
        "num_threads": torch.get_num_threads(),
    }


def empty_cpu_cache() -> int:
    """Free the CPU memory balancedtorch keeps for reuse; returns the bytes released.

    The fused losses write their CPU gradient (and per-pixel outputs) of 8 MiB
    or more into buffers that are kept, after the tensors owning them die, for
    the next call of the same size, as the CUDA caching allocator does on the
    GPU (a fresh 80 MB buffer costs ~20,000 page faults per step). At most
    ``BALANCEDTORCH_CPU_POOL_MB`` MiB are kept (default 512; 0 turns the reuse
    off). Like ``torch.cuda.empty_cache()``, this frees the cached blocks only;
    buffers still owned by tensors are untouched.

    Example:
        >>> import balancedtorch as bt
        >>> released = bt.empty_cpu_cache()
        >>> released >= 0, bt.cpu_cache_bytes()
        (True, 0)
    """
    return int(torch.ops.balancedtorch._cpu_pool_release())


def cpu_cache_bytes() -> int:
    """Bytes of CPU memory balancedtorch keeps for reuse now (see :func:`empty_cpu_cache`).

    Example:
        >>> import balancedtorch as bt
        >>> bt.cpu_cache_bytes() >= 0
        True
    """
    return int(torch.ops.balancedtorch._cpu_pool_bytes())


_load()
