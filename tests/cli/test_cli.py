"""The command line (inspect, inspect-predictions, info, demo) and the DDP example."""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "balancedtorch", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.mark.slow
def test_info():
    r = run_cli("info")
    assert r.returncode == 0, r.stderr
    assert "torch_version" in r.stdout and bt.__version__ in r.stdout


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_inspect_unknown_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,label\n1,a\n2,b\n")
    r = run_cli("inspect", str(path), "--column", "target")
    assert r.returncode == 2 and "no column named 'target'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    from balancedtorch.demo import long_tail_counts, run_demo

    counts = long_tail_counts()
    assert counts[0] == 100 and counts[-1] == 2 and all(a >= b for a, b in zip(counts, counts[1:]))
    lines = []
    result = run_demo("cpu", epochs=2, seed=1, out=str(tmp_path), progress=False, printer=lines.append)
    text = "\n".join(lines)
    for key in (
        "accuracy",
        "balanced accuracy",
        "macro-F1",
        "precision",
        "recall",
        "macro avg precision",
        "macro ROC AUC",
        "tune_threshold",
    ):
        assert key in text
    for run in ("plain", "balanced"):
        assert all(0.0 <= v <= 1.0 for v in result[run].values())
        tuned = result["thresholds"][run]
        assert len(tuned["thresholds"]) == 10
        assert all(0.0 <= tuned[k] <= 1.0 for k in tuned if k != "thresholds")
    issues = result["label_issues"]
    assert issues["flipped"] == 10  # 3% of 350 validation labels
    assert all(os.path.exists(p) for p in result["paths"])


@pytest.mark.slow
def test_ddp_example_disjoint_ranks_and_reduced_metrics(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "ddp_train.py"),
            "--world-size",
            "2",
            "--epochs",
            "2",
            "--steps",
            "4",
            "--batch-size",
            "16",
            "--report",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
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


