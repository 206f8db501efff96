"""scikit-learn's own ranking tests, run against bt.metrics' four ranking functions.

The runner copies ``sklearn/metrics/tests/test_ranking.py`` of the installed
scikit-learn into a temporary folder and changes only its imports: the four
functions balancedtorch offers (``average_precision_score``,
``roc_auc_score``, ``precision_recall_curve``, ``roc_curve``) come from
``balancedtorch.metrics``; everything else (``auc``, the data sets, the
helpers, the functions balancedtorch does not offer) keeps its scikit-learn
import. The file runs with pytest in a subprocess (bounded time); every
collected test must pass.

Tests that exercise only scikit-learn functions balancedtorch does not offer
are deselected, each listed in :data:`NOT_OURS` with the reason; the
deselection is done by a ``conftest.py`` written next to the copy (it also
provides scikit-learn's ``global_random_seed`` fixture, 42 as scikit-learn's
default), and the runner checks that exactly those tests were deselected, so
a stale or mistyped entry fails instead of silently counting.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("scipy")

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(sklearn.__file__).resolve().parent / "metrics" / "tests" / "test_ranking.py"

#: the functions of test_ranking.py's ``from sklearn.metrics import (...)`` that balancedtorch offers
OURS = ("average_precision_score", "precision_recall_curve", "roc_auc_score", "roc_curve")

_NOT_OFFERED = "tests scikit-learn's {what}, which balancedtorch does not offer (only the four ranking functions)"
_CURVE_PARAM = "the {what} case of a test parametrised over curve functions: it calls scikit-learn's own {what}"

#: test name -> why it is deselected; a name matches itself and its parametrisations (``name[...]``),
#: a name ending in "_" every test it starts. Every other test must pass.
NOT_OURS = {
    "test_auc": _NOT_OFFERED.format(what="auc (trapezoidal area of given points)"),
    "test_auc_errors": _NOT_OFFERED.format(what="auc"),
    "test_sort_inputs_and_compute_classification_thresholds_input_validation": _NOT_OFFERED.format(
        what="private _sort_inputs_and_compute_classification_thresholds"
    ),
    "test_sort_inputs_and_compute_classification_thresholds_zero_weights": _NOT_OFFERED.format(
        what="private _sort_inputs_and_compute_classification_thresholds"
    ),
    "test_sort_inputs_and_compute_classification_thresholds_sorting": _NOT_OFFERED.format(
        what="private _sort_inputs_and_compute_classification_thresholds"
    ),
    "test_confusion_matrix_at_thresholds": _NOT_OFFERED.format(what="confusion_matrix_at_thresholds"),
    "test_confusion_matrix_at_thresholds_positional_args_deprecation": _NOT_OFFERED.format(what="confusion_matrix_at_thresholds"),
    "test_confusion_matrix_at_thresholds_multiclass_error[confusion_matrix_at_thresholds]": _CURVE_PARAM.format(
        what="confusion_matrix_at_thresholds"
    ),
    "test_confusion_matrix_at_thresholds_multiclass_error[det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_confusion_matrix_at_thresholds_implicit_pos_label[confusion_matrix_at_thresholds]": _CURVE_PARAM.format(
        what="confusion_matrix_at_thresholds"
    ),
    "test_confusion_matrix_at_thresholds_implicit_pos_label[det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_confusion_matrix_at_thresholds_zero_sample_weight[confusion_matrix_at_thresholds]": _CURVE_PARAM.format(
        what="confusion_matrix_at_thresholds"
    ),
    "test_confusion_matrix_at_thresholds_zero_sample_weight[det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_ranking_metric_pos_label_types[classes0-det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_ranking_metric_pos_label_types[classes1-det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_ranking_metric_pos_label_types[classes2-det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_ranking_metric_pos_label_types[classes3-det_curve]": _CURVE_PARAM.format(what="det_curve"),
    "test_det_curve_": _NOT_OFFERED.format(what="det_curve"),
    "test_label_ranking_avp": _NOT_OFFERED.format(what="label_ranking_average_precision_score"),
    "test_lrap_": _NOT_OFFERED.format(what="label_ranking_average_precision_score"),
    "test_alternative_lrap_implementation": _NOT_OFFERED.format(what="label_ranking_average_precision_score"),
    "test_label_ranking_avg_precision_score_should_allow_csr_matrix_for_y_true_input": _NOT_OFFERED.format(
        what="label_ranking_average_precision_score"
    ),
    "test_coverage_": _NOT_OFFERED.format(what="coverage_error"),
    "test_label_ranking_loss": _NOT_OFFERED.format(what="label_ranking_loss"),
    "test_label_ranking_loss_sparse": _NOT_OFFERED.format(what="label_ranking_loss"),
    "test_ranking_appropriate_input_shape": _NOT_OFFERED.format(what="label_ranking_loss"),
    "test_ranking_loss_ties_handling": _NOT_OFFERED.format(what="label_ranking_loss"),
    "test_dcg_": _NOT_OFFERED.format(what="dcg_score"),
    "test_ndcg_": _NOT_OFFERED.format(what="ndcg_score"),
    "test_top_k_accuracy_score": _NOT_OFFERED.format(what="top_k_accuracy_score"),
    "test_top_k_accuracy_score_": _NOT_OFFERED.format(what="top_k_accuracy_score"),
    "test_metric_at_thresholds": _NOT_OFFERED.format(what="metric_at_thresholds"),
    "test_metric_at_thresholds_": _NOT_OFFERED.format(what="metric_at_thresholds"),
}

_IMPORT = re.compile(r"^from sklearn\.metrics import \(\n(?P<names>(?:    \w+,\n)+)\)\n", re.M)

_CONFTEST = """
import pytest

