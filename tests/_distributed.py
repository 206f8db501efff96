"""Multi-process gloo groups for the tests, robust to a loaded machine.

Each attempt, rank 0 opens a TCP store on a loopback port the operating
system chooses at that moment (port 0: nothing to race for) and writes the
port next to ``base``; the other ranks read it and connect. gloo's pairwise
connections are then checked with a monitored barrier; when anything in the
set-up fails ("Gloo connectFullMesh failed ... Connection closed by peer"
under load), every rank tears the group down and all move on to the next
attempt, which uses a new port.

    def _worker(rank, world_size, init_file, out_dir):
        init_gloo(rank, world_size, init_file)
        try:
            ...
        finally:
            close_gloo()
"""

from __future__ import annotations

import datetime
import os
import time

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
