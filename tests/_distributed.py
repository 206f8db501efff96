"""Multi-process gloo groups for the tests, robust to a loaded machine.

Each attempt, rank 0 opens a TCP store on a loopback port the operating
system chooses at that moment (port 0: nothing to race for) and writes the
port next to ``base``; the other ranks read it and connect. gloo's pairwise
connections are then checked with a monitored barrier; when anything in the
set-up fails ("Gloo connectFullMesh failed ... Connection closed by peer"
under load), every rank tears the group down and all move on to the next
attempt, which uses a new port.

A test runs its ranks with ``run_ranks``, which never blocks for ever: each
rank saves its results with ``save_rank`` before it tears the group down, and
a run past the deadline is either finished (every rank saved; a rank hung in
gloo's teardown is killed) or run once more from scratch, then failed.

    def _worker(rank, world_size, init_file, out_dir):
        init_gloo(rank, world_size, init_file)
        try:
            ...
            save_rank(out, out_dir, rank)
        finally:
            close_gloo()

    parts = run_ranks(_worker, 2, tmp_path)  # [rank 0's out, rank 1's out]
"""

from __future__ import annotations

import datetime
import os
import time
import warnings

import pytest
import torch
import torch.distributed as dist

ATTEMPTS = 4


def _port_file(base: str, attempt: int) -> str:
    return f"{base}.port{attempt}"


def _publish_port(path: str, port: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, path)  # readers never see a half-written number


def _read_port(path: str, deadline: float) -> int:
    while True:
        try:
            with open(path) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank 0 did not publish a port in {path}") from None
            time.sleep(0.02)


def init_gloo(rank: int, world_size: int, base: str, timeout: float = 60.0) -> None:
    """``init_process_group("gloo")`` for ``world_size`` processes on this machine.

    Args:
        rank, world_size: as for ``init_process_group``.
        base: a path in a folder every rank can write (the test's ``tmp_path``),
            unique to this group.
        timeout: seconds for each collective (a mismatched collective errors
            instead of hanging) and for each set-up attempt.
    """
    # gloo's pair connections go over loopback, not whatever the hostname resolves to
    if os.path.isdir("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    span = datetime.timedelta(seconds=timeout)
    errors = []
    for attempt in range(ATTEMPTS):
        path = _port_file(base, attempt)
        store = None
        try:
            if rank == 0:
                store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, timeout=span, wait_for_workers=False)
                _publish_port(path, store.port)
            else:
                # rank 0 may spend a whole timeout failing the attempt before this one
                port = _read_port(path, time.monotonic() + 2 * timeout + 10)
                store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False, timeout=span)
            dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=span)
            dist.monitored_barrier(timeout=span)  # every pair connected: the group is usable
            return
        except (RuntimeError, TimeoutError, OSError) as exc:  # DistError subclasses RuntimeError
            errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
            if dist.is_initialized():
                dist.destroy_process_group()
            del store
    raise RuntimeError(f"rank {rank}: no gloo group after {ATTEMPTS} attempts:\n" + "\n".join(errors))


def close_gloo() -> None:
    """Meet at a barrier, then destroy the group.

    Without the barrier, torch 2.4's ``destroy_process_group`` can hang when
    one rank tears its gloo pairs down while the other still uses them (seen
    in about one run in three here). A rank whose barrier fails (the other
    rank died) still destroys its group.
    """
    try:
        dist.barrier()
    except RuntimeError:
        pass
    finally:
        dist.destroy_process_group()


def save_rank(out, out_dir: str, rank: int) -> None:
    """Save one rank's results where ``run_ranks`` looks for them, atomically (never half a file)."""
    path = os.path.join(out_dir, f"rank{rank}.pt")
    torch.save(out, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def _saved(out_dir: str, world_size: int) -> bool:
    return all(os.path.exists(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world_size))


def _kill(context) -> None:
    for process in context.processes:
        if process.is_alive():
            process.kill()
    for process in context.processes:
        process.join(5)


def run_ranks(worker, world_size: int, tmp_path, *extra, timeout: float = 300.0, attempts: int = 2) -> list:
    """Run ``worker(rank, world_size, init_base, out_dir, *extra)`` on ``world_size`` spawned processes.

    Returns what each rank saved with ``save_rank``, in rank order. An error in
    a rank is raised here (torch's ``ProcessRaisedException``). A run still
    going after ``timeout`` seconds is killed; if every rank had saved its
    results, the ranks were stuck tearing gloo down and the results stand (a
    warning says so); otherwise the run starts again in a new folder, and
    after ``attempts`` runs the test fails instead of blocking.
    """
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    for attempt in range(attempts):
        out_dir = os.path.join(str(tmp_path), f"run{attempt}")
        os.makedirs(out_dir)
        context = torch.multiprocessing.spawn(
            worker, args=(world_size, os.path.join(out_dir, "init"), out_dir, *extra), nprocs=world_size, join=False
        )
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=1.0):
                if time.monotonic() > deadline:
                    break
            else:
                return _load(out_dir, world_size)
        finally:
            _kill(context)
        if _saved(out_dir, world_size):
            warnings.warn(f"{world_size} ranks saved their results but did not exit within {timeout:.0f} s", stacklevel=2)
            return _load(out_dir, world_size)
    pytest.fail(f"{world_size} ranks did not finish within {timeout:.0f} s, {attempts} times (deadlock?)")


def _load(out_dir: str, world_size: int) -> list:
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(world_size)]
