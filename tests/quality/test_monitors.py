"""DDP-safe metrics and monitors (one collective each), and DriftMonitor's statistics and window."""

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

import balancedtorch as bt
from balancedtorch.quality.shift import _chi2_homogeneity

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

K = 4
NAMES = ["red", "yellow", "green", "off"]
# long-tailed predicted-class shares; the rarest class still expects 10
# reference samples at the smallest reference size tested (500)
SHARES = np.array([0.45, 0.25, 0.15, 0.08, 0.05, 0.02])


# --- two gloo processes -------------------------------------------------------------


def _init(rank, world_size, init_file):
    # a short collective timeout: a mismatched collective errors out instead of hanging for 30 min
    init_gloo(rank, world_size, init_file, timeout=20)


def _rank_case(rank, n=500):
    rng = np.random.default_rng(300 + rank)
    y = rng.integers(0, K, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, K, n))
    return torch.tensor(p), torch.tensor(y)


def _single_process(parts):
    m = bt.metrics.ClassificationMetrics(K, class_names=NAMES)
    for p, y in parts:
        m.update(p, y)
    return m


# --- ClassificationMetrics under DDP -------------------------------------------------


def _report_on_rank0_worker(rank, world_size, init_file, out_dir):
    _init(rank, world_size, init_file)
    try:
        p, y = _rank_case(rank)
        m = bt.metrics.ClassificationMetrics(K, class_names=NAMES)
        m.update(p, y)
        out = {"p": p, "y": y}
        if rank == 0:  # before any compute(): a clear error, no collective
            with pytest.raises(RuntimeError, match=r"call compute\(\) on every rank first"):
                m.report()
        out["result"] = m.compute()  # the one collective, on every rank
        if rank == 0:  # rank 0 alone: nothing here may communicate
            out["report"] = m.report()
            out["report_local"] = m.report(sync=False)
            out["compute_local"] = m.compute(sync=False)  # local too: no collective
            m.plot_confusion_matrix(f"{out_dir}/cm.png")  # returns a Figure, saved to the path
            m.plot_per_class(f"{out_dir}/bars.png")
            out["cm_png"] = open(f"{out_dir}/cm.png", "rb").read(4)
            out["bars_png"] = open(f"{out_dir}/bars.png", "rb").read(4)
            m.update(p[:10], y[:10])  # the state moves on: the reduced numbers are stale now
            stale = (m.report, lambda: m.plot_per_class(f"{out_dir}/x.png"), lambda: m.plot_confusion_matrix(f"{out_dir}/y.png"))
            for method in stale:
                with pytest.raises(RuntimeError, match=r"ran after the last compute\(\).*call compute\(\) on every rank again"):
                    method()
            out["stale_local"] = m.report(sync=False)
        dist.barrier()  # in step: before the save, so run_ranks counts a hang here as a failure
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_report_and_plots_on_rank0_only_after_compute(tmp_path):
    pytest.importorskip("matplotlib")
    parts = run_ranks(_report_on_rank0_worker, 2, tmp_path, timeout=120)
    everything = _single_process([(part["p"], part["y"]) for part in parts])
    expected = everything.compute()
    for part in parts:  # compute() gives every rank the numbers of all 1,000 samples
        assert torch.equal(part["result"]["confusion_matrix"], expected["confusion_matrix"])
        assert part["result"]["macro_f1"] == pytest.approx(expected["macro_f1"])
    report = parts[0]["report"]
    print(report)
    assert report == everything.report()  # the reduced numbers, not rank 0's
    assert " 1000\n" in report
    assert parts[0]["report_local"] == _single_process([(parts[0]["p"], parts[0]["y"])]).report()
    assert parts[0]["report_local"] != report
    local_cm = _single_process([(parts[0]["p"], parts[0]["y"])]).compute()["confusion_matrix"]
    assert torch.equal(parts[0]["compute_local"]["confusion_matrix"], local_cm)
    assert parts[0]["cm_png"] == parts[0]["bars_png"] == b"\x89PNG"
    p0, y0 = parts[0]["p"], parts[0]["y"]
    assert parts[0]["stale_local"] == _single_process([(p0, y0), (p0[:10], y0[:10])]).report()


