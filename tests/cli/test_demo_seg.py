"""The segmentation demo (traffic lights at 800:1): scene generator, end-to-end run, command line."""

import os
import subprocess
import sys

import pytest
import torch

from balancedtorch import demo_seg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_scenes_are_deterministic_per_seed_split_and_index():
    x1, y1 = demo_seg.make_scenes(6, seed=3)
    x2, y2 = demo_seg.make_scenes(6, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # scene i depends on (seed, split, i) only: a shorter run gives the same first scenes
    x3, y3 = demo_seg.make_scenes(2, seed=3)
    assert torch.equal(x3, x1[:2]) and torch.equal(y3, y1[:2])
    x4, _ = demo_seg.make_scenes(6, seed=4)
    x5, _ = demo_seg.make_scenes(6, seed=3, split="test")
    assert not torch.equal(x1, x4) and not torch.equal(x1, x5)
    assert x1.shape == (6, 3, 64, 128) and x1.dtype == torch.float32 and y1.shape == (6, 64, 128) and y1.dtype == torch.uint8
    assert float(x1.min()) >= 0.0 and float(x1.max()) <= 1.0
    assert set(torch.unique(y1).tolist()) <= {0, 1, 2, 3}


@pytest.mark.slow
def test_scene_class_proportions():
    _, masks = demo_seg.make_scenes(1500, seed=11)
    stats = demo_seg.light_colour_shares(masks)
    # the playbook's 56 / 3 / 41 among lights (about 2,300 lights here: a few points of sampling noise)
    assert abs(stats["red"] - 0.56) < 0.04
    assert 0.01 < stats["yellow"] < 0.06
    assert abs(stats["green"] - 0.41) < 0.04
    # background : all traffic-light pixels about 800 : 1
    assert 650 < stats["background_ratio"] < 1000
    # each lit lamp is a square of 2x2 or 3x3 pixels; some scenes hold no light at all
    has_light = (masks > 0).flatten(1).any(1)
    assert 0.15 < 1 - float(has_light.float().mean()) < 0.35


def test_lamp_pixels_are_the_bright_lit_lamp():
    x, y = demo_seg.make_scenes(200, seed=5)
    for c, channel in ((1, 0), (3, 1)):  # red lamps are red-dominant, green lamps green-dominant
        pix = x.permute(0, 2, 3, 1)[y == c]
        assert len(pix) > 50
        assert float((pix.argmax(1) == channel).float().mean()) > 0.9


def test_scenes_bad_input():
    with pytest.raises(ValueError, match="split"):
        demo_seg.make_scenes(2, split="holdout")
    with pytest.raises(ValueError, match="n must be"):
        demo_seg.make_scenes(-1)
    with pytest.raises(ValueError, match="steps"):
        demo_seg.run_demo("cpu", steps=0)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    lines = []
    result = demo_seg.run_demo(
        "cpu",
        steps=3,
        seed=1,
        out=str(tmp_path),
        progress=False,
        printer=lines.append,
        n_train=24,
        n_val=4,
        n_test=8,
        batch_size=4,
    )
    text = "\n".join(lines)
    for key in (
        "pixel accuracy",
        "mean IoU",
        "traffic-light IoU",
        "traffic-light recall",
        "IoU red",
        "recall yellow",
        "IoU green",
        "training time",
    ):
        assert key in text, key
    for run in ("plain", "balanced"):
        r = result[run]
        for name in demo_seg.CLASS_NAMES:
            assert 0.0 <= r[f"iou_{name}"] <= 1.0 and 0.0 <= r[f"recall_{name}"] <= 1.0
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["mean_iou"] <= 1.0
    names = sorted(os.path.basename(p) for p in result["paths"])
    assert names == ["confusion_balanced.png", "confusion_plain.png", "predictions.png"]
    assert all(os.path.getsize(p) > 1000 for p in result["paths"])


@pytest.mark.slow
def test_cli_segmentation_demo(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "balancedtorch", "demo", "--task", "segmentation", "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "--steps" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "balancedtorch", "demo", "--steps", "3"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert r.returncode == 2 and "--task segmentation" in r.stderr and "Traceback" not in r.stderr
