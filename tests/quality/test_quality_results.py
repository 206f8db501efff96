"""Readable results of bt.quality: mistake tables, pandas inputs, logits refused with a softmax hint, reprs."""

import collections.abc
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import balancedtorch as bt

NAMES = ["red", "yellow", "green"]


def small_case():
    """8 samples, 3 classes, 3 mistakes with distinct confidences (hand-checked)."""
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    pred_probs = torch.tensor(
        [
            [0.80, 0.10, 0.10],
            [0.30, 0.60, 0.10],  # 0 -> 1 at 0.60
            [0.10, 0.85, 0.05],
            [0.91, 0.04, 0.05],  # 1 -> 0 at 0.91
            [0.20, 0.10, 0.70],
            [0.05, 0.70, 0.25],  # 2 -> 1 at 0.70
            [0.90, 0.05, 0.05],
            [0.10, 0.80, 0.10],
        ],
        dtype=torch.float64,
    )
    return labels, pred_probs


def random_case(seed, N=300, K=4):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (N,), generator=g)
    logits = torch.randn(N, K, generator=g, dtype=torch.float64) + 1.5 * torch.nn.functional.one_hot(labels, K)
    return labels, logits.softmax(1), logits


# --------------------------------------------------------------------------- tables


def test_rank_mistakes_table_with_names():
    labels, p = small_case()
    m = bt.quality.rank_mistakes(labels, p, class_names=NAMES)
    assert str(m) == textwrap.dedent(
        """\
        3 mistakes in 8 samples, most confident first
        index  target → prediction  confidence
            3  yellow → red             0.9100
            5   green → yellow          0.7000
            1     red → yellow          0.6000"""
    )
    assert "tensor(" not in str(m)


def test_rank_mistakes_table_without_names():
    labels, p = small_case()
    assert str(bt.quality.rank_mistakes(labels, p)) == textwrap.dedent(
        """\
        3 mistakes in 8 samples, most confident first
        index  target → prediction  confidence
            3       1 → 0               0.9100
            5       2 → 1               0.7000
            1       0 → 1               0.6000"""
    )


def test_rank_mistakes_without_mistakes():
    labels, p = small_case()
    m = bt.quality.rank_mistakes(p.argmax(1), p)
    assert m.num_rows == 0 and m["index"].numel() == 0
    assert str(m) == "no mistakes: every prediction equals its label (8 samples)"


def test_mistakes_per_class_table():
    labels, p = small_case()
    per = bt.quality.mistakes_per_class(labels, p, class_names=NAMES)
    assert str(per) == textwrap.dedent(
        """\
        3 of 8 samples mispredicted, classes by mistake rate
        class   mistakes  support    rate  confused with
        green          1        2  50.00%  yellow 1
        red            1        3  33.33%  yellow 1
        yellow         1        3  33.33%  red 1"""
    )
    plain = str(bt.quality.mistakes_per_class(labels, p))
    assert plain.splitlines()[2].split() == ["2", "1", "2", "50.00%", "1", "1"]


def test_mistakes_per_class_absent_class_and_long_confusions():
    # class 4 absent (rate "-"), class 0 confused with 4 others: 3 shown, then "…"
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 2, 3])
    p = torch.nn.functional.one_hot(torch.tensor([1, 2, 3, 4, 0, 1, 2, 3]), 5).double() * 0.9 + 0.02
    per = bt.quality.mistakes_per_class(labels, p)
    lines = str(per).splitlines()
    row0 = next(line for line in lines[2:] if line.startswith("0 "))
    assert row0.split()[:4] == ["0", "4", "5", "80.00%"] and row0.endswith("1 1, 2 1, 3 1, …")
    row4 = next(line for line in lines[2:] if line.startswith("4 "))
    assert row4.split() == ["4", "0", "0", "-"]


def test_truncation_and_max_rows():
    labels, p, _ = random_case(0, N=400)
    m = bt.quality.rank_mistakes(labels, p)
    n = m.num_rows
    assert n > 25
    lines = str(m).splitlines()
    assert len(lines) == 2 + 20 + 1 and lines[-1] == f"… {n - 20} more mistakes"
    assert m.to_string(max_rows=3).splitlines()[-1] == f"… {n - 3} more mistakes"
    full = m.to_string(max_rows=None).splitlines()
    assert len(full) == 2 + n and "more" not in full[-1]
    m.max_rows = 5
    assert str(m).splitlines()[-1] == f"… {n - 5} more mistakes"
    assert m.to_string(max_rows=n).splitlines()[-1].split()[0] == str(int(m["index"][-1]))
    for bad in (0, -1, 2.5, True, "10"):
        error = ValueError if bad in (0, -1) and not isinstance(bad, bool) else TypeError  # a wrong value, or a wrong type
        with pytest.raises(error, match="max_rows must be an int >= 1 or None"):
            m.to_string(max_rows=bad)
        with pytest.raises(error, match="max_rows must be an int >= 1 or None"):
            m.max_rows = bad
    per = bt.quality.mistakes_per_class(torch.arange(30) % 25, torch.full((30, 25), 1 / 25, dtype=torch.float64))
    assert str(per).splitlines()[-1] == "… 5 more classes"


