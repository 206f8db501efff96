"""The digits demo's unseen slice (test digits rotated by 90 degrees) and its mistakes grid."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from balancedtorch import demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPU = torch.device("cpu")

NOVELTY_LINE = re.compile(
    r"unseen slice: (\d+) test digits rotated by 90 degrees, mixed into the test set; NoveltyDetector\(k=(\d+)\) on \(b\)'s "
    r"embeddings, cut at 95% of validation, flags (\d+)% of them vs (\d+)% of the ordinary test digits \(AUROC ([01]\.\d{3})\)"
)


@pytest.fixture(scope="module")
def trained():
    """Model (b) of the demo as `make demo` trains it (seed 0, 40 epochs)."""
    split = demo.load_split(0)
    with torch.random.fork_rng(devices=[]):  # train() seeds the global RNG: keep it from the tests after these
        run = demo.train(split, True, epochs=40, seed=0, device=CPU, progress=False)
    return split, run.model


@pytest.mark.slow
def test_run_demo_prints_the_unseen_slice_and_the_mistakes_grid(tmp_path):
    lines = []
    result = demo.run_demo("cpu", epochs=2, seed=1, out=str(tmp_path), progress=False, printer=lines.append)
    found = [m for m in map(NOVELTY_LINE.fullmatch, lines) if m]
    assert len(found) == 1, "\n".join(lines)
    n, k, unseen, ordinary, auroc = found[0].groups()
    nov = result["novelty"]
    assert int(n) == nov["unseen"] == nov["ordinary"] == 350 and int(k) == nov["k"] == demo.NOVELTY_K
    assert int(unseen) == round(100 * nov["flag_rate_unseen"]) and int(ordinary) == round(100 * nov["flag_rate_ordinary"])
    assert float(auroc) == pytest.approx(nov["auroc"], abs=5e-4)
    assert 0.0 <= nov["flag_rate_unseen"] <= 1.0 and 0.0 <= nov["flag_rate_ordinary"] <= 1.0 and 0.0 <= nov["auroc"] <= 1.0
    # the label-issue line comes first, the novelty line after it, the figure paths last
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(p))
        for p in ("label issues:", "unseen slice:", "confusion matrices:")
    ]
    assert order == sorted(order)
    grid = os.path.join(str(tmp_path), "mistakes_balanced.png")
    assert lines[-1] == f"most confident mistakes of (b) on the test set: {grid}"
    assert grid in result["paths"] and os.path.getsize(grid) > 1000


def test_rotated_digits_are_rotated_and_unseen():
    split = demo.load_split(0)
    r = demo.rotated(split.x_test)
    assert r.shape == split.x_test.shape and r.is_contiguous()
    # counter-clockwise quarter turn: the top row becomes the left column, read bottom-up
    assert torch.equal(r[:, :, :, 0], split.x_test[:, :, 0, :].flip(-1))
    assert torch.equal(demo.rotated(demo.rotated(r)).flip(-1).flip(-2), r)
    assert not torch.equal(r, split.x_test)


@pytest.mark.slow
def test_novelty_auroc_is_the_rank_statistic(trained):
    """The printed AUROC equals the Mann-Whitney probability that a rotated digit outscores an ordinary one."""
    split, model = trained
    nov = demo.novelty_check(model, split, CPU)
    from balancedtorch.quality import NoveltyDetector

    det = NoveltyDetector(k=demo.NOVELTY_K).fit(demo.embed(model, split.x_train, CPU))
    assert det.threshold(demo.embed(model, split.x_val, CPU)) == nov["threshold"]
    a = det.score(demo.embed(model, split.x_test, CPU)).double()
    b = det.score(demo.embed(model, demo.rotated(split.x_test), CPU)).double()
    wins = (b[:, None] > a[None, :]).double().mean() + 0.5 * (b[:, None] == a[None, :]).double().mean()
    assert nov["auroc"] == pytest.approx(float(wins), abs=1e-12)
    assert nov["flag_rate_unseen"] == float((b > nov["threshold"]).double().mean())
    assert nov["flag_rate_ordinary"] == float((a > nov["threshold"]).double().mean())


def test_trained_model_flags_the_rotated_digits(trained):
    """Seeds 0, 1, 2 (40 epochs): AUROC 0.949, 0.950, 0.930; flagged rotated 79%, 67%, 59%; ordinary 8%, 7%, 7%."""
    split, model = trained
    nov = demo.novelty_check(model, split, CPU)
    assert nov["auroc"] >= 0.85
    assert nov["flag_rate_unseen"] >= 0.4
    assert nov["flag_rate_ordinary"] <= 0.15  # the cut passes 95% of validation: about 5% of in-distribution digits
    # k=1, not the paper's 50: on this 280-image long-tailed bank the 50th neighbour lies in other classes
    # (seeds 0-2: AUROC 0.28, 0.29, 0.32)
    assert demo.novelty_check(model, split, CPU, k=50)["auroc"] < 0.6


@pytest.mark.slow
def test_cli_seeds_summary_has_the_novelty_auroc(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "balancedtorch", "demo", "--epochs", "1", "--seeds", "2", "--no-progress", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(NOVELTY_LINE.findall(r.stdout)) == 2
    summary = re.search(
        r"novelty AUROC +\(b\) ([01]\.\d{3}) \+- (\d\.\d{3})   flagged: rotated (\d+)% \+- (\d+)%, "
        r"ordinary test (\d+)% \+- (\d+)%",
        r.stdout,
    )
    assert summary, r.stdout[-2000:]
    aurocs = [float(m.group(5)) for m in NOVELTY_LINE.finditer(r.stdout)]
    assert float(summary.group(1)) == pytest.approx(np.mean(aurocs), abs=1e-3)
    for s in (0, 1):
        assert os.path.getsize(tmp_path / f"seed{s}" / "mistakes_balanced.png") > 1000
