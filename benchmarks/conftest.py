"""Benchmark harness: each group times balancedtorch against what a user would use instead."""

import pytest

from _harness import sync


@pytest.fixture
def timed(benchmark):
    """benchmark(fn) with the group, implementation and device recorded for benchmarks/ratios.py."""

    def run(fn, *, group, impl, device, rounds=None):
        benchmark.group = group
        benchmark.extra_info["impl"] = impl
        benchmark.extra_info["device"] = str(device)

        def call():
            out = fn()
            sync(device)
            return out

        if rounds is not None:  # heavy cases: a fixed, small number of rounds
            return benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
        call()  # warm-up (allocator, lazy init, first-call dispatch)
        return benchmark(call)

    return run