def test_columns_aligned_with_long_names():
    labels, p, _ = random_case(3, N=200, K=3)
    names = ["a", "a much longer class name", "mid name"]
    for result in (bt.quality.rank_mistakes(labels, p, names), bt.quality.mistakes_per_class(labels, p, names)):
        lines = str(result).splitlines()[1:]
        lines = [line for line in lines if not line.startswith("…")]
        # every row starts its last column (confidence / confused-with) at the same offset as the header
        if isinstance(result, bt.quality.RankedMistakes):
            ends = {len(line) for line in lines}
            assert len(ends) == 1  # right-aligned confidence: equal lengths
            arrows = {line.index("→") for line in lines}
            assert len(arrows) == 1
        else:
            starts = {line.index("%") for line in lines[1:]}
            assert len(starts) == 1


# --------------------------------------------------------------------------- Mapping behaviour


def test_results_keep_dict_behaviour_dtypes_and_devices():
    labels, p, _ = random_case(1)
    m = bt.quality.rank_mistakes(labels, p, class_names=["w", "x", "y", "z"])
    assert isinstance(m, collections.abc.Mapping) and isinstance(m, dict)
    assert list(m) == list(m.keys()) == ["index", "target", "prediction", "confidence"]
    assert len(m) == 4 and m.num_rows == len(m["index"]) > 0
    plain = dict(m)
    assert type(plain) is dict and list(plain) == list(m)
    # the same values, dtypes and devices as the plain dict returned before
    confidence, prediction = p.max(1)
    wrong = torch.nonzero(prediction != labels).flatten()
    idx = wrong[torch.argsort(-confidence[wrong], stable=True)]
    assert torch.equal(m["index"], idx) and m["index"].dtype == torch.int64
    assert torch.equal(m["target"], labels[idx]) and torch.equal(m["prediction"], prediction[idx])
    assert torch.equal(m["confidence"], confidence[idx]) and m["confidence"].dtype == torch.float64
    assert all(isinstance(v, torch.Tensor) and v.device == p.device for _, v in m.items())
    i, t, pr, c = next(zip(*m.values()))  # the old docstring's loop still works
    assert int(i) == int(idx[0]) and float(c) == float(confidence[idx[0]])
    # rows(): Python values, names instead of ids
    first = m.rows()[0]
    assert first == (int(idx[0]), "wxyz"[int(labels[idx[0]])], "wxyz"[int(prediction[idx[0]])], float(confidence[idx[0]]))
    assert type(first.index) is int and type(first.confidence) is float
    assert len(m.rows()) == m.num_rows
    # numpy float32 input: tensors on the CPU in float32, as before
    m32 = bt.quality.rank_mistakes(labels.numpy(), p.float().numpy())
    assert m32["confidence"].dtype == torch.float32 and m32["index"].device.type == "cpu"
    # copies and pickles keep the table
    again = pickle.loads(pickle.dumps(m))
    assert str(again) == str(m) and again.class_names == m.class_names


def test_results_on_device(device):
    labels, p = small_case()
    m = bt.quality.rank_mistakes(labels.to(device), p.to(device), class_names=NAMES)
    assert all(v.device.type == torch.device(device).type for v in m.values())
    assert str(m) == str(bt.quality.rank_mistakes(labels, p, class_names=NAMES))
    per = bt.quality.mistakes_per_class(labels.to(device), p.to(device), class_names=NAMES)
    assert per["class"].device.type == "cpu" and str(per) == str(bt.quality.mistakes_per_class(labels, p, class_names=NAMES))
    if importlib.util.find_spec("pandas") is not None:
        assert m.to_pandas()["index"].tolist() == [3, 5, 1]