def _pending_collective_worker(rank, world_size, init_file, out_dir):
    _init(rank, world_size, init_file)
    try:
        p, y = _rank_case(rank)
        m = bt.metrics.ClassificationMetrics(K, class_names=NAMES)
        m.update(p, y)
        monitor = bt.quality.DriftMonitor(torch.arange(K).repeat(50), window=300)
        monitor.update(p)
        out = {"p": p, "y": y, "result": m.compute(), "drift": monitor.status()}  # collectives on every rank
        if rank == 0:
            out["report"] = m.report()  # rank 0 alone, while rank 1 goes on to the next collective
            out["drift_local"] = monitor.status(sync=False)
        # a different collective of the confusion matrix's own shape and dtype, so
        # a stray all-reduce from report() would pair with it silently
        other = torch.full((K, K), 10 ** (rank + 1), dtype=torch.long)
        dist.all_reduce(other)
        out["other"] = other
        if rank == 0:
            out["report_after"] = m.report()
        dist.barrier()  # in step: before the save, so run_ranks counts a hang here as a failure
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_report_on_rank0_does_not_pair_with_another_collective(tmp_path):
    parts = run_ranks(_pending_collective_worker, 2, tmp_path, timeout=120)
    everything = _single_process([(part["p"], part["y"]) for part in parts])
    for part in parts:
        assert torch.equal(part["other"], torch.full((K, K), 110))  # the other collective is untouched
        assert part["drift"]["num_samples"] == 600  # each rank's latest 300 predictions
    assert parts[0]["report"] == parts[0]["report_after"] == everything.report()
    window = torch.cat([part["p"][-300:] for part in parts])
    assert torch.equal(parts[0]["drift"]["current_share"], torch.bincount(window, minlength=K).double() / 600)
    local = parts[0]["drift_local"]
    assert local["num_samples"] == 300
    assert torch.equal(local["current_share"], torch.bincount(parts[0]["p"][-300:], minlength=K).double() / 300)


def test_sync_false_and_no_process_group_are_local():
    p, y = _rank_case(0)
    m = bt.metrics.ClassificationMetrics(K, class_names=NAMES)
    m.update(p, y)
    assert m.report() == m.report(sync=False)  # no process group: report() needs no compute()
    assert torch.equal(m.compute(sync=False)["confusion_matrix"], m.compute()["confusion_matrix"])
    with pytest.raises(TypeError, match="sync must be True or False, got 'no'"):
        m.report(sync="no")
    with pytest.raises(TypeError, match="sync must be True or False"):
        bt.quality.DriftMonitor(y).status(sync=1)


# --- DriftMonitor: the test of homogeneity -------------------------------------------


def _multinomial(rng, n, shares, trials):
    return torch.from_numpy(rng.multinomial(n, shares, size=trials))


def test_chi2_homogeneity_equals_scipy_chi2_contingency():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for _ in range(50):
        k = int(rng.integers(2, 9))
        ref = rng.integers(0, 40, k) * (rng.random(k) < 0.8)
        cur = rng.integers(0, 400, k) * (rng.random(k) < 0.8)
        ref[0] += 1
        cur[-1] += 1
        if rng.random() < 0.3:  # a class both rows lack, and one only production has
            ref[1] = cur[1] = 0
            ref[-1] = 0
        chi2, p_value, dof = _chi2_homogeneity(torch.tensor(ref), torch.tensor(cur))
        table = np.stack([ref, cur])
        table = table[:, table.sum(0) > 0]
        if table.shape[1] < 2:
            assert float(p_value) == 1.0 and int(dof) == 0
            continue
        expected = stats.chi2_contingency(table, correction=False)
        assert float(chi2) == pytest.approx(expected.statistic, rel=1e-10)
        assert float(p_value) == pytest.approx(expected.pvalue, rel=1e-9)
        assert int(dof) == expected.dof
    # batched over leading dimensions, as in the simulations below
    R, P = _multinomial(rng, 1000, SHARES, 64), _multinomial(rng, 5000, SHARES, 64)
    chi2, p_value, _ = _chi2_homogeneity(R, P)
    assert chi2.shape == p_value.shape == (64,)
    one = _chi2_homogeneity(R[7], P[7])
    assert float(one[0]) == pytest.approx(float(chi2[7])) and float(one[1]) == pytest.approx(float(p_value[7]))


