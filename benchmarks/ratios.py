"""Prints, per benchmark group, how much faster balancedtorch is than each alternative.

Usage: python benchmarks/ratios.py .benchmarks/latest.json
Ratio = alternative's time / balancedtorch's time (> 1: we are faster), from the
medians and from the minima of the rounds (the minimum is the steadier figure
on a shared, noisy machine). Copies = balancedtorch's time / the time of one
``copy_`` of the input (the memory floor), both the minimum of 9 interleaved
runs (see ``timed(floor=...)`` in benchmarks/conftest.py). Cases whose floor
knows its bytes also get a bandwidth table: the GB/s the case achieves if it
moved only the floor's traffic, against ``copy_``'s GB/s on the same device
(the CUDA goal: >= 85% of ``copy_``).
"""

import json
import sys
from collections import defaultdict

GPU_GOAL = 85.0


def main(path):
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    extras = {}
    copies = {}
    bandwidth = []
    for bench in data["benchmarks"]:
        impl = bench["extra_info"].get("impl", bench["name"])
        groups[bench["group"]][impl] = (bench["stats"]["median"], bench["stats"]["min"])
        extra = {k: v for k, v in bench["extra_info"].items() if k not in ("impl", "device", "copies")}
        copies[(bench["group"], impl)] = bench["extra_info"].get("copies")
        extras[(bench["group"], impl)] = ", ".join(f"{k}={v}" for k, v in extra.items())
        info = bench["extra_info"]
        if "GB_s" in info:
            bandwidth.append((bench["group"], info.get("device", "?"), info["GB_s"], info["copy_GB_s"], info["of_copy"]))
    machine = data.get("machine_info", {})
    print(f"machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} cores")
    print(f"{'group':<48} {'implementation':<26} {'copies':>7} {'median ms':>10} {'ratio':>8} {'min ms':>9} {'ratio':>8}  extra")
    for group in sorted(groups):
        impls = groups[group]
        ours = impls.get("balancedtorch")
        for impl, (median, low) in sorted(impls.items(), key=lambda kv: kv[0] != "balancedtorch"):
            mine = ours is not None and impl != "balancedtorch"
            ratio = f"{median / ours[0]:7.2f}x" if mine else ""
            ratio_min = f"{low / ours[1]:7.2f}x" if mine else ""
            floor = copies.get((group, impl))
            floor = f"{floor:6.2f}x" if floor is not None else ""
            print(
                f"{group:<48} {impl:<26} {floor:>7} {median * 1e3:10.3f} {ratio:>8} {low * 1e3:9.3f} {ratio_min:>8}  "
                f"{extras.get((group, impl), '')}"
            )

    if bandwidth:
        print()
        print(f"bandwidth: fwd+bwd as one pass over the floor's bytes, against copy_ (CUDA goal >= {GPU_GOAL:.0f}%)")
        print(f"{'group':<64} {'GB/s':>8} {'copy_ GB/s':>11} {'of copy_':>9}")
        for group, device, gbs, copy_gbs, pct in sorted(bandwidth):
            goal = ("  meets the goal" if pct >= GPU_GOAL else "  below the goal") if device.startswith("cuda") else ""
            print(f"{group:<64} {gbs:8.1f} {copy_gbs:11.1f} {pct:8.1f}%{goal}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/latest.json")
