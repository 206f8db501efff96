"""Benchmark harness: each group times balancedtorch against what a user would use instead."""

import pytest

from _harness import sync


@pytest.fixture
def timed(benchmark):
    """benchmark(fn) with the group, implementation and device recorded for benchmarks/ratios.py."""

    def run(fn, *, group, impl, device):
        benchmark.group = group
        benchmark.extra_info["impl"] = impl
        benchmark.extra_info["device"] = str(device)

        def call():
            out = fn()
            sync(device)
            return out

        call()  # warm-up (allocator, lazy init, first-call dispatch)
        return benchmark(call)

    return run
