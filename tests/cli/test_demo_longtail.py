"""The long-tail demo (demo --task longtail): a tiny run, the CIFAR-10 reader on generated batches, argument errors."""

import json
import os
import pickle
import re

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli, demo_longtail
from balancedtorch.demo_longtail import METHODS, Method

ALL = list(METHODS)
CPU = torch.device("cpu")


def test_profile_is_cifar10_lt_and_the_shot_groups():
    # CIFAR-10-LT (rho = 100) as Cao et al.'s imbalance_cifar.py builds it
    counts = demo_longtail.long_tail_counts(5000)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert demo_longtail.shot_groups(counts) == {"many": [0, 1, 2, 3], "medium": [4, 5, 6], "few": [7, 8, 9]}
    generated = demo_longtail.long_tail_counts(demo_longtail.LARGEST)
    assert generated == [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    # the literature's thresholds (many > 100, few < 20) on the generated profile
    groups = demo_longtail.shot_groups(generated)
    assert [generated[c] for c in groups["many"]] == [n for n in generated if n > 100]
    assert [generated[c] for c in groups["few"]] == [n for n in generated if n < 20]
    assert min(demo_longtail.long_tail_counts(40)) == 1


def test_generated_data_follow_the_profile_and_the_seed():
    a = demo_longtail.synthetic_long_tail(0, largest=60, test_per_class=7)
    b = demo_longtail.synthetic_long_tail(0, largest=60, test_per_class=7)
    c = demo_longtail.synthetic_long_tail(1, largest=60, test_per_class=7)
    assert torch.bincount(a.y_train, minlength=10).tolist() == demo_longtail.long_tail_counts(60) == a.counts
    assert torch.bincount(a.y_test, minlength=10).tolist() == [7] * 10
    assert a.x_train.shape == (len(a.y_train), 3, 16, 16) and torch.isfinite(a.x_train).all()
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    # the classes are told apart by their pattern: class means differ more than the noise within a class
    means = torch.stack([a.x_test[a.y_test == k].mean(0) for k in range(10)])
    assert float(torch.cdist(means.flatten(1), means.flatten(1)).max()) > 3.0


def _cb(counts):
    return bt.class_weights(counts=counts, scheme="effective_number", beta=demo_longtail.CB_BETA)


#: method -> (the bt.nn class of its criterion, deferred re-weighting?, its batch mixer: None, "mixup" or "remix")
EXPECTED = {
    "ce": (bt.nn.CrossEntropyLoss, False, None),
    "focal": (bt.nn.FocalLoss, False, None),
    "drw": (bt.nn.CrossEntropyLoss, True, None),
    "ldam-drw": (bt.nn.LDAMLoss, True, None),
    "balanced-softmax": (bt.nn.BalancedSoftmaxLoss, False, None),
    "la": (bt.nn.LogitAdjustedLoss, False, None),
    "vs": (bt.nn.VSLoss, False, None),
    "seesaw": (bt.nn.SeesawLoss, False, None),
    "mixup": (bt.nn.CrossEntropyLoss, False, "mixup"),
    "remix": (bt.nn.CrossEntropyLoss, False, "remix"),
    "remix-drw": (bt.nn.CrossEntropyLoss, True, "remix"),
}


def test_every_method_builds_the_real_class_it_names():
    assert set(METHODS) == set(EXPECTED) and all(demo_longtail.available(m) for m in METHODS)
    counts = demo_longtail.long_tail_counts(500)
    for name, (cls, deferred, mix_kind) in EXPECTED.items():
        method = METHODS[name]
        assert method.uses.startswith(("bt.nn.", "bt.augment.")) and method.needs and cls.__name__ in method.uses
        model, criterion, mix = demo_longtail.build_run(name, counts, 15, CPU)
        if deferred:
            assert type(criterion) is demo_longtail.DeferredReweighting and criterion.switch == 10, name
            assert type(criterion.before) is cls and type(criterion.after) is cls, name
            assert criterion.before.weight is None, name
            torch.testing.assert_close(criterion.after.weight.double(), _cb(counts).double())
        else:
            assert type(criterion) is cls, (name, type(criterion))
        if mix_kind is None:
            assert mix is None, name
        else:
            assert type(mix) is bt.augment.MixUp and mix.alpha == 1.0, name
            assert mix.remix == (mix_kind == "remix") and mix.class_counts == tuple(counts), name
            assert (mix.kappa, mix.tau) == (3.0, 0.5)
        assert isinstance(model.head, demo_longtail.NormedLinear) == (name == "ldam-drw"), name
    # the hyper-parameters the table's "uses" column names
    focal = METHODS["focal"].loss(counts, 15)
    assert focal.gamma == demo_longtail.FOCAL_GAMMA
    torch.testing.assert_close(focal.weight.double(), _cb(counts).double())
    ldam = METHODS["ldam-drw"].loss(counts, 15)
    assert (ldam.before.max_m, ldam.before.s, ldam.after.max_m, ldam.after.s) == (0.5, 30.0, 0.5, 30.0)
    assert ldam.before.class_counts == ldam.after.class_counts == tuple(counts)
    vs, la = METHODS["vs"].loss(counts, 15), METHODS["la"].loss(counts, 15)
    assert (vs.gamma, vs.tau, vs.class_counts) == (0.3, 1.0, tuple(counts))
    assert (la.tau, la.class_counts) == (1.0, tuple(counts))
    assert METHODS["balanced-softmax"].loss(counts, 15).class_counts == tuple(counts)
    seesaw = METHODS["seesaw"].loss(counts, 15)
    assert (seesaw.num_classes, seesaw.p, seesaw.q) == (10, 0.8, 2.0)


def test_every_method_trains_with_its_real_loss_and_drw_switches_on_time(monkeypatch):
    """A tiny run of every method; forward hooks on the real criteria record which one each batch used, and when."""
    seen = {}  # method -> list of (class name of the loss called, epoch, dims of the target)
    build = demo_longtail.build_run

    def spying_build(name, counts, epochs, device):
        model, criterion, mix = build(name, counts, epochs, device)
        calls = seen.setdefault(name, [])
        deferred = isinstance(criterion, demo_longtail.DeferredReweighting)
        for part, module in (("before", criterion.before), ("after", criterion.after)) if deferred else (("", criterion),):
            module.register_forward_hook(
                lambda m, args, out, part=part: calls.append(
                    (type(m).__name__, part, criterion.epoch if deferred else None, args[1].dim())
                )
            )
        return model, criterion, mix

    monkeypatch.setattr(demo_longtail, "build_run", spying_build)
    data = demo_longtail.synthetic_long_tail(0, largest=30, test_per_class=3)
    epochs, batches = 3, -(-len(data.y_train) // demo_longtail.BATCH)
    assert demo_longtail.drw_epoch(epochs) == 2  # round(2/3 * 3)
    for name in METHODS:
        r = demo_longtail.train_and_evaluate(data, name, epochs=epochs, seed=0, device=CPU)
        assert len(r["per_class"]) == 10 and 0 <= r["balanced_accuracy"] <= 1 and r["few"] == r["few"]
        cls, deferred, mix_kind = EXPECTED[name]
        calls = seen[name]
        assert len(calls) == epochs * batches, name
        assert {c[0] for c in calls} == {cls.__name__}, name
        # MixUp and Remix feed probability targets (B, C) to the loss; the others class indices (B,)
        assert {c[3] for c in calls} == {2 if mix_kind else 1}, name
        if deferred:  # the plain loss for epochs 0 and 1, the class-balanced one from epoch 2
            assert [(c[1], c[2]) for c in calls] == [("before", e) for e in (0, 1) for _ in range(batches)] + [
                ("after", 2)
            ] * batches, name
    assert set(seen) == set(METHODS)


def test_deferred_reweighting_switches_at_two_thirds():
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.tensor([1.0, 5.0, 9.0])
    drw = demo_longtail.DeferredReweighting(bt.nn.CrossEntropyLoss(), bt.nn.CrossEntropyLoss(weight=w), switch=10)
    seen = []
    for epoch in range(15):
        drw.set_epoch(epoch)
        seen.append(float(drw(logits, target)))
    plain, weighted = float(bt.nn.CrossEntropyLoss()(logits, target)), float(bt.nn.CrossEntropyLoss(weight=w)(logits, target))
    assert seen == [plain] * 10 + [weighted] * 5 and plain != weighted
    assert int(round(demo_longtail.DRW_AT * 15)) == 10


def test_tiny_run_prints_and_writes_the_table(tmp_path):
    lines = []
    result = demo_longtail.run_longtail_demo(
        "cpu", seed=3, seeds=2, epochs=2, methods=ALL, out=str(tmp_path), largest=40, test_per_class=6, printer=lines.append
    )
    table = result["table"]
    assert list(table) == ALL and result["skipped"] == []
    for name in ALL:
        cells = table[name]
        assert all(len(cells[k]) == 2 for k in ("balanced_accuracy", "many", "medium", "few"))
        assert all(0.0 <= v <= 1.0 for k in ("balanced_accuracy", "many", "few") for v in cells[k])
        row = [line for line in lines if re.match(rf"{name}\s+(\d\.\d{{3}} ± \d\.\d{{3}}\s+){{4}}\s*bt\.", line)]
        assert len(row) == 1, "\n".join(lines)
        # the balanced accuracy is the mean of the per-class accuracies of each run
        for run, value in zip(result["runs"][name], cells["balanced_accuracy"]):
            assert value == pytest.approx(np.mean(run["per_class"]))
    assert any(line.startswith("shot groups: many > 8 images [0, 1, 2]") for line in lines), "\n".join(lines)
    assert any("NOT reproduced" in line for line in lines)
    text, raw = result["paths"]
    assert open(text, encoding="utf-8").read().count("± ") >= 4 * len(ALL)
    saved = json.load(open(raw, encoding="utf-8"))
    assert saved["seeds"] == [3, 4] and saved["runs"]["la"][1]["per_class"] == result["runs"]["la"][1]["per_class"]
    assert set(saved["quoted_not_reproduced"]) == set(demo_longtail.QUOTED) and "remix-drw" in demo_longtail.QUOTED
    assert any(re.match(r"\s+Remix-DRW\s+79\.76%\s+Chou et al\. 2020, Table 1", line) for line in lines), "\n".join(lines)


def test_missing_methods_are_skipped_by_default_and_refused_by_name(monkeypatch, tmp_path):
    monkeypatch.setattr(
        demo_longtail, "METHODS", {"ce": METHODS["ce"], "future": Method("Future", "bt.nn.NoSuchLoss", ("NoSuchLoss",), None)}
    )
    lines = []
    result = demo_longtail.run_longtail_demo(
        "cpu", seeds=1, epochs=1, out=None, largest=20, test_per_class=2, printer=lines.append
    )
    assert list(result["table"]) == ["ce"] and result["skipped"] == ["future"]
    assert any(line.startswith("skipped (their classes are not in this build of balancedtorch): future") for line in lines)
    with pytest.raises(ValueError, match=r"--methods: future need bt\.nn\.NoSuchLoss, which this build of balancedtorch lacks"):
        demo_longtail.parse_methods("ce,future", ValueError)


# ---------------------------------------------------------------- CIFAR-10 from a local copy


def write_cifar(root, per_batch=30, test=20, byte_keys=True, seed=0):
    """A tiny CIFAR-10 in its python format: 5 training batches and a test batch, pickled dicts of numpy arrays."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    key = (lambda k: k.encode()) if byte_keys else (lambda k: k)
    written = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.arange(n) % 10]
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({key("batch_label"): key(name), key("labels"): labels, key("data"): data}, f, protocol=2)
        written[name] = (data, labels)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({key("label_names"): [key(f"class{c}") for c in range(10)]}, f, protocol=2)
    return folder, written


@pytest.mark.parametrize("byte_keys", [True, False], ids=["python2_bytes_keys", "str_keys"])
def test_cifar_reader_reads_the_batches(tmp_path, byte_keys):
    folder, written = write_cifar(str(tmp_path), byte_keys=byte_keys)
    for root in (str(tmp_path), folder):  # torchvision's root, or the batches folder itself
        x_train, y_train, x_test, y_test = demo_longtail.load_cifar10(root)
        assert x_train.shape == (150, 3, 32, 32) and x_train.dtype == torch.uint8 and x_test.shape == (20, 3, 32, 32)
        expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
        assert np.array_equal(x_train.numpy(), expected)
        assert np.array_equal(x_test.numpy(), written["test_batch"][0].reshape(-1, 3, 32, 32))
        # channel-major rows, as CIFAR stores them: the first 1024 bytes are the red plane
        assert np.array_equal(x_train[0, 0].numpy().ravel(), written["data_batch_1"][0][0, :1024])
        assert y_train.tolist() == sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])


def test_cifar_long_tail_subset(tmp_path):
    write_cifar(str(tmp_path), per_batch=60)  # 30 images per class
    data = demo_longtail.cifar10_long_tail(str(tmp_path))
    assert (
        data.counts == demo_longtail.long_tail_counts(30) and torch.bincount(data.y_train, minlength=10).tolist() == data.counts
    )
    again = demo_longtail.cifar10_long_tail(str(tmp_path))
    assert torch.equal(data.x_train, again.x_train)  # one fixed subset for every seed
    assert data.x_train.mean((0, 2, 3)).abs().max() < 1e-4 and len(data.y_test) == 20
    torch.testing.assert_close(data.x_train.std((0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_cli_runs_on_a_local_cifar(tmp_path, capsys):
    write_cifar(str(tmp_path / "data"), per_batch=40)
    out = tmp_path / "out"
    argv = ["demo", "--task", "longtail", "--data-root", str(tmp_path / "data"), "--epochs", "1", "--seeds", "2"]
    assert cli.main(argv + ["--methods", "ce,la", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "data: CIFAR-10-LT from" in text and f"train images per class: {demo_longtail.long_tail_counts(20)}" in text
    assert re.search(r"^la\s+\d\.\d{3} ± \d\.\d{3}", text, re.M), text
    # only the figures quoted for the methods that ran: CE's, not Remix-DRW's
    assert re.search(r"^\s+CE \(ERM\)\s+71\.86%", text, re.M) and "79.76" not in text, text
    assert os.path.exists(out / "longtail_results.txt") and os.path.exists(out / "longtail_results.json")


def test_cifar_reader_refuses_code_in_a_batch(tmp_path, capsys):
    folder, _ = write_cifar(str(tmp_path))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    assert cli.main(["demo", "--task", "longtail", "--data-root", str(tmp_path), "--epochs", "1", "--seeds", "1"]) == 2
    err = capsys.readouterr()
    assert "--data-root: unexpected object" in err.err and "pwned" not in err.out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--methods", "ce,nope"], "--methods: unknown nope; choose from ce, focal, drw, ldam-drw"),
        (["--methods", ","], "--methods must name at least one"),
        (["--steps", "5"], "--task longtail takes --epochs"),
        (["--epochs", "0"], "must be >= 1"),
        (["--seeds", "0"], "must be >= 1"),
        (["--no-feature-smote"], "--no-feature-smote applies to the classification demo"),
        (["--data-root", "/no/such/folder"], "--data-root '/no/such/folder' is not a folder"),
    ],
)
def test_cli_argument_errors(capsys, argv, match):
    assert cli.main(["demo", "--task", "longtail", *argv]) == 2
    assert match in capsys.readouterr().err


def test_cli_data_root_without_batches_and_options_of_other_tasks(tmp_path, capsys):
    assert cli.main(["demo", "--task", "longtail", "--data-root", str(tmp_path)]) == 2
    assert "--data-root: no CIFAR-10 python batches under" in capsys.readouterr().err
    for task in ("classification", "loop"):
        assert cli.main(["demo", "--task", task, "--methods", "ce"]) == 2
        assert "--methods applies to --task longtail" in capsys.readouterr().err
    assert cli.main(["demo", "--data-root", str(tmp_path)]) == 2
    assert "--data-root applies to --task longtail" in capsys.readouterr().err


def test_cli_help_lists_every_method_and_the_default_epochs():
    demo = cli._build_parser()._subparsers._group_actions[0].choices["demo"]
    helps = {a.dest: a.help for a in demo._actions}
    assert helps["epochs"].endswith(f"longtail: {demo_longtail.EPOCHS})") and demo_longtail.EPOCHS == 30
    assert helps["methods"].endswith(": " + ", ".join(METHODS)), helps["methods"]