def test_mistakes_per_class_mapping():
    labels, p, _ = random_case(2)
    per = bt.quality.mistakes_per_class(labels, p, class_names=["w", "x", "y", "z"])
    assert isinstance(per, collections.abc.Mapping)
    assert list(per) == ["class", "count", "support", "rate", "confused_with"] and len(per) == 5
    assert per.num_rows == 4 and per["class"].dtype == torch.int64 and per["rate"].dtype == torch.float64
    assert sorted(per["class"].tolist()) == [0, 1, 2, 3]
    rows = per.rows()
    for row, c, pairs in zip(rows, per["class"].tolist(), per["confused_with"]):
        assert row.label == "wxyz"[c]
        assert row.confused_with == [("wxyz"[j], n) for j, n in pairs]
        assert row.count == sum(n for _, n in pairs)
    assert dict(per)["confused_with"] is per["confused_with"]


# --------------------------------------------------------------------------- pandas


def test_to_pandas():
    pd = pytest.importorskip("pandas")
    labels, p = small_case()
    m = bt.quality.rank_mistakes(labels, p, class_names=NAMES)
    df = m.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["index", "target", "prediction", "confidence", "target_name", "prediction_name"]
    assert df["index"].tolist() == [3, 5, 1] and df["prediction_name"].tolist() == ["red", "yellow", "yellow"]
    np.testing.assert_array_equal(df["confidence"].to_numpy(), [0.91, 0.70, 0.60])
    assert list(bt.quality.rank_mistakes(labels, p).to_pandas().columns) == ["index", "target", "prediction", "confidence"]
    per = bt.quality.mistakes_per_class(labels, p, class_names=NAMES).to_pandas()
    assert list(per.columns) == ["class", "name", "count", "support", "rate", "confused_with"]
    assert per["name"].tolist() == ["green", "red", "yellow"] and per["confused_with"].tolist()[0] == [(1, 1)]


def test_to_pandas_without_pandas(monkeypatch):
    labels, p = small_case()
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    for result in (bt.quality.rank_mistakes(labels, p), bt.quality.mistakes_per_class(labels, p)):
        with pytest.raises(
            ImportError, match=r"to_pandas\(\) needs pandas: pip install 'balancedtorch\[all\]' \(or pip install pandas\)"
        ):
            result.to_pandas()


_PANDAS_SCRIPT = r"""
import warnings
import numpy as np, pandas as pd
import balancedtorch as bt
warnings.simplefilter("error")  # torch's "The given NumPy array is not writable" warning becomes an error
rng = np.random.default_rng(0)
N, K = 300, 3
y = rng.integers(0, K, N)
p = rng.dirichlet(np.ones(K), N)
ys, yf, pdf = pd.Series(y), pd.Series(y.astype(float)), pd.DataFrame(p)
assert not np.asarray(ys).flags.writeable and not np.asarray(pdf).flags.writeable  # the case that warned
snapshot = pdf.copy()
calls = {
    "find_label_issues": lambda: bt.quality.find_label_issues(ys, pdf),
    "find_label_issues ranked": lambda: bt.quality.find_label_issues(yf, pdf, return_indices_ranked_by="normalized_margin"),
    "find_label_issues multi_label": lambda: bt.quality.find_label_issues(pd.DataFrame((p > 0.3).astype(int)), pdf, multi_label=True),
    "find_label_issues confident_joint": lambda: bt.quality.find_label_issues(ys, pdf, confident_joint=pd.DataFrame(np.full((K, K), 5))),
    "find_label_issues num_to_remove": lambda: bt.quality.find_label_issues(ys, pdf, num_to_remove_per_class=pd.Series([1, 1, 1])),
    "label_quality_scores": lambda: bt.quality.label_quality_scores(ys, pdf),
    "rank_mistakes": lambda: str(bt.quality.rank_mistakes(ys, pdf, class_names=pd.Series(["a", "b", "c"]))),
    "mistakes_per_class": lambda: str(bt.quality.mistakes_per_class(ys, pdf)),
    "coverage_report": lambda: str(bt.quality.coverage_report(ys, {"a": pd.Series(rng.integers(0, 2, N))})),
    "LabelShiftEstimator probs": lambda: bt.quality.LabelShiftEstimator(K).fit(ys, pdf).estimate(pdf),
    "LabelShiftEstimator labels": lambda: bt.quality.LabelShiftEstimator(K).fit(ys, ys).estimate(ys),
    "DriftMonitor labels": lambda: bt.quality.DriftMonitor(ys).update(ys),
    "DriftMonitor probs": lambda: bt.quality.DriftMonitor(pdf).update(pdf),
    "DriftMonitor.from_histogram": lambda: bt.quality.DriftMonitor.from_histogram(pd.Series([5, 6, 7])),
    "class_weights labels": lambda: bt.class_weights(labels=ys),
    "class_weights counts": lambda: bt.class_weights(counts=pd.Series([5.0, 6.0, 7.0])),
    "ClassificationMetrics labels": lambda: bt.metrics.ClassificationMetrics(K).update(pd.Series(rng.integers(0, K, N)), ys),
}
for name, call in calls.items():
    try:
        call()
    except Exception as err:
        raise SystemExit(f"{name}: {type(err).__name__}: {err}")
assert pdf.equals(snapshot)
a = bt.quality.find_label_issues(ys, pdf, return_indices_ranked_by="self_confidence")
b = bt.quality.find_label_issues(y, p, return_indices_ranked_by="self_confidence")
assert np.array_equal(a, b)
print("clean")
"""


