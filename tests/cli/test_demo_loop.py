"""The loop demo (demo --task loop): detect, select with every strategy, retrain, report; a tiny configuration."""

import os
import re

import pytest

from balancedtorch import cli, demo_loop

pytest.importorskip("sklearn.datasets")

TINY = {"train": 8, "val": 6, "pool": 12, "test": 5}


@pytest.mark.slow
def test_tiny_loop_reports_every_strategy_and_the_audit(tmp_path):
    lines = []
    result = demo_loop.run_loop_demo(
        "cpu", seed=0, seeds=2, budgets=(4, 8), steps=20, out=str(tmp_path), per_class=TINY, printer=lines.append
    )
    table = result["table"]
    assert list(table) == list(demo_loop.STRATEGIES) and all(list(cells) == [4, 8] for cells in table.values())
    for strategy in demo_loop.STRATEGIES:
        for budget in (4, 8):
            cells = table[strategy][budget]
            assert len(cells["slice"]) == 2 and all(0 <= v <= 1 for v in cells["slice"] + cells["overall"])
            row = [line for line in lines if re.match(rf"{strategy}\s+{budget}\s+\d\.\d{{3}} ± \d\.\d{{3}}", line)]
            assert len(row) == 1, "\n".join(lines)
    detect = result["runs"][0]["detect"]
    assert {"flag_rate_rotated", "flag_rate_upright", "psi", "drift"} <= set(detect)
    assert result["audit"] == os.path.join(str(tmp_path), "audit.html") and os.path.exists(result["audit"])
    page = open(result["audit"], encoding="utf-8").read()
    assert 'id="novelty"' in page and 'id="drift"' in page
    assert any(line.startswith("audit report of seed 0: ") for line in lines)


def test_split_rotates_part_of_the_pool_only():
    split = demo_loop.load_loop_split(0, TINY)
    assert len(split.y_train) == 80 and len(split.y_pool) == 120 and len(split.y_test) == 50
    assert 0 < int(split.rotated_pool.sum()) < 120


@pytest.mark.parametrize("argv, match", [(["--epochs", "3"], "--task loop takes --steps"), (["--steps", "0"], ">= 1")])
def test_cli_loop_options(capsys, argv, match):
    assert cli.main(["demo", "--task", "loop", *argv]) == 2
    assert match in capsys.readouterr().err
