"""bt.quality.audit and `balancedtorch audit`: the sections the inputs allow, escaping, no network, nothing written on bad input."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli

ALL_SECTIONS = ["class-balance", "advice", "label-issues", "duplicates", "leakage", "novelty", "coverage", "drift"]


def sections(page):
    return re.findall(r'<section id="([^"]+)"', page)


@pytest.fixture
def data():
    """A small data set with a planted duplicate, a planted leak, a planted label issue and an unseen test cluster."""
    g = torch.Generator().manual_seed(0)
    n, k = 60, 3
    y = torch.tensor([0] * 40 + [1] * 12 + [2] * 8)
    p = torch.softmax(4 * torch.nn.functional.one_hot(y, k).double() + 0.3 * torch.randn(n, k, generator=g).double(), 1)
    p[3] = torch.tensor([0.02, 0.96, 0.02], dtype=torch.float64)  # labelled 0, confidently 1: a label issue
    x = torch.randn(n, 6, generator=g) + 3 * torch.nn.functional.one_hot(y, 6).float()
    x[9] = x[8]  # a duplicate pair
    t = torch.randn(12, 6, generator=g)
    t[0] = x[20]  # a leak
    t[6:, 5] -= 25  # a direction no training row takes: novel (the score compares L2-normalised rows)
    return {
        "labels": y,
        "pred_probs": p,
        "features": x,
        "images": torch.rand(n, 1, 8, 8, generator=g),
        "test_features": t,
        "test_images": (torch.rand(12, 3, 10, 10, generator=g) * 255).to(torch.uint8),
    }


def test_every_section_with_every_input(tmp_path, data):
    groups = {"site": np.array(["north", "south"] * 30)}
    prod = torch.tensor([0] * 10 + [2] * 50)
    path = bt.quality.audit(
        **data, class_names=["cat", "dog", "bird"], path=tmp_path / "a.html", groups=groups, production_preds=prod
    )
    assert path == str(tmp_path / "a.html")
    page = open(path, encoding="utf-8").read()
    assert sections(page) == ALL_SECTIONS
    assert "With more inputs" not in page
    assert page.count('class="next"') == len(ALL_SECTIONS)  # every section says what to do next
    assert "cat → dog" in page  # the planted issue: given → suggested
    assert "test #0" in page and "train #20" in page  # the planted leak, side by side
    assert "<b>drift</b>" in page
    # the planted novel cluster comes first among the most novel
    novel = re.search(r'<section id="novelty">(.*?)</section>', page).group(1)
    assert set(int(i) for i in re.findall(r"#(\d+): score", novel)[:6]) == set(range(6, 12))


@pytest.mark.parametrize(
    "given, present",
    [
        (("labels",), ["class-balance", "advice"]),
        (("pred_probs",), ["class-balance"]),
        (("labels", "pred_probs"), ["class-balance", "advice", "label-issues"]),
        (("features",), ["duplicates"]),
        (("features", "test_features"), ["duplicates", "leakage", "novelty"]),
    ],
)
def test_sections_only_for_the_given_inputs(tmp_path, data, given, present):
    path = bt.quality.audit(**{k: data[k] for k in given}, path=tmp_path / "a.html")
    page = open(path, encoding="utf-8").read()
    assert sections(page) == present
    assert "With more inputs this report would show" in page  # and says what more would show


def test_class_names_are_escaped_and_nothing_external(tmp_path, data):
    names = ['<script>alert("x")</script>', "a&b", "<img src=http://evil/x.png>"]
    page = open(bt.quality.audit(**data, class_names=names, path=tmp_path / "a.html"), encoding="utf-8").read()
    assert "<script" not in page and "<img src=http" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "a&amp;b" in page
    srcs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    tags = re.findall(r"<[^>]*>", page)  # escaped text holds no "<": every tag is the page's own
    assert not [tag for tag in tags if re.search(r"https?://", tag)]
    assert "<link" not in page and "@import" not in page and "url(" not in page


@pytest.mark.parametrize(
    "change, exc, match",
    [
        ({"labels": torch.tensor([0, 5])}, ValueError, "labels"),
        ({"pred_probs": torch.randn(60, 3)}, ValueError, "pred_probs"),
        ({"features": torch.randn(59, 6)}, ValueError, "features has 59"),
        ({"features": torch.full((60, 6), float("nan"))}, ValueError, "features"),
        ({"images": torch.rand(5, 1, 8, 8)}, ValueError, "images has 5"),
        ({"test_features": torch.randn(4, 2)}, ValueError, "test_features has 2 columns"),
        ({"test_images": torch.rand(3, 1, 8, 8)}, ValueError, "images has 3"),
        ({"class_names": ["a"]}, ValueError, "class_names"),
        ({"class_names": [0, 1, 2]}, TypeError, "class_names"),
        ({"groups": {"site": [1, 2]}}, ValueError, "groups"),
        ({"production_preds": torch.rand(5, 7)}, ValueError, "production_preds"),
        ({"duplicate_threshold": -1.0}, ValueError, "duplicate_threshold"),
        ({"n": 0}, ValueError, "n must be"),
    ],
)
def test_bad_input_names_the_argument_and_writes_nothing(tmp_path, data, change, exc, match):
    path = tmp_path / "a.html"
    path.write_text("before")
    with pytest.raises(exc, match=match):
        bt.quality.audit(**{**data, **change}, path=path)
    assert path.read_text() == "before" and os.listdir(tmp_path) == ["a.html"]  # untouched, no temp file left


def test_missing_pairs_and_path(tmp_path, data):
    with pytest.raises(ValueError, match="at least one of labels, pred_probs or features"):
        bt.quality.audit(path=tmp_path / "a.html")
    with pytest.raises(ValueError, match="test_features needs features"):
        bt.quality.audit(labels=data["labels"], test_features=data["test_features"], path=tmp_path / "a.html")
    with pytest.raises(ValueError, match="path .* does not exist"):
        bt.quality.audit(labels=data["labels"], path=tmp_path / "no" / "a.html")
    assert os.listdir(tmp_path) == []


def _save_inputs(tmp_path, data):
    torch.save(
        {"labels": data["labels"], "pred_probs": data["pred_probs"], "class_names": ["cat", "dog", "bird"]}, tmp_path / "p.pt"
    )
    np.save(tmp_path / "f.npy", data["features"].numpy())
    np.save(tmp_path / "t.npy", data["test_features"].numpy())
    np.save(tmp_path / "i.npy", data["images"].numpy())
    np.savetxt(tmp_path / "y.txt", data["labels"].numpy(), fmt="%d")


def test_cli_audit(tmp_path, data, capsys):
    _save_inputs(tmp_path, data)
    out = tmp_path / "r.html"
    argv = [
        "audit",
        "--labels",
        str(tmp_path / "y.txt"),
        "--preds",
        str(tmp_path / "p.pt"),
        "--features",
        str(tmp_path / "f.npy"),
    ]
    argv += ["--test-features", str(tmp_path / "t.npy"), "--images", str(tmp_path / "i.npy"), "--out", str(out)]
    assert cli.main(argv) == 0
    assert f"audit written: {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["class-balance", "advice", "label-issues", "duplicates", "leakage", "novelty"]
    assert "cat → dog" in page


@pytest.mark.parametrize(
    "argv, match",
    [
        ([], "pass at least one of --labels, --preds or --features"),
        (["--preds", "{d}/missing.pt"], "missing.pt: no such file"),
        (["--features", "{d}/f.npy", "--test-features", "{d}/i.npy"], "test_features must be a 2-D"),
        (["--labels", "{d}/y.txt", "--preds", "{d}/p.pt", "--features", "{d}/t.npy"], "features has 12"),
        (["--preds", "{d}/p.pt", "--out", "{d}/no/r.html"], "does not exist"),
    ],
)
def test_cli_audit_bad_input_is_one_line_exit_2(tmp_path, data, capsys, argv, match):
    _save_inputs(tmp_path, data)
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["audit", *[a.format(d=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("balancedtorch audit: error: ") and err.count("\n") == 1 and re.search(match, err), err
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path, data):
    """The page a person opens: headless Chromium draws it (non-blank screenshot) and its DOM holds the title."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("BT_REQUIRE_REFERENCES") == "1":
            pytest.fail("BT_REQUIRE_REFERENCES=1 but chromium is missing (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    Image = pytest.importorskip("PIL.Image")  # a missing reference fails under BT_REQUIRE_REFERENCES=1 (conftest)
    page = bt.quality.audit(**data, class_names=["cat", "dog", "bird"], path=tmp_path / "audit.html")
    url = "file://" + os.path.abspath(page)
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2000", url], capture_output=True, text=True, timeout=120
    )
    assert shot.exists(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1200)
    assert (pixels < 200).mean() > 0.02  # text, charts and thumbnails: not a blank page
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "<title>Data audit — balancedtorch</title>" in dom and "<h1>Data audit</h1>" in dom
    assert 'id="label-issues"' in dom and 'id="novelty"' in dom
