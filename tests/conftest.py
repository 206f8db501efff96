"""Shared test harness: device parametrisation, CUDA skipping, RNG isolation."""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest
import torch

import balancedtorch as bt


def _cuda_skip_reason() -> str | None:
    if not bt.build_info()["cuda_compiled"]:
        return "balancedtorch was built without its CUDA kernels"
    if not torch.cuda.is_available():
        return "no CUDA device is visible"
    return None


CUDA_SKIP_REASON = _cuda_skip_reason()

# cpu always; cuda only where a GPU is visible and the CUDA kernels were built.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
]


def pytest_collection_modifyitems(config, items):
    if CUDA_SKIP_REASON is None:
        return
    skip = pytest.mark.skip(reason=CUDA_SKIP_REASON)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def rng(request):
    """Seeds every RNG from the test's id, then restores what the test found.

    Tests stay reproducible one by one and in any order, and a test that draws
    random numbers never shifts the streams of the tests after it.
    """
    seed = zlib.crc32(request.node.nodeid.encode())
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    yield seed
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)
    if cuda_states is not None:
        torch.cuda.set_rng_state_all(cuda_states)


def _flushes_denormals() -> bool:
    return bool(torch.tensor([1e-310], dtype=torch.float64).mul(1.0).item() == 0.0)


@pytest.fixture
def ieee_denormals():
    """Subnormal numbers as IEEE 754 has them, for tests of subnormal inputs.

    On torch < 2.5, torch.compile loads code built with -ffast-math, whose start-up
    sets flush-to-zero for the rest of the process: every subnormal then reads as 0
    in whatever test runs later in the same pytest process. Switched back off here
    (and on again afterwards).
    """
    was = _flushes_denormals()
    if was:
        torch.set_flush_denormal(False)
    yield
    if was:
        torch.set_flush_denormal(True)


# -- reference libraries: per-test skips, and no silent skip where they must be there ---------------------------------


@pytest.fixture
def torchvision_ops():
    """torchvision.ops (the reference of the sigmoid focal loss), or skip this test."""
    return pytest.importorskip("torchvision.ops")


@pytest.fixture
def stats():
    """scipy.stats (goodness-of-fit tests of sampling), or skip this test."""
    return pytest.importorskip("scipy.stats")


REQUIRE_REFERENCES = os.environ.get("BT_REQUIRE_REFERENCES") == "1"


def _missing_reference(report) -> bool:
    """A skip that pytest.importorskip raised: a reference library was not importable."""
    text = str(report.longrepr) if report.longrepr is not None else ""
    return report.skipped and "could not import" in text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REFERENCES and _missing_reference(report):
        report.outcome = "failed"
        report.longrepr = f"BT_REQUIRE_REFERENCES=1 but a reference library is missing: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REFERENCES and _missing_reference(report):
        report.outcome = "failed"
        report.longrepr = f"BT_REQUIRE_REFERENCES=1 but a reference library is missing: {report.longrepr}"


def _autograd_kernel_runs_under_no_grad() -> bool:
    """torch < 2.5: an op's registered autograd (setup_context) runs under torch.no_grad() too."""
    import inspect

    import torch._library.autograd as library_autograd

    return "is_grad_enabled" not in inspect.getsource(library_autograd.make_autograd_impl)


#: the raw loss ops' refusal of a class vector that requires grad also fires under no_grad there
REFUSED_UNDER_NO_GRAD = _autograd_kernel_runs_under_no_grad()
