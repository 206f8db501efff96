"""Image grids of mistakes and novel inputs (quality.plot_mistakes / plot_novel) and `inspect-predictions`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli
from balancedtorch.quality.gallery import _estimated_noise_rate

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["red", "yellow", "green", "off"]


def _problem(seed, n=120, k=4):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, k, generator=g, dtype=torch.float64) ** 3
    p /= p.sum(1, keepdim=True)
    y = torch.where(torch.rand(n, generator=g) < 0.8, p.argmax(1), torch.randint(0, k, (n,), generator=g))
    images = torch.randint(0, 256, (n, 3, 6, 5), dtype=torch.uint8, generator=g)
    return images, y, p


def _expected_titles(y, p, n, names=None):
    m = bt.quality.rank_mistakes(y, p)
    name = (lambda c: names[c]) if names else (lambda c: c)
    idx = m["index"][:n].tolist()
    return idx, [f"{name(int(y[i]))} → {name(int(p[i].argmax()))} ({float(p[i].max()):.2f})" for i in idx]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("names", [None, NAMES])
def test_plot_mistakes_tiles_titles_and_order(seed, names):
    images, y, p = _problem(seed)
    fig = bt.quality.plot_mistakes(images, y, p, class_names=names, n=9)
    assert isinstance(fig, Figure)
    idx, titles = _expected_titles(y, p, 9, names)
    assert len(idx) == 9  # enough mistakes for a full grid
    assert len(fig.axes) == 9
    assert [ax.get_title() for ax in fig.axes] == titles
    assert [ax.get_xlabel() for ax in fig.axes] == [f"#{i}" for i in idx]
    # each tile shows its own image, unchanged
    for ax, i in zip(fig.axes, idx):
        shown = np.asarray(ax.images[0].get_array())
        np.testing.assert_array_equal(shown, images[i].permute(1, 2, 0).numpy())


def test_plot_mistakes_fewer_mistakes_than_n_and_none():
    images, y, p = _problem(2, n=40)
    wrong = int((p.argmax(1) != y).sum())
    fig = bt.quality.plot_mistakes(images, y, p, n=1000)
    assert len(fig.axes) == wrong > 0
    fig = bt.quality.plot_mistakes(images, p.argmax(1), p)
    assert len(fig.axes) == 0 and "no mistakes" in fig.texts[0].get_text()


def test_plot_mistakes_dataset_and_sequence_inputs():
    images, y, p = _problem(3)
    expected = [ax.get_title() for ax in bt.quality.plot_mistakes(images, y, p, n=6).axes]
    idx = bt.quality.rank_mistakes(y, p)["index"][:6].tolist()

    class Items(torch.utils.data.Dataset):
        def __init__(self):
            self.read = []

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            self.read.append(i)
            return images[i].float() / 255, int(y[i])

    ds = Items()
    fig = bt.quality.plot_mistakes(ds, y, p, n=6)
    assert [ax.get_title() for ax in fig.axes] == expected
    assert ds.read == idx  # only the shown images are read
    tds = torch.utils.data.TensorDataset(images, y)
    assert [ax.get_title() for ax in bt.quality.plot_mistakes(tds, y, p, n=6).axes] == expected
    dicts = [{"image": im, "label": int(t)} for im, t in zip(images, y)]
    assert [ax.get_title() for ax in bt.quality.plot_mistakes(dicts, y, p, n=6).axes] == expected
    assert [ax.get_title() for ax in bt.quality.plot_mistakes(images.numpy(), y.numpy(), p.numpy(), n=6).axes] == expected


def test_plot_mistakes_uint8_float_grey_and_normalised():
    images, y, p = _problem(4)
    i = bt.quality.rank_mistakes(y, p)["index"][0].item()
    as_float = images.float() / 255
    shown = np.asarray(bt.quality.plot_mistakes(as_float, y, p, n=1).axes[0].images[0].get_array())
    np.testing.assert_allclose(shown, as_float[i].permute(1, 2, 0).numpy(), atol=1e-7)
    # normalised floats (outside [0, 1]) are stretched to [0, 1] per image
    normed = (as_float - 0.5) / 0.2
    shown = np.asarray(bt.quality.plot_mistakes(normed, y, p, n=1).axes[0].images[0].get_array())
    x = normed[i].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(shown, (x - x.min()) / (x.max() - x.min()), atol=1e-6)
    # (N, H, W) and (N, 1, H, W): grey
    grey = images[:, 0]
    for imgs in (grey, grey[:, None]):
        ax = bt.quality.plot_mistakes(imgs, y, p, n=1).axes[0]
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), grey[i].numpy())
        assert ax.images[0].get_cmap().name == "gray"
    assert torch.equal(as_float, images.float() / 255)  # input untouched


def test_plot_mistakes_saves_png_and_does_not_leak_into_pyplot(tmp_path):
    import matplotlib.pyplot as plt

    images, y, p = _problem(5)
    before = plt.get_fignums()
    path = tmp_path / "mistakes.png"
    fig = bt.quality.plot_mistakes(images, y, p, n=4, path=str(path))
    assert plt.get_fignums() == before
    assert fig.canvas.figure is fig
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    novel = tmp_path / "novel.png"
    bt.quality.plot_novel(images, torch.randn(len(images)), n=4, path=str(novel))
    assert plt.get_fignums() == before
    assert novel.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_novel_highest_scores_first():
    images, _, _ = _problem(6)
    g = torch.Generator().manual_seed(6)
    scores = torch.randn(len(images), generator=g)
    scores[7] = scores[3] = scores.max() + 1  # a tie: lower index first
    fig = bt.quality.plot_novel(images, scores, n=5)
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:5]
    assert order[:2] == [3, 7]
    assert [ax.get_xlabel() for ax in fig.axes] == [f"#{i}" for i in order]
    assert [ax.get_title() for ax in fig.axes] == [f"score {float(scores[i]):.4g}" for i in order]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda im, y, p: bt.quality.plot_mistakes(im[:-1], y, p), ValueError, "images has 119 entries but labels has 120"),
        (lambda im, y, p: bt.quality.plot_mistakes(list(im)[:5], y, p), ValueError, "images has 5 entries"),
        (lambda im, y, p: bt.quality.plot_mistakes(im, y, p, n=0), ValueError, "n must be an int >= 1"),
        (lambda im, y, p: bt.quality.plot_mistakes(im, y, p, n=True), TypeError, "n must be an int >= 1, got True"),
        (lambda im, y, p: bt.quality.plot_mistakes(im, y, p.log()), ValueError, "pred_probs"),
        (lambda im, y, p: bt.quality.plot_mistakes(im, y, p, class_names=["a"]), ValueError, "class_names"),
        (lambda im, y, p: bt.quality.plot_mistakes(im[0, 0, 0], y, p), ValueError, "images must be"),
        (lambda im, y, p: bt.quality.plot_mistakes(object(), y, p), TypeError, "images must be"),
        (
            lambda im, y, p: bt.quality.plot_mistakes(im.float().masked_fill(im == im.max(), float("nan")), y, p),
            ValueError,
            "non-finite",
        ),
        (
            lambda im, y, p: bt.quality.plot_mistakes(im[:, :, None].expand(-1, -1, 2, -1, -1).reshape(120, 6, 6, 5), y, p),
            ValueError,
            r"C in \(1, 3, 4\)",
        ),
        (lambda im, y, p: bt.quality.plot_mistakes(im.long() * 2, y, p), ValueError, r"outside \[0, 255\]"),
        (lambda im, y, p: bt.quality.plot_novel(im, torch.randn(119)), ValueError, "images has 120 entries but scores has 119"),
        (lambda im, y, p: bt.quality.plot_novel(im, torch.full((120,), float("nan"))), ValueError, "scores must be finite"),
        (lambda im, y, p: bt.quality.plot_novel(im, torch.randn(120, 2)), ValueError, "scores must be a non-empty 1-D"),
        (lambda im, y, p: bt.quality.plot_mistakes(im.to("meta"), y, p), ValueError, "plot_mistakes: images is on the meta"),
        (
            lambda im, y, p: bt.quality.plot_novel(im.to("meta"), torch.randn(120)),
            ValueError,
            "plot_novel: images is on the meta",
        ),
    ],
)
def test_bad_input(call, exc, match):
    images, y, p = _problem(7)
    p_before = p.clone()
    with pytest.raises(exc, match=match):
        call(images, y, p)
    assert torch.equal(p, p_before)


def test_gallery_refuses_images_without_pixels():
    y = torch.tensor([0, 1])
    p = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    for images in (torch.rand(2, 3, 0, 5), torch.zeros(2, 3, 4, 0, dtype=torch.uint8), torch.zeros(2, 0, 5)):
        with pytest.raises(ValueError, match=r"images\[0\] is empty: shape \(\d+, \d+(, \d+)?\) has no pixels"):
            bt.quality.plot_mistakes(images, y, p)
    with pytest.raises(ValueError, match=r"images\[1\] is empty"):
        bt.quality.plot_novel(torch.zeros(2, 1, 5, 0), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimated_noise_rate_equals_cleanlab(seed):
    cleanlab_count = pytest.importorskip("cleanlab.count")
    _, y, p = _problem(seed, n=500)
    expected = 1 - np.trace(cleanlab_count.estimate_joint(y.numpy(), p.numpy()))
    assert _estimated_noise_rate(y, p) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- CLI


def run_cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "balancedtorch", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _expected_report(y, p, names=None):
    issues = bt.quality.find_label_issues(y, p, return_indices_ranked_by="self_confidence")
    return issues, bt.quality.rank_mistakes(y, p, names), bt.quality.mistakes_per_class(y, p, names)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pt", "npz"])
def test_inspect_predictions_output(tmp_path, kind):
    images, y, p = _problem(8, n=200)
    path = tmp_path / f"preds.{kind}"
    if kind == "pt":
        torch.save({"labels": y, "pred_probs": p, "class_names": NAMES}, path)
        names = NAMES
    else:
        np.savez(path, labels=y.numpy(), pred_probs=p.numpy())
        names = None
    r = run_cli("inspect-predictions", str(path), "--json")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    issues, ranked, per = _expected_report(y, p, names)
    lines = out.splitlines()
    assert f"200 samples, 4 classes; {ranked.num_rows} mispredicted" in lines[0]
    rate = _estimated_noise_rate(y, p)
    assert f"estimated label-noise rate: {rate:.1%}" in out
    assert f"label issues found: {len(issues)} " in out
    assert ", ".join(map(str, issues[:20].tolist())) in out
    assert per.to_string(max_rows=10) in out
    assert ranked.to_string(max_rows=20) in out  # the 20 most confident mistakes
    assert len(lines) <= 50  # one screen
    data = json.loads(lines[-1])
    assert data["label_issues"] == issues.tolist()
    assert data["top_mistakes"] == ranked["index"][:20].tolist()
    assert data["noise_rate"] == pytest.approx(rate)


@pytest.mark.slow
def test_inspect_predictions_writes_grids(tmp_path):
    images, y, p = _problem(9, n=150)
    preds, imgs, out = tmp_path / "preds.pt", tmp_path / "images.pt", tmp_path / "grids"
    torch.save({"labels": y, "pred_probs": p}, preds)
    torch.save(images, imgs)
    r = run_cli("inspect-predictions", str(preds), "--images", str(imgs), "--out", str(out), "-n", "8", "--json")
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout.splitlines()[-1])["files"]
    assert files == [str(out / "mistakes.png"), str(out / "label_issues.png")]
    for f in files:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert f"grids written: {files[0]}" in r.stdout


def test_inspect_predictions_logits_key(tmp_path, capsys):
    _, y, p = _problem(10, n=80)
    logits = p.log() + 3.0
    path = tmp_path / "preds.pt"
    torch.save({"targets": y, "logits": logits}, path)
    assert cli.main(["inspect-predictions", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pred_probs = softmax(logits)" in out
    assert bt.quality.rank_mistakes(y, logits.softmax(1)).to_string(max_rows=20).splitlines()[2] in out


@pytest.mark.parametrize(
    "make, extra, match",
    [
        (lambda d, y, p: torch.save({"labels": y}, d / "x.pt") or d / "x.pt", [], "needs 'labels' and 'pred_probs'"),
        (lambda d, y, p: torch.save(p, d / "x.pt") or d / "x.pt", [], "expected a dict"),
        (lambda d, y, p: np.savez(d / "x.npz", labels=y.numpy()[:-1], pred_probs=p.numpy()) or d / "x.npz", [], "labels has 79"),
        (lambda d, y, p: np.savez(d / "x.npz", labels=y.numpy(), pred_probs=p.numpy() * 3) or d / "x.npz", [], "pred_probs"),
        (lambda d, y, p: (d / "x.csv").write_text("1,2\n") and d / "x.csv", [], "must be a .pt dict or a .npz"),
        (lambda d, y, p: d / "missing.pt", [], "no such file"),
        (lambda d, y, p: torch.save({"labels": y, "pred_probs": p}, d / "x.pt") or d / "x.pt", ["--out", "o"], "pass --images"),
        (lambda d, y, p: torch.save({"labels": y, "pred_probs": p}, d / "x.pt") or d / "x.pt", ["-n", "0"], "-n must be >= 1"),
        (
            lambda d, y, p: (
                (torch.save({"labels": y, "pred_probs": p}, d / "x.pt"), torch.save(torch.rand(5, 3, 4, 4), d / "i.pt"))
                and d / "x.pt"
            ),
            ["--images", "{d}/i.pt"],
            "images has 5 entries but labels has 80",
        ),
    ],
)
def test_inspect_predictions_errors_are_one_line(tmp_path, capsys, make, extra, match):
    _, y, p = _problem(11, n=80)
    path = make(tmp_path, y, p)
    extra = [e.replace("{d}", str(tmp_path)) for e in extra]
    assert cli.main(["inspect-predictions", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("balancedtorch inspect-predictions: error:")
    assert match in err


def test_plot_mistakes_pil_dataset():
    Image = pytest.importorskip("PIL.Image")
    images, y, p = _problem(12)
    pil = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]  # a torchvision Dataset without transform
    i = bt.quality.rank_mistakes(y, p)["index"][0].item()
    ax = bt.quality.plot_mistakes([(im, int(t)) for im, t in zip(pil, y)], y, p, n=1).axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), images[i].permute(1, 2, 0).numpy())


# --- fig=: the grid drawn into a figure of the caller's -----------------------------------------


def _tiles(fig_or_axes):
    """Per tile: title, index label and pixels."""
    axes = fig_or_axes.axes if hasattr(fig_or_axes, "axes") else fig_or_axes
    return [(ax.get_title(), ax.get_xlabel(), np.asarray(ax.images[0].get_array()).tolist()) for ax in axes]


def test_plot_mistakes_and_novel_draw_into_a_given_figure_what_they_draw_into_their_own(tmp_path):
    import matplotlib.pyplot as plt

    images, y, p = _problem(7)
    scores = torch.randn(len(images), generator=torch.Generator().manual_seed(7))
    calls = {
        "mistakes": lambda **kw: bt.quality.plot_mistakes(images, y, p, class_names=NAMES, n=6, **kw),
        "novel": lambda **kw: bt.quality.plot_novel(images, scores, n=6, **kw),
    }
    for name, call in calls.items():
        own = call()
        fig = plt.figure(figsize=(12, 3))  # pyplot's: shown by notebooks and sphinx-gallery
        try:
            assert call(fig=fig) is fig
            assert _tiles(fig) == _tiles(own) and len(fig.axes) == 6  # same tiles, titles and pixels
            assert fig.get_suptitle() == own.get_suptitle() != ""
            assert tuple(fig.get_size_inches()) == (12, 3)  # the caller's size
            assert fig.subplotpars.left != matplotlib.rcParams["figure.subplot.left"]  # laid out: it was empty
            assert plt.fignum_exists(fig.number)
        finally:
            plt.close(fig)
        root = Figure(layout="constrained")
        left, right = root.subfigures(1, 2)
        bar = left.subplots()
        bar.bar([0, 1], [3, 4])
        path = tmp_path / f"{name}.png"
        assert call(fig=right, path=str(path)) is root  # the top-level figure, saved whole
        assert _tiles(right) == _tiles(own) and left.axes == [bar] and len(bar.patches) == 2
        assert right.get_suptitle() == own.get_suptitle()
        assert type(root.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"  # kept
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_mistakes_fig_without_mistakes_and_bad_fig():
    images, y, p = _problem(8)
    fig = Figure()
    assert bt.quality.plot_mistakes(images, p.argmax(1), p, fig=fig) is fig
    assert fig.axes == [] and fig.texts[0].get_text().startswith("no mistakes")
    used = Figure()
    used.add_subplot()
    split = Figure()
    split.subfigures(1, 2)
    for call in (
        lambda **kw: bt.quality.plot_mistakes(images, y, p, **kw),
        lambda **kw: bt.quality.plot_novel(images, torch.randn(len(images)), **kw),
    ):
        for bad in ("fig", 1, used.axes[0], [Figure()]):
            with pytest.raises(TypeError, match="fig must be a matplotlib Figure or SubFigure.*got"):
                call(fig=bad)
        with pytest.raises(ValueError, match="fig must be empty .*got one with 1 Axes and 0 subfigures"):
            call(fig=used)
        with pytest.raises(ValueError, match="fig must be empty .*0 Axes and 2 subfigures"):
            call(fig=split)
    assert len(used.axes) == 1  # nothing drawn into a refused figure
