"""Peak memory of ``bt.quality.find_duplicates`` against a chunked ``torch.cdist`` brute force.

Run by hand (it is not a pytest-benchmark case: at 10^6 rows one call takes
tens of minutes on 2 cores)::

    python benchmarks/duplicates_memory.py 20000 100000 1000000 [--dim 64] [--cdist-max 100000]

Each (implementation, N) runs in its own process, so its peak resident set
(``VmHWM``) is its own: the script prints the peak, the peak above the process
after import and data creation (the search's own memory), the time and the
number of duplicate groups (balancedtorch) or linked pairs (cdist). Data: N
Gaussian rows in ``--dim`` dimensions, float32, 1% of them planted as near-copies
(noise 1e-4) of other rows, threshold 0.05. The brute force is what a user
would write: ``torch.cdist`` of 2,048 rows against all N at a time (its block
alone is 2,048 * N * 4 bytes: 8.2 GB at N = 10^6) and the pairs within the
threshold; it is skipped above ``--cdist-max`` rows.
"""

import argparse
import subprocess
import sys
import time

CHUNK = 2048
THRESHOLD = 0.05


def _peak_mb():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024


def _child(impl, n, dim):
    import numpy as np
    import torch

    import balancedtorch as bt

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32))
    x[n // 2 : n // 2 + n // 100] = x[: n // 100] + 1e-4
    before = _peak_mb()
    start = time.perf_counter()
    if impl == "balancedtorch":
        found = len(bt.quality.find_duplicates(x, THRESHOLD))
    else:
        found = 0
        for a in range(0, n, CHUNK):
            found += int((torch.cdist(x[a : a + CHUNK], x) <= THRESHOLD).sum())
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    print(f"{impl:<14} N={n:>8} D={dim} {seconds:9.1f} s  peak {peak:8.0f} MB  search {peak - before:8.0f} MB  found {found}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--cdist-max", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.dim)
        return
    for n in args.sizes:
        for impl in ("balancedtorch", "torch.cdist"):
            if impl == "torch.cdist" and n > args.cdist_max:
                print(f"{impl:<14} N={n:>8} skipped: its {CHUNK} x N block alone is {CHUNK * n * 4 / 1e9:.1f} GB")
                continue
            subprocess.run([sys.executable, __file__, str(n), "--dim", str(args.dim), "--child", impl, str(n)], check=True)


if __name__ == "__main__":
    main()