@pytest.mark.slow
def test_pandas_inputs_do_not_warn():
    pytest.importorskip("pandas")
    # torch warns about non-writable arrays once per process: a fresh interpreter sees the first one
    root = str(Path(bt.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _PANDAS_SCRIPT], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stdout + out.stderr


# --------------------------------------------------------------------------- logits refused with a hint


def _entry_points():
    labels, p, logits = random_case(4, N=120, K=3)
    fit = bt.quality.LabelShiftEstimator(3).fit(labels, p)
    monitor = bt.quality.DriftMonitor(p)
    return (
        labels,
        p,
        logits,
        {
            "find_label_issues": lambda x: bt.quality.find_label_issues(labels, x),
            "find_label_issues ranked": lambda x: bt.quality.find_label_issues(
                labels.numpy(), x.numpy(), return_indices_ranked_by="self_confidence"
            ),
            "label_quality_scores": lambda x: bt.quality.label_quality_scores(labels, x),
            "rank_mistakes": lambda x: bt.quality.rank_mistakes(labels, x),
            "mistakes_per_class": lambda x: bt.quality.mistakes_per_class(labels, x),
            "LabelShiftEstimator.fit": lambda x: bt.quality.LabelShiftEstimator(3).fit(labels, x),
            "LabelShiftEstimator.estimate": lambda x: fit.estimate(x),
            "DriftMonitor": lambda x: bt.quality.DriftMonitor(x),
            "DriftMonitor.update": lambda x: monitor.update(x),
        },
    )


ENTRY_POINTS = list(_entry_points()[3])


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_logits_get_a_softmax_hint(entry):
    labels, p, logits, calls = _entry_points()
    with pytest.raises(
        ValueError,
        match=r"must hold probabilities in \[0, 1\], got \w+\[\d+, \d+\] = .*if these are logits, pass logits\.softmax\(dim=1\)",
    ):
        calls[entry](logits)
    # positive scores that do not sum to 1 (e.g. exp(logits) or per-class sigmoids)
    with pytest.raises(ValueError, match=r"rows must sum to 1 .*row \d+ sums to .*logits\.softmax\(dim=1\)"):
        calls[entry](torch.sigmoid(logits))
    # NaN is not logits: no softmax advice
    bad = p.clone()
    bad[7, 1] = float("nan")
    with pytest.raises(ValueError, match=r"must hold finite probabilities, got \w+\[7, 1\] = nan$"):
        calls[entry](bad)
    calls[entry](p)  # the probabilities themselves pass


def test_drift_monitor_hint_names_argmax_too():
    _, _, logits = random_case(5)
    with pytest.raises(ValueError, match=r"reference_preds must hold probabilities.*softmax\(dim=1\).*logits\.argmax\(1\)"):
        bt.quality.DriftMonitor(logits)


def test_multi_label_logits_get_a_sigmoid_hint():
    _, _, logits = random_case(6)
    hot = (logits > 0).long()
    with pytest.raises(ValueError, match=r"if these are logits, pass logits\.sigmoid\(\)"):
        bt.quality.find_label_issues(hot, logits, multi_label=True)
    bt.quality.find_label_issues(hot, logits.sigmoid(), multi_label=True)  # sigmoids need not sum to 1


def test_logits_error_type_as_cleanlab():
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    labels, _, logits = random_case(7)
    with pytest.raises(ValueError) as theirs:
        cleanlab_filter.find_label_issues(labels.numpy(), logits.numpy())
    with pytest.raises(ValueError, match="softmax") as ours:
        bt.quality.find_label_issues(labels.numpy(), logits.numpy())
    assert type(theirs.value) is type(ours.value)


def test_bfloat16_and_float16_softmax_outputs_are_probabilities():
    # bfloat16 rounds each probability to 2**-8 relative: a softmax row sums to 1.0017 here, beyond the 1e-3 that
    # float32 is held to, and float16 sums accumulated in float16 drift too; logits are still refused
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (200,), generator=g)
    probs = torch.softmax(torch.randn(200, 3, generator=g) * 2, 1)
    assert (probs.bfloat16().float().sum(1) - 1).abs().max() > 1e-3
    for dtype in (torch.bfloat16, torch.float16):
        p = probs.to(dtype)
        issues = bt.quality.find_label_issues(y, p)
        assert issues.dtype == torch.bool and issues.shape == (200,)
        if dtype == torch.float16:  # its values in float32 sum to 1 within 1e-3: the same answer
            assert torch.equal(issues, bt.quality.find_label_issues(y, p.float()))
        assert bt.quality.rank_mistakes(y, p).num_rows == int((p.float().argmax(1) != y).sum())
        bt.quality.mistakes_per_class(y, p)
        with pytest.raises(ValueError, match="rows must sum to 1"):
            bt.quality.find_label_issues(y, torch.sigmoid(torch.randn(200, 3, generator=g)).to(dtype))


