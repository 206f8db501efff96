"""The command line (inspect, info, demo) and the DDP example."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "balancedtorch", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_info():
    r = run_cli("info")
    assert r.returncode == 0, r.stderr
    assert "torch_version" in r.stdout and bt.__version__ in r.stdout


def test_inspect_traffic_lights_csv(tmp_path):
    path = tmp_path / "labels.csv"
    rows = ["id,colour"] + [f"{i},{c}" for i, c in enumerate(["red"] * 56 + ["yellow"] * 3 + ["green"] * 41)]
    path.write_text("\n".join(rows) + "\n")
    r = run_cli("inspect", str(path), "--column", "colour", "--json")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "imbalance ratio 18.7" in out
    yellow = next(line for line in out.splitlines() if line.startswith("yellow"))
    assert "33.3" in yellow and "3.0%" in yellow  # inverse weight with one decimal
    data = json.loads(out.strip().splitlines()[-1])
    assert data["names"] == ["green", "red", "yellow"] and data["counts"] == [41, 56, 3]
    np.testing.assert_allclose(data["weights"]["inverse"], [100 / 41, 100 / 56, 100 / 3], rtol=1e-6)
    assert "suggested:" in out and "ClassBalancedSampler" in out


@pytest.mark.parametrize("kind", ["npy", "pt", "txt", "csv-index"])
def test_inspect_formats(tmp_path, kind):
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    if kind == "npy":
        path = tmp_path / "y.npy"
        np.save(path, labels)
    elif kind == "pt":
        path = tmp_path / "y.pt"
        torch.save(torch.from_numpy(labels), path)
    elif kind == "txt":
        path = tmp_path / "y.txt"
        path.write_text("\n".join(map(str, labels)) + "\n")
    else:
        path = tmp_path / "y.csv"
        path.write_text("\n".join(f"{v},x" for v in labels) + "\n")
    result = cli.inspect_labels(str(path), "0" if kind == "csv-index" else None, out=lambda *_: None)
    assert result["counts"] == [50, 30, 5]
    assert result["imbalance_ratio"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    "content, name, match",
    [
        (None, "missing.csv", "no such file"),
        ("", "empty.txt", "empty"),
        ("a,b\n", "header_only.csv", "no labels"),
        (b"\x80\x81\xfe\xff" * 10, "binary.txt", "not a text file"),
        (b"not a numpy file", "broken.npy", "cannot read labels"),
    ],
)
def test_inspect_errors_are_one_line(tmp_path, content, name, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    r = run_cli("inspect", str(path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], r.stderr


def test_inspect_unknown_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,label\n1,a\n2,b\n")
    r = run_cli("inspect", str(path), "--column", "target")
    assert r.returncode == 2 and "no column named 'target'" in r.stderr and "Traceback" not in r.stderr


def test_demo_runs_end_to_end(tmp_path):
    from balancedtorch.demo import long_tail_counts, run_demo

    counts = long_tail_counts()
    assert counts[0] == 100 and counts[-1] == 2 and all(a >= b for a, b in zip(counts, counts[1:]))
    lines = []
    result = run_demo("cpu", epochs=2, seed=1, out=str(tmp_path), progress=False, printer=lines.append)
    text = "\n".join(lines)
    for key in ("accuracy", "balanced accuracy", "macro-F1", "precision", "recall"):
        assert key in text
    for run in ("plain", "balanced"):
        assert all(0.0 <= v <= 1.0 for v in result[run].values())
    issues = result["label_issues"]
    assert issues["flipped"] == 10  # 3% of 350 validation labels
    assert all(os.path.exists(p) for p in result["paths"])


def test_ddp_example_disjoint_ranks_and_reduced_metrics(tmp_path):
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "ddp_train.py"), "--world-size", "2", "--epochs", "2", "--steps", "4",
         "--batch-size", "16", "--report", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    for epoch in range(len(reports[0]["seen"])):
        a, b = set(reports[0]["seen"][epoch]), set(reports[1]["seen"][epoch])
        assert a and b and not (a & b), "the ranks drew overlapping samples"
        assert len(a) == len(reports[0]["seen"][epoch])  # no repeats without replacement
    # each rank scored half of the 350 test images; the reduced support counts all of them
    assert [rep["local_test_samples"] for rep in reports] == [175, 175]
    assert sum(reports[0]["reduced_support"]) == 350 and reports[0]["reduced_support"] == reports[1]["reduced_support"]
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