@pytest.mark.slow
def test_ddp_example_defaults_train_above_chance(tmp_path):
    """The example's default schedule (100 steps of 64 images in all) learns the digits.

    Run in-process on one gloo rank with batch 64, which is the default 2 ranks x 32
    per step: the same number of steps over the same global batch, without spawning.
    Before, the defaults stopped after 3 steps at 0.12 test accuracy (chance 0.10).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_train", os.path.join(ROOT, "examples", "ddp_train.py"))
    ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddp)
    defaults = ddp.parse_args([])
    assert defaults.world_size * defaults.batch_size == 64
    args = ddp.parse_args(["--batch-size", "64", "--threads", "1", "--report", str(tmp_path)])
    args.init_method = f"tcp://127.0.0.1:{ddp._free_port()}"
    threads = torch.get_num_threads()
    try:
        ddp.run(0, 1, args)
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["steps"] == defaults.epochs  # one step per class-balanced epoch
    assert report["balanced_accuracy"] > 0.6, report  # 10 balanced test classes: chance is 0.1


# ----------------------------------------------------------------------------- inspect: CSV, masks, pipes


def inspect_quiet(path, *args, **kwargs):
    lines = []
    result = cli.inspect_labels(str(path), *args, out=lines.append, **kwargs)
    return result, "\n".join(lines)


def inspect_error(capsys, *argv):
    """Run `balancedtorch inspect ARGV` in-process; returns its one-line error."""
    assert cli.main(["inspect", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def random_labels(rng, sizes):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    rng.shuffle(y)
    return y


@pytest.mark.parametrize("kind", ["names", "ids", "id-and-names"])
def test_inspect_csv_with_header(tmp_path, kind):
    """A header row above the labels is the header, not a class (csv.Sniffer said "no header" for names)."""
    rng = np.random.default_rng()
    names = np.array(["bird", "cat", "dog"])
    y = random_labels(rng, [int(rng.integers(5, 15)), int(rng.integers(60, 90)), int(rng.integers(20, 40))])
    path = tmp_path / "labels.csv"
    if kind == "names":
        path.write_text("label\n" + "\n".join(names[y]) + "\n")
    elif kind == "ids":
        path.write_text("label\n" + "\n".join(map(str, y)) + "\n")
    else:
        path.write_text("file,label\n" + "\n".join(f"img{i}.png,{names[c]}" for i, c in enumerate(y)) + "\n")
    result, out = inspect_quiet(path)
    assert result["counts"] == np.bincount(y).tolist()
    assert result["header"] is True and "label" not in result["names"]
    assert "header row" in out
    if kind == "id-and-names":
        assert result["column"] == "label" and "'file' (ID-like" in out


@pytest.mark.parametrize("kind", ["ids", "names", "two-columns"])
def test_inspect_csv_without_header(tmp_path, kind):
    """Without a header the first row is data and is counted (pandas' default would drop it)."""
    rng = np.random.default_rng()
    names = np.array(["bird", "cat", "dog"])
    y = random_labels(rng, [int(rng.integers(5, 15)), int(rng.integers(60, 90)), int(rng.integers(20, 40))])
    y[0] = 1  # the first label is a class that occurs again
    path = tmp_path / "labels.csv"
    if kind == "ids":
        path.write_text("\n".join(map(str, y)) + "\n")
    elif kind == "names":
        path.write_text("\n".join(names[y]) + "\n")
    else:
        path.write_text("\n".join(f"{i},{names[c]}" for i, c in enumerate(y)) + "\n")
    result, out = inspect_quiet(path)
    assert sum(result["counts"]) == len(y) and result["counts"] == np.bincount(y).tolist()
    assert result["header"] is False and "no header row" in out
    # the override
    forced, _ = inspect_quiet(path, header="yes")
    assert sum(forced["counts"]) == len(y) - 1


def test_inspect_ambiguous_csv_lists_columns(tmp_path, capsys):
    rng = np.random.default_rng()
    n = 120
    a, b = rng.integers(0, 4, n), rng.integers(0, 6, n)
    path = tmp_path / "two.csv"
    path.write_text("id,a,b\n" + "\n".join(f"{i},{x},{z}" for i, (x, z) in enumerate(zip(a, b))) + "\n")
    err = inspect_error(capsys, path)
    assert "several columns could be the label" in err and "'a'" in err and "'b'" in err and "--column" in err
    assert "'id' (ID-like" in err
    by_name, _ = inspect_quiet(path, "b")
    by_index, _ = inspect_quiet(path, "2")
    by_negative, _ = inspect_quiet(path, "-1")
    assert by_name["counts"] == by_index["counts"] == by_negative["counts"] == np.bincount(b).tolist()
    err = inspect_error(capsys, path, "--column", "7")
    assert "column index 7 out of range" in err and "'b'" in err


def test_inspect_float_column_refused(tmp_path, capsys):
    rng = np.random.default_rng()
    scores = rng.random(80)
    path = tmp_path / "scores.csv"
    path.write_text("score\n" + "\n".join(f"{v:.4f}" for v in scores) + "\n")
    err = inspect_error(capsys, path)
    assert "'score' holds non-integer numbers" in err and "not class labels" in err
    path2 = tmp_path / "mixed.csv"
    path2.write_text("label,score\n" + "\n".join(f"{i % 3},{v:.4f}" for i, v in enumerate(scores)) + "\n")
    err = inspect_error(capsys, path2, "--column", "score")
    assert "non-integer numbers" in err
    # the label column next to it is found on its own
    result, out = inspect_quiet(path2)
    assert result["column"] == "label" and "'score' (non-integer numbers" in out


def test_inspect_id_like_column_refused(tmp_path, capsys):
    ids = np.random.default_rng().permutation(50)
    path = tmp_path / "ids.csv"
    path.write_text("sample_id\n" + "\n".join(map(str, ids)) + "\n")
    err = inspect_error(capsys, path)
    assert "ID-like: one distinct value per row (50 rows)" in err


def test_inspect_one_hot_columns_refused(tmp_path, capsys):
    rng = np.random.default_rng()
    y = rng.integers(0, 3, 60)
    onehot = np.eye(3, dtype=int)[y]
    path = tmp_path / "onehot.csv"
    path.write_text("cat,dog,bird\n" + "\n".join(",".join(map(str, r)) for r in onehot) + "\n")
    for argv in ((path,), (path, "--column", "dog")):
        err = inspect_error(capsys, *argv)
        assert "one-hot columns (cat, dog, bird" in err and "idxmax" in err
    arr = tmp_path / "onehot.npy"
    np.save(arr, onehot)
    assert "one-hot array of shape (60, 3)" in inspect_error(capsys, arr)


@pytest.mark.parametrize("fmt", ["npy", "pt"])
def test_inspect_masks_ignore_index_and_num_classes(tmp_path, fmt):
    rng = np.random.default_rng()
    masks = rng.choice([0, 1, 2, 4], p=[0.8, 0.15, 0.045, 0.005], size=(12, 24, 20)).astype(np.uint8)
    masks[:, :2] = 255  # a void border
    masks[0, 5:7, 5:7] = 4  # class 4 present in at least one image
    path = tmp_path / f"masks.{fmt}"
    if fmt == "npy":
        np.save(path, masks)
    else:
        torch.save({"masks": torch.from_numpy(masks)}, path)
    result, out = inspect_quiet(path, ignore_index=255, num_classes=6)
    valid = masks[masks != 255]
    assert result["masks"] is True
    assert result["counts"] == np.bincount(valid, minlength=6).tolist()
    assert result["ignored"] == int((masks == 255).sum())
    assert result["images"] == 12
    assert result["images_with_class"] == [int(sum((m == c).any() for m in masks)) for c in range(6)]
    assert result["absent"] == [3, 5] and result["weights"]["inverse"][3] is None
    assert f"ignored pixels: {result['ignored']}" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert rows["3"][1] == "0" and rows["5"][1] == "0"  # never-seen classes get count-0 rows
    assert "never seen: 2 of the 6 classes have count 0: 3, 5" in out
    assert "ignore_index=255" in out and "ClassificationMetrics(6, ignore_index=255)" in out
    assert "mask_fill=255" in out
    # without --ignore-index, 255 is a class, and the output says what it probably is
    _, plain = inspect_quiet(path)
    assert "pass --ignore-index 255" in plain


def test_inspect_num_classes_and_ignore_index_errors(tmp_path, capsys):
    path = tmp_path / "y.txt"
    path.write_text("\n".join(map(str, [0, 1, 2, -1, 1, 7])) + "\n")
    assert "pass --ignore-index -1" in inspect_error(capsys, path)
    err = inspect_error(capsys, path, "--ignore-index", "-1", "--num-classes", "5")
    assert "label 7 >= --num-classes 5" in err
    big = tmp_path / "big_ids.txt"
    big.write_text("0\n1\n123456789\n")
    assert "class ids must be 0..K-1" in inspect_error(capsys, big)


def test_inspect_max_rows(tmp_path):
    rng = np.random.default_rng()
    y = random_labels(rng, rng.integers(1, 20, size=45).tolist())
    path = tmp_path / "y.npy"
    np.save(path, y)
    _, out = inspect_quiet(path)
    table = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(table) == 30 and "… 15 more classes" in out
    _, out = inspect_quiet(path, max_rows=7)
    assert sum(line[:1].isdigit() for line in out.splitlines()) == 7 and "… 38 more classes" in out
    _, out = inspect_quiet(path, max_rows=0)
    assert sum(line[:1].isdigit() for line in out.splitlines()) == 45 and "more classes" not in out


def test_inspect_suggestions_name_the_rare_classes(tmp_path):
    rng = np.random.default_rng()
    sizes = [400, 350, 300, 3, 250, 2, 200]  # classes 3 and 5: < 1%
    path = tmp_path / "y.npy"
    np.save(path, random_labels(rng, sizes))
    _, out = inspect_quiet(path)
    rare = next(line for line in out.splitlines() if "rare:" in line)
    assert "classes 5, 3 have < 1% of the samples" in rare  # rarest first
    assert "class_p={5: 1.0, 3: 1.0}" in out
    names = np.array(["ant", "bee", "cow", "yak", "dog", "emu", "fox"])
    txt = tmp_path / "y.txt"
    txt.write_text("\n".join(names[random_labels(rng, sizes)]) + "\n")
    _, out = inspect_quiet(txt)
    assert "rare:    emu, yak have < 1% of the samples" in out
    # class_p is keyed by index: names sorted -> emu is 4, yak is 6
    assert "class_p={4: 1.0, 6: 1.0})  # 4 = emu, 6 = yak" in out


@pytest.mark.parametrize("masks", [False, True])
def test_inspect_suggests_only_existing_api(tmp_path, masks):
    import re

    rng = np.random.default_rng()
    if masks:
        arr = rng.choice([0, 1, 2, 255], p=[0.9, 0.08, 0.01, 0.01], size=(30, 16, 16)).astype(np.int64)
        kwargs = {"ignore_index": 255}
    else:
        arr = random_labels(rng, [900, 80, 5])
        kwargs = {}
    path = tmp_path / "a.npy"
    np.save(path, arr)
    _, out = inspect_quiet(path, **kwargs)
    advice = out[out.index("suggested:") :]
    used = set(re.findall(r"\bbt((?:\.\w+)+)", advice))
    assert used
    for dotted in used:
        obj = bt
        for part in dotted.strip(".").split("."):
            assert hasattr(obj, part), f"suggested bt{dotted} does not exist"
            obj = getattr(obj, part)


@pytest.mark.slow
def test_inspect_piped_into_head_has_no_traceback(tmp_path):
    path = tmp_path / "big.csv"
    # 3000 classes: the table (--max-rows 0) is far larger than a pipe's buffer
    path.write_text("label\n" + "\n".join(str(i % 3000) for i in range(6000)) + "\n")
    cmd = f"set -o pipefail; {sys.executable} -m balancedtorch inspect {path} --max-rows 0 | head -1"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.stdout.startswith(f"{path}: 6000 labels, 3000 classes")
    assert r.stderr == "", r.stderr  # no BrokenPipeError traceback, no "Exception ignored" at exit
    assert r.returncode == 141  # as a tool ended by SIGPIPE (128 + 13): visible under pipefail


# --- inspect-predictions / inspect: every input checked before any output; clean one-line errors ----------------


def _predictions(tmp_path, n=20, **extra):
    g = torch.Generator().manual_seed(0)
    obj = {"labels": torch.randint(0, 3, (n,), generator=g), "pred_probs": torch.softmax(torch.randn(n, 3, generator=g), 1)}
    obj.update(extra)
    path = tmp_path / "preds.pt"
    torch.save(obj, path)
    return path


def _predictions_error(capsys, *argv):
    assert cli.main(["inspect-predictions", *map(str, argv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "", captured.out  # nothing printed before the error
    err = captured.err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "\x1b" not in err, err
    return err


def test_inspect_predictions_bad_image_count_prints_and_creates_nothing(tmp_path, capsys):
    preds = _predictions(tmp_path)
    images = tmp_path / "images.pt"
    torch.save(torch.zeros(5, 3, 8, 8, dtype=torch.uint8), images)
    out = tmp_path / "grids"
    err = _predictions_error(capsys, preds, "--images", images, "--out", out)
    assert "images has 5 entries but" in err and "20" in err
    assert not out.exists()


def test_inspect_predictions_out_that_is_a_file(tmp_path, capsys):
    preds = _predictions(tmp_path)
    images = tmp_path / "images.pt"
    torch.save(torch.zeros(20, 3, 8, 8, dtype=torch.uint8), images)
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = _predictions_error(capsys, preds, "--images", images, "--out", afile)
    assert "cannot create the folder for the grids: a file of that name exists" in err
    err = _predictions_error(capsys, preds, "--images", images, "--out", afile / "sub")
    assert "cannot create the folder" in err and "is not a folder" in err


@pytest.mark.parametrize("names", ["array", "scalars"])
def test_inspect_predictions_reads_numpy_string_class_names(tmp_path, capsys, names):
    value = np.array(["cat", "dog", "eel"]) if names == "array" else [np.str_("cat"), np.str_("dog"), np.str_("eel")]
    preds = _predictions(tmp_path, class_names=value)
    assert cli.main(["inspect-predictions", str(preds)]) == 0
    out = capsys.readouterr().out
    assert "cat" in out and "eel" in out


class _NotAllowed:  # a pickled class that weights_only loading refuses
    pass


def test_inspect_predictions_unreadable_pt_is_one_clean_line(tmp_path, capsys):
    preds = _predictions(tmp_path, extra=_NotAllowed())
    err = _predictions_error(capsys, preds)
    assert "cannot read predictions (UnpicklingError:" in err and err.rstrip().endswith(")")


def test_one_line_strips_escape_codes_and_keeps_whole_sentences():
    exc = RuntimeError("\x1b[1mWeights only load failed.\x1b[0m\n\tFirst sentence here. " + "word " * 100)
    line = cli._one_line(exc)
    assert "\x1b" not in line and "\n" not in line and "\t" not in line
    assert line.startswith("Weights only load failed. First sentence here.") and len(line) <= 300


@pytest.mark.parametrize("name", ["nul.csv", "nul.txt"])
def test_inspect_refuses_non_text_input(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(b"label\ncat\nd\x00og\ncat\n")
    err = inspect_error(capsys, path)
    assert "not a text file (control character '\\x00'" in err


# ----------------------------------------------------------------------------- inspect-predictions: bad files, bfloat16


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_inspect_predictions_unreadable_files_and_out_folder_give_one_line(tmp_path):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (40,), generator=g)
    p = torch.softmax(torch.randn(40, 3, generator=g), 1)
    torch.save({"labels": y, "pred_probs": p}, tmp_path / "preds.pt")
    torch.save(torch.rand(40, 3, 5, 5, generator=g), tmp_path / "images.pt")
    (tmp_path / "corrupt.pt").write_bytes(bytes(range(256)) * 2)  # torch.load's error spans many lines
    rc, _, err = _cli("inspect-predictions", str(tmp_path / "corrupt.pt"))
    assert rc == 2 and "cannot read predictions" in err and len(err.strip().splitlines()) == 1, err
    rc, _, err = _cli("inspect", str(tmp_path / "corrupt.pt"))  # the labels reader shares the loader
    assert rc == 2 and "cannot read labels" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "afile").write_text("x")  # --out naming a file: os.makedirs raised FileExistsError (a traceback)
    rc, out, err = _cli(
        "inspect-predictions",
        str(tmp_path / "preds.pt"),
        "--images",
        str(tmp_path / "images.pt"),
        "--out",
        str(tmp_path / "afile"),
    )
    assert rc == 2 and "--out" in err and "cannot create the folder" in err and len(err.strip().splitlines()) == 1, err


def test_inspect_predictions_reads_bfloat16_probabilities(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (200,), generator=g)
    p = torch.softmax(torch.randn(200, 3, generator=g) * 2, 1).bfloat16()
    torch.save({"labels": y, "pred_probs": p}, tmp_path / "preds.pt")
    rc, out, err = _cli("inspect-predictions", str(tmp_path / "preds.pt"))
    assert rc == 0, err
    assert "bfloat16 pred_probs renormalised to sum to 1" in out.splitlines()[0]