# --------------------------------------------------------------------------- class_names


def test_class_names_validated():
    labels, p = small_case()
    for call in (bt.quality.rank_mistakes, bt.quality.mistakes_per_class):
        with pytest.raises(ValueError, match=r"class_names has 2 names but pred_probs has 3 classes"):
            call(labels, p, class_names=["red", "green"])
        with pytest.raises(ValueError, match=r"class_names has 4 names"):
            call(labels, p, class_names=["a", "b", "c", "d"])
        with pytest.raises(TypeError, match="class_names must be a sequence of 3 names"):
            call(labels, p, class_names="rgb")
        with pytest.raises(TypeError, match="class_names must be a sequence"):
            call(labels, p, class_names={0: "red", 1: "yellow", 2: "green"})
        assert call(labels, p, class_names=np.array(NAMES)).class_names == NAMES
        with pytest.raises(TypeError, match=r"class_names must be strings .* class_names\[0\] = 0"):
            call(labels, p, class_names=(0, 1, 2))  # class ids passed by mistake


# --------------------------------------------------------------------------- reprs


def test_result_reprs():
    labels, p = small_case()
    m = bt.quality.rank_mistakes(labels, p, class_names=NAMES)
    assert repr(m) == (
        "RankedMistakes(3 mistakes of 8 samples, keys=['index', 'target', 'prediction', 'confidence'], "
        "class_names=['red', 'yellow', 'green']; print() it for the table)"
    )
    per = bt.quality.mistakes_per_class(labels, p)
    assert repr(per) == (
        "MistakesPerClass(3 classes of 8 samples, keys=['class', 'count', 'support', 'rate', 'confused_with']; "
        "print() it for the table)"
    )
    many = bt.quality.rank_mistakes(
        torch.arange(10), torch.full((10, 10), 0.1, dtype=torch.float64), class_names=list("abcdefghij")
    )
    assert "class_names=['a', 'b', 'c', 'd', 'e', …]" in repr(many)


def test_estimator_and_monitor_reprs_show_non_default_arguments():
    labels, p, _ = random_case(8)
    assert repr(bt.quality.LabelShiftEstimator(4)) == "LabelShiftEstimator(num_classes=4)"
    default = repr(bt.quality.DriftMonitor(p))
    assert default == "DriftMonitor(num_classes=4, reference_size=300, window=None, method='both', samples=0)"
    custom = bt.quality.DriftMonitor(p, window=50, psi_threshold=0.3, alpha=0.05, eps=1e-3, method="chi2")
    custom.update(p[:20])
    assert repr(custom) == (
        "DriftMonitor(num_classes=4, reference_size=300, window=50, method='chi2', psi_threshold=0.3, alpha=0.05, "
        "eps=0.001, samples=20)"
    )


def test_public_quality_api_documented():
    # every public class and function, and each public method, has a Google-style docstring with an example
    for name in bt.quality.__all__:
        obj = getattr(bt.quality, name)
        doc = obj.__doc__ or ""
        assert "Example" in doc, name
        if callable(obj) and not isinstance(obj, type):
            assert "Args:" in doc and "Returns:" in doc, name
    for cls, methods in (
        (bt.quality.LabelShiftEstimator, ("fit", "estimate")),
        (bt.quality.DriftMonitor, ("update", "status", "reset", "from_histogram")),
        (bt.quality.RankedMistakes, ("rows", "to_string", "to_pandas")),
        (bt.quality.MistakesPerClass, ("rows", "to_string", "to_pandas")),
    ):
        for method in methods:
            assert len((getattr(cls, method).__doc__ or "").strip()) > 20, f"{cls.__name__}.{method}"