def test_status_p_value_is_scipys_two_sample_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(6)
    reference = rng.choice(5, 800, p=[0.5, 0.3, 0.15, 0.05, 0.0])  # class 4 never in the reference
    production = rng.choice(5, 3000, p=[0.45, 0.3, 0.15, 0.05, 0.05])
    monitor = bt.quality.DriftMonitor(reference, num_classes=5)
    monitor.update(production)
    status = monitor.status()
    table = np.stack([np.bincount(reference, minlength=5), np.bincount(production, minlength=5)])
    expected = stats.chi2_contingency(table, correction=False)
    assert status["chi2"] == pytest.approx(expected.statistic)
    assert status["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert status["dof"] == 4 and status["reference_size"] == 800 and status["num_samples"] == 3000


def _goodness_of_fit_p(R, P):
    """Yesterday's test: production counts against the reference shares taken as exact."""
    expected = P.sum(1, keepdim=True).double() * R.double() / R.sum(1, keepdim=True)
    used = expected > 0
    chi2 = torch.where(used, (P - expected) ** 2 / torch.where(used, expected, 1.0), 0.0).sum(1)
    return torch.special.gammaincc((used.sum(1) - 1).double() / 2, chi2 / 2)


@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_false_alarm_rate_holds_under_no_shift(alpha):
    # contingency counts simulated directly (20,000 trials per size pair): the
    # binomial standard error of a 1% rate is 0.07 points, so 1.5 x alpha is 7 of them
    rng = np.random.default_rng(2024)
    trials = 20_000
    rates = {}
    for n_ref in (500, 1000, 3000, 10_000):
        for n_cur in (1000, 10_000, 100_000):
            R, P = _multinomial(rng, n_ref, SHARES, trials), _multinomial(rng, n_cur, SHARES, trials)
            _, p_value, _ = _chi2_homogeneity(R, P)
            rates[n_ref, n_cur] = float((p_value < alpha).double().mean())
            if (n_ref, n_cur) == (1000, 10_000):
                old = float((_goodness_of_fit_p(R, P) < alpha).double().mean())
    print(f"alpha={alpha}: false-alarm rate by (reference, production) size: {rates}")
    assert max(rates.values()) <= 1.5 * alpha, rates
    assert min(rates.values()) >= 0.5 * alpha, rates  # not a test that never fires
    assert old > 0.4  # the one-sample test this replaces fires on most unchanged streams


def test_false_alarm_rate_through_the_monitor():
    rng = np.random.default_rng(7)
    alpha, runs = 0.05, 400
    alarms = 0
    for _ in range(runs):
        monitor = bt.quality.DriftMonitor(torch.from_numpy(rng.choice(6, 1000, p=SHARES)), alpha=alpha, method="chi2")
        for _ in range(5):
            monitor.update(torch.from_numpy(rng.choice(6, 2000, p=SHARES)))
        alarms += monitor.status()["drift"]
    print(f"DriftMonitor: {alarms} false alarms in {runs} unchanged streams at alpha={alpha}")
    # mean 20, sd 4.4; the goodness-of-fit test it replaces raised ~75% here
    assert alarms <= 1.5 * alpha * runs


def test_detection_rate_under_a_known_shift():
    rng = np.random.default_rng(11)
    clear = np.array([0.39, 0.25, 0.15, 0.08, 0.05, 0.08])  # the rarest class quadruples
    subtle = np.array([0.43, 0.25, 0.15, 0.08, 0.05, 0.04])  # it doubles
    for name, shifted, floor in (("clear", clear, 0.9), ("subtle", subtle, None)):
        rates = {}
        for n_ref in (500, 1000, 10_000):
            for n_cur in (1000, 10_000, 100_000):
                R, P = _multinomial(rng, n_ref, SHARES, 2000), _multinomial(rng, n_cur, shifted, 2000)
                rates[n_ref, n_cur] = float((_chi2_homogeneity(R, P)[1] < 0.01).double().mean())
        print(f"detection rate at alpha=0.01, {name} shift: {rates}")
        if floor is not None:
            assert min(rates.values()) >= floor, rates
        else:  # the reference's own noise limits what a small reference can see
            assert rates[10_000, 100_000] >= 0.99 and rates[500, 1000] < rates[10_000, 100_000]
    monitor = bt.quality.DriftMonitor(torch.from_numpy(rng.choice(6, 2000, p=SHARES)), method="chi2")
    monitor.update(torch.from_numpy(rng.choice(6, 2000, p=clear)))
    assert monitor.status()["drift"]


# --- DriftMonitor: window ------------------------------------------------------------


def test_window_alarms_on_a_late_shift_that_the_full_history_dilutes():
    rng = np.random.default_rng(3)
    reference = rng.choice(6, 5000, p=SHARES)
    late = np.array([0.30, 0.25, 0.15, 0.08, 0.07, 0.15])
    windowed = bt.quality.DriftMonitor(reference, window=2000)
    diluted = bt.quality.DriftMonitor(reference)
    for _ in range(50):
        batch = rng.choice(6, 1000, p=SHARES)
        windowed.update(batch)
        diluted.update(batch)
    assert not windowed.status()["drift"] and not diluted.status()["drift"]
    for _ in range(4):
        batch = rng.choice(6, 500, p=late)
        windowed.update(batch)
        diluted.update(batch)
    w, d = windowed.status(), diluted.status()
    print(f"window=2000: p={w['p_value']:.3g} psi={w['psi']:.3f}; no window: p={d['p_value']:.3g} psi={d['psi']:.3f}")
    assert w["num_samples"] == 2000 and d["num_samples"] == 52_000
    assert w["drift"] and w["p_value"] < 1e-12
    assert not d["drift"] and d["p_value"] > 0.01


def test_window_keeps_exactly_the_latest_predictions():
    rng = np.random.default_rng(4)
    W = 37
    monitor = bt.quality.DriftMonitor(torch.arange(5).repeat(10), window=W)
    history = []
    for step in range(200):
        m = int(rng.choice([1, 5, 36, 37, 38, 80])) if step % 7 else int(rng.integers(1, 10))
        if rng.random() < 0.5:
            batch = torch.from_numpy(rng.integers(0, 5, m))
            monitor.update(batch)
        else:  # probabilities: argmax taken
            probs = torch.softmax(torch.randn(m, 5, dtype=torch.float64), 1)
            batch = probs.argmax(1)
            monitor.update(probs)
        history += batch.tolist()
        expected = torch.bincount(torch.tensor(history[-W:]), minlength=5).double()
        assert torch.equal(monitor.counts, expected), step
        if step == 100:
            monitor.reset()
            history = []
    assert monitor.status()["num_samples"] == W


def test_window_update_cost_does_not_grow_with_the_window():
    # O(batch): a 10-sample update into a 20-million window touches 10 slots
    monitor = bt.quality.DriftMonitor(torch.arange(3).repeat(5), window=20_000_000)
    batch = torch.randint(0, 3, (10,))
    monitor.update(batch)
    rounds = []
    for _ in range(5):  # best of 5 rounds: robust to a busy machine
        start = time.perf_counter()
        for _ in range(20):
            monitor.update(batch)
        rounds.append((time.perf_counter() - start) / 20)
    assert min(rounds) < 2e-3, rounds  # a pass over the window takes ~10 ms
    assert monitor.status()["num_samples"] == 1010


# --- DriftMonitor: modes, histograms and bad input ------------------------------------


def test_methods_psi_chi2_both():
    def labels(counts):
        return np.repeat(np.arange(len(counts)), counts)

    # few samples, large share change (60/30/10% -> 40/30/30%): PSI 0.30 fires, the test (p = 0.12) cannot be sure
    few_ref, few_cur = labels([18, 9, 3]), labels([12, 9, 9])
    # many samples, small share change (50/30/20% -> 48/30/22%): the test fires, PSI 0.003 stays low
    many_ref, many_cur = labels([100_000, 60_000, 40_000]), labels([96_000, 60_000, 44_000])
    result = {}
    for name, ref, cur in (("few", few_ref, few_cur), ("many", many_ref, many_cur)):
        for method in ("both", "psi", "chi2"):
            monitor = bt.quality.DriftMonitor(ref, method=method)
            monitor.update(cur)
            result[name, method] = monitor.status()
    few, many = result["few", "both"], result["many", "both"]
    assert few["psi"] > 0.2 and few["p_value"] > 0.01
    assert many["psi"] < 0.2 and many["p_value"] < 1e-6
    assert result["few", "psi"]["drift"] and not result["few", "chi2"]["drift"] and few["drift"]
    assert not result["many", "psi"]["drift"] and result["many", "chi2"]["drift"] and many["drift"]
    assert result["few", "psi"]["method"] == "psi"
    with pytest.raises(ValueError, match="method must be one of 'both', 'psi', 'chi2', got 'ks'"):
        bt.quality.DriftMonitor(few_ref, method="ks")


def test_from_histogram_counts_and_shares():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(9)
    counts = np.array([560, 30, 410])
    production = rng.choice(3, 2000, p=[0.5, 0.05, 0.45])
    monitor = bt.quality.DriftMonitor.from_histogram(counts)
    monitor.update(production)
    status = monitor.status()
    table = np.stack([counts, np.bincount(production, minlength=3)])
    assert status["p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert status["reference_size"] == 1000
    shares = counts / 1000
    with pytest.raises(ValueError, match=r"counts holds shares.*reference_size="):
        bt.quality.DriftMonitor.from_histogram(shares)
    with pytest.raises(ValueError, match="counts holds shares"):
        bt.quality.DriftMonitor.from_histogram(shares, method="chi2")
    sized = bt.quality.DriftMonitor.from_histogram(shares, reference_size=1000)
    sized.update(production)
    assert sized.status()["p_value"] == pytest.approx(status["p_value"])
    assert sized.status()["reference_size"] == 1000
    psi_only = bt.quality.DriftMonitor.from_histogram(shares, method="psi", window=500)
    psi_only.update(production)
    s = psi_only.status()
    assert s["p_value"] is None and s["chi2"] is None and s["reference_size"] is None
    assert s["num_samples"] == 500 and s["psi"] > 0
    with pytest.raises(ValueError, match="reference_size must be an int >= 1 or None, got 0"):
        bt.quality.DriftMonitor.from_histogram(shares, reference_size=0)
    with pytest.raises(ValueError, match="window must be an int >= 1 or None, got 0"):
        bt.quality.DriftMonitor(production, window=0)


def test_update_with_another_number_of_classes_raises():
    reference = torch.from_numpy(np.random.default_rng(10).choice(3, 300))
    monitor = bt.quality.DriftMonitor(reference)
    monitor.update(torch.tensor([0, 1, 2, 2]))
    before = monitor.counts.clone()
    for c in (2, 4):
        probs = torch.softmax(torch.randn(8, c), 1)
        with pytest.raises(ValueError, match=rf"preds has {c} columns \(classes\) but the reference has 3 classes"):
            monitor.update(probs)
    with pytest.raises(ValueError, match=r"preds\[1\] = 3 is not a class of the reference, which has 3 classes.*num_classes="):
        monitor.update(torch.tensor([0, 3, 1]))
    windowed = bt.quality.DriftMonitor(reference, window=10)
    with pytest.raises(ValueError, match="preds has 5 columns"):
        windowed.update(torch.softmax(torch.randn(4, 5), 1))
    with pytest.raises(ValueError, match="reference_preds has 4 columns .* but num_classes=3"):
        bt.quality.DriftMonitor(torch.softmax(torch.randn(8, 4), 1), num_classes=3)
    assert torch.equal(monitor.counts, before)  # a refused batch changes nothing
    wider = bt.quality.DriftMonitor(reference, num_classes=4)  # num_classes= admits a class the reference lacks
    wider.update(torch.tensor([0, 3, 1]))
    assert wider.status()["num_samples"] == 3


def test_reference_labels_as_large_as_2_40_are_named():
    with pytest.raises(ValueError, match=r"reference_preds\[2\] = 1099511627776 would make .* num_classes="):
        bt.quality.DriftMonitor(torch.tensor([0, 1, 2**40]))


# one word for cross-rank behaviour: distributed= (sync= is its deprecated name)
_SYNC_METHODS = [
    ("compute", {}),
    ("report", {}),
    ("pr_curves", {}),
    ("roc_curves", {}),
    ("plot_confusion_matrix", {}),
    ("plot_per_class", {}),
    ("plot_pr_curves", {}),
    ("plot_roc_curves", {}),
]


@pytest.mark.parametrize("method, kwargs", _SYNC_METHODS, ids=[m for m, _ in _SYNC_METHODS])
def test_metrics_methods_take_distributed_and_sync_is_a_deprecated_alias(method, kwargs):
    if method.startswith("plot"):
        pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    m = bt.metrics.ClassificationMetrics(3, curves=True)
    m.update(torch.randn(40, 3), torch.randint(0, 3, (40,)))
    call = getattr(m, method)
    local = call(distributed=False, **kwargs)
    with pytest.warns(DeprecationWarning, match=rf"ClassificationMetrics.{method}: sync= is deprecated.*distributed=") as rec:
        old = call(sync=False, **kwargs)
    assert rec[0].filename == __file__
    if method == "report":
        assert old == local == call()
    elif method == "compute":
        assert torch.equal(old["confusion_matrix"], local["confusion_matrix"])
    with pytest.raises(TypeError, match="pass distributed= only"):
        call(distributed=False, sync=True, **kwargs)
    with pytest.raises(ValueError, match="distributed=True needs an initialised torch.distributed process group"):
        call(distributed=True, **kwargs)
    with pytest.raises(TypeError, match="distributed must be True, False or None"):
        call(distributed="yes", **kwargs)
    if method.startswith("plot"):
        import matplotlib.pyplot as plt

        plt.close("all")


def test_drift_monitor_status_takes_distributed_and_sync_is_a_deprecated_alias():
    monitor = bt.quality.DriftMonitor(torch.tensor([0, 1, 1, 2] * 10))
    monitor.update(torch.tensor([0, 0, 1, 2] * 5))
    local = monitor.status(distributed=False)
    with pytest.warns(DeprecationWarning, match="DriftMonitor.status: sync= is deprecated"):
        assert monitor.status(sync=False)["psi"] == local["psi"] == monitor.status()["psi"]
    with pytest.raises(ValueError, match="distributed=True needs"):
        monitor.status(distributed=True)
