"""Benchmark harness: each group times balancedtorch against what a user would use instead."""

import pytest

from _harness import interleaved_times, sync

FLOOR_ROUNDS = 9


@pytest.fixture
def timed(benchmark):
    """benchmark(fn) with the group, implementation and device recorded for benchmarks/ratios.py.

    ``floor``: a callable doing the memory floor of the same work (``_harness.copy_floor``: one
    ``copy_`` of the input). Then fn and the floor also run interleaved, FLOOR_ROUNDS rounds, and
    extra_info records ``copies`` = min(fn) / min(floor), ``spread`` = max(fn) / min(fn) over those
    rounds, and ``floor_ms``. A floor tagged with the bytes it moves (``copy_floor`` and
    ``_harness.with_bytes`` do) adds ``GB_s``: those bytes over min(fn), the bandwidth fn achieves
    if it moved only the floor's traffic, ``copy_GB_s``: the same over min(floor), and
    ``of_copy``: their ratio in percent (the GPU goal is >= 85%).
    """

    def run(fn, *, group, impl, device, rounds=None, floor=None):
        benchmark.group = group
        benchmark.extra_info["impl"] = impl
        benchmark.extra_info["device"] = str(device)

        def call():
            out = fn()
            sync(device)
            return out

        if rounds is not None:  # heavy cases: a fixed, small number of rounds
            result = benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
        else:
            call()  # warm-up (allocator, lazy init, first-call dispatch)
            result = benchmark(call)
        if floor is not None:
            times = interleaved_times({"fn": fn, "floor": floor}, device, FLOOR_ROUNDS)
            benchmark.extra_info["copies"] = round(min(times["fn"]) / min(times["floor"]), 2)
            benchmark.extra_info["spread"] = round(max(times["fn"]) / min(times["fn"]), 2)
            benchmark.extra_info["floor_ms"] = round(min(times["floor"]) * 1e3, 3)
            nbytes = getattr(floor, "bytes", None)
            if nbytes:
                benchmark.extra_info["GB_s"] = round(nbytes / min(times["fn"]) / 1e9, 1)
                benchmark.extra_info["copy_GB_s"] = round(nbytes / min(times["floor"]) / 1e9, 1)
                benchmark.extra_info["of_copy"] = round(100 * min(times["floor"]) / min(times["fn"]), 1)
        return result

    return run