NOT_OURS = {not_ours!r}


def _matches(name, key):
    return name == key or name.startswith(key + "[") or (key.endswith("_") and name.startswith(key))


def pytest_generate_tests(metafunc):
    # scikit-learn's conftest parametrises global_random_seed (default: 42)
    if "global_random_seed" in metafunc.fixturenames:
        metafunc.parametrize("global_random_seed", [42])


def pytest_collection_modifyitems(config, items):
    keep, dropped = [], []
    for item in items:
        (dropped if any(_matches(item.name, k) for k in NOT_OURS) else keep).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=dropped)
    with open("deselected.txt", "w") as f:
        f.write("\\n".join(item.name for item in dropped))
"""


def _matches(name: str, key: str) -> bool:
    return name == key or name.startswith(key + "[") or (key.endswith("_") and name.startswith(key))


def _rewrite(source: str) -> str:
    """Only the import of the four functions changes."""
    match = _IMPORT.search(source)
    assert match, "test_ranking.py no longer imports from sklearn.metrics in one parenthesised block"
    names = [n.strip().rstrip(",") for n in match.group("names").splitlines()]
    assert set(OURS) <= set(names), f"test_ranking.py no longer imports {sorted(set(OURS) - set(names))}"
    theirs = [n for n in names if n not in OURS]
    block = "from sklearn.metrics import (\n" + "".join(f"    {n},\n" for n in theirs) + ")\n"
    block += f"from balancedtorch.metrics import {', '.join(OURS)}\n"
    return source[: match.start()] + block + source[match.end() :]


def _outcomes(junit: Path) -> dict:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name")
        if case.find("failure") is not None or case.find("error") is not None:
            out[name] = "failed"
        elif case.find("skipped") is not None:
            out[name] = "skipped"
        else:
            out[name] = "passed"
    return out


def run_suite(tmp_path: Path, module: str = "balancedtorch.metrics") -> tuple:
    suite = tmp_path / "sklearn_ranking_suite"
    suite.mkdir()
    source = _rewrite(SOURCE.read_text())
    if module != "balancedtorch.metrics":
        source = source.replace("from balancedtorch.metrics import", f"from {module} import")
    (suite / "test_ranking.py").write_text(source)
    (suite / "conftest.py").write_text(_CONFTEST.format(not_ours=NOT_OURS))
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        f"--junitxml={junit}",
        "--rootdir",
        str(suite),
        str(suite / "test_ranking.py"),
    ]
    proc = subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    assert junit.exists(), f"pytest produced no report (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    deselected = (suite / "deselected.txt").read_text().split("\n") if (suite / "deselected.txt").exists() else []
    return _outcomes(junit), [d for d in deselected if d], proc


@pytest.mark.slow
def test_sklearn_ranking_tests_pass(tmp_path):
    outcomes, deselected, proc = run_suite(tmp_path)
    # the deselection worked: none of the listed tests ran, and every entry deselected something
    ran_anyway = sorted(t for t in outcomes if any(_matches(t, k) for k in NOT_OURS))
    assert not ran_anyway, f"deselected tests ran anyway: {ran_anyway}"
    stale = sorted(k for k in NOT_OURS if not any(_matches(d, k) for d in deselected))
    assert not stale, f"NOT_OURS entries that match no test of scikit-learn's file (update the list): {stale}"
    broken = sorted(t for t, o in outcomes.items() if o != "passed")
    assert not broken, f"scikit-learn ranking tests failing on bt.metrics: {broken}\n{proc.stdout[-8000:]}"
    print(
        f"scikit-learn test_ranking.py on bt.metrics: {len(outcomes)} passed, {len(deselected)} deselected "
        f"(not ours), {len(outcomes) + len(deselected)} collected"
    )
    assert len(outcomes) >= 85  # 88 with scikit-learn 1.9


@pytest.mark.slow
def test_the_runner_really_swaps_the_functions(tmp_path):
    """Against a module whose four functions are wrong, the same suite must fail: the copy really calls them."""
    fake = tmp_path / "fake_ranking.py"
    fake.write_text(
        "import numpy as np\n"
        "def average_precision_score(*a, **k): return 0.123\n"
        "def roc_auc_score(*a, **k): return 0.123\n"
        "def precision_recall_curve(*a, **k): return np.zeros(1), np.zeros(1), np.zeros(0)\n"
        "def roc_curve(*a, **k): return np.zeros(1), np.zeros(1), np.zeros(1)\n"
    )
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env_path]).rstrip(os.pathsep)
    try:
        outcomes, _, _ = run_suite(tmp_path, module="fake_ranking")
    finally:
        os.environ["PYTHONPATH"] = env_path
        if not env_path:
            del os.environ["PYTHONPATH"]
    failed = [t for t, o in outcomes.items() if o == "failed"]
    assert len(failed) > 50, failed


def test_rewrite_changes_only_the_import():
    src = "import numpy as np\nfrom sklearn.metrics import (\n    auc,\n    roc_auc_score,\n    roc_curve,\n    average_precision_score,\n    precision_recall_curve,\n)\nX = 1\n"
    assert _rewrite(src) == (
        "import numpy as np\nfrom sklearn.metrics import (\n    auc,\n)\n"
        "from balancedtorch.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve\nX = 1\n"
    )
