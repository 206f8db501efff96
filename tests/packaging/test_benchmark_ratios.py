"""benchmarks/ratios.py: the peer ratios, the copies column and the bandwidth table it prints."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ratios():
    spec = importlib.util.spec_from_file_location("bench_ratios", ROOT / "benchmarks" / "ratios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(group, impl, device, median, low, **extra):
    return {
        "group": group,
        "name": f"{group}-{impl}",
        "stats": {"median": median, "min": low},
        "extra_info": {"impl": impl, "device": device, **extra},
    }


def test_ratio_copies_and_bandwidth(tmp_path, capsys):
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}},
        "benchmarks": [
            _bench("ce cuda", "balancedtorch", "cuda", 0.002, 0.001, copies=1.1, GB_s=3000.0, copy_GB_s=3300.0, of_copy=90.9),
            _bench("ce cuda", "eager", "cuda", 0.010, 0.004),
            _bench("dice cuda", "balancedtorch", "cuda", 0.004, 0.002, copies=2.0, GB_s=1650.0, copy_GB_s=3300.0, of_copy=50.0),
            _bench("ce cpu", "balancedtorch", "cpu", 0.030, 0.020, copies=1.3, GB_s=3.0, copy_GB_s=4.0, of_copy=75.0),
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    _ratios().main(str(path))
    out = capsys.readouterr().out
    eager = next(line for line in out.splitlines() if line.startswith("ce cuda") and "eager" in line)
    assert "5.00x" in eager and "4.00x" in eager  # median 10/2 and min 4/1
    assert "1.10x" in next(line for line in out.splitlines() if line.startswith("ce cuda") and "balancedtorch" in line)
    table = out.split("bandwidth:")[1].splitlines()
    rows = {line.split()[0] + " " + line.split()[1]: line for line in table[2:] if line.strip()}
    assert rows["ce cuda"].endswith("meets the goal") and "90.9%" in rows["ce cuda"]
    assert rows["dice cuda"].endswith("below the goal")
    assert "goal" not in rows["ce cpu"]  # the goal is a GPU goal


def test_no_bandwidth_table_without_bytes(tmp_path, capsys):
    data = {"benchmarks": [_bench("g", "balancedtorch", "cpu", 1.0, 1.0, copies=2.0)]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    _ratios().main(str(path))
    assert "bandwidth:" not in capsys.readouterr().out
