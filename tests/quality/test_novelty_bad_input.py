"""Regressions from a fuzz pass over issue 14 (novelty, coverage, gallery, inspect-predictions, quality across ranks)."""

import contextlib
import io
import time

import numpy as np
import pytest
import torch

import balancedtorch as bt
from balancedtorch import cli

from _distributed import close_gloo, init_gloo

Det = bt.quality.NoveltyDetector


def _data(n, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


def _brute_kth(bank, queries, k, normalize):
    """float64 brute force; rows scaled by their largest |value| first so that any finite magnitude normalises."""
    b, q = bank.double(), queries.double()
    if normalize:
        b = b / b.abs().amax(1, keepdim=True)
        q = q / q.abs().amax(1, keepdim=True)
        b, q = torch.nn.functional.normalize(b, dim=1), torch.nn.functional.normalize(q, dim=1)
    return torch.cdist(q, b).sort(1)[0][:, k - 1]


# -- NoveltyDetector / embedding_coverage: magnitudes ------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, scale", [(torch.float32, 1e30), (torch.float32, 1e-30), (torch.float64, 1e200), (torch.float64, 1e-200)]
)
def test_normalised_scores_do_not_depend_on_the_features_magnitude(dtype, scale):
    # the squared norm overflowed (-> all-zero rows, scores 0) or sank into the subnormals (-> rows of ~1e-18)
    bank, queries = _data(70, 9, 1, dtype) * scale, _data(25, 9, 2, dtype) * scale
    scores = Det(k=5).fit(bank).score(queries)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores.double(), _brute_kth(bank, queries, 5, True), **tol)
    assert scores.min() > 0.1  # random directions in 9-D are far from each other
    cov = bt.quality.embedding_coverage(bank, queries, k=5)
    torch.testing.assert_close(cov["distance"], _brute_kth(bank, queries, 5, True), **tol)


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-25])
def test_raw_float32_scores_beyond_the_range_of_their_squares(scale):
    # the squared k-th distance was rounded to float32 before the root: inf above ~1e19, 0 below ~1e-19
    bank, queries = _data(70, 9, 3) * scale, _data(25, 9, 4) * scale
    want = _brute_kth(bank, queries, 5, False)
    for det in (Det(k=5, normalize=False), Det(k=5, normalize=False, bank_chunk_size=16)):
        scores = det.fit(bank).score(queries)
        assert scores.dtype == torch.float32 and bool(torch.isfinite(scores).all()) and bool((scores > 0).all())
        torch.testing.assert_close(scores.double(), want, rtol=1e-5, atol=0)
    cov = bt.quality.embedding_coverage(bank, queries, k=5, normalize=False)
    torch.testing.assert_close(cov["distance"], want, rtol=1e-5, atol=0)
    assert np.isfinite(cov["cut"]) and cov["cut"] > 0


def test_ordinary_scores_unchanged_by_the_rescaling_path():
    """Rows in the ordinary range keep the direct normalisation: bits equal to a plain x / ||x||."""
    x = _data(64, 12, 5) * 3
    bank = Det(k=2).fit(x).bank_
    norms = (x * x).sum(1).sqrt()  # row sums of 12 values: compare with a tolerance of one rounding
    torch.testing.assert_close(bank, x / norms.unsqueeze(1), rtol=2e-7, atol=0)
    zero = Det(k=2).fit(torch.cat([x, torch.zeros(2, 12)])).bank_[-2:]
    assert torch.equal(zero, torch.zeros(2, 12))  # zero rows stay zero, no NaN


# -- NoveltyDetector / embedding_coverage: argument checks --------------------------------------------------------


def test_stray_huge_label_is_a_value_error_not_a_terabyte_allocation():
    x = _data(60, 6, 6)
    y = torch.arange(60) % 2
    bad = y.clone()
    bad[4] = 2**40
    with pytest.raises(ValueError, match=r"labels\[4\] = 1099511627776"):
        Det(k=5).fit(x, bad)
    det = Det(k=5, per_class=True).fit(x, y)
    q_labels = torch.zeros(10, dtype=torch.long)
    q_labels[3] = 2**40
    with pytest.raises(ValueError, match=r"labels\[3\] = 1099511627776 is a class absent from the bank"):
        det.score(_data(10, 6, 7), q_labels)
    with pytest.raises(ValueError, match=r"labels\[0\] = 2 is a class absent from the bank"):
        det.score(_data(10, 6, 7), torch.full((10,), 2))


def test_constructor_flags_device_and_generator_are_checked():
    with pytest.raises(TypeError, match="normalize must be True or False, got 'no'"):
        Det(normalize="no")  # bool("no") is True: it was accepted as normalize=True
    with pytest.raises(TypeError, match="per_class must be True or False, got 'false'"):
        Det(per_class="false")
    with pytest.raises(ValueError, match="device must be a torch.device or a device string, got 'bogus'"):
        Det(device="bogus")
    assert Det(k=3, distributed=np.bool_(False)).fit(_data(10, 3, 8)).distributed_ is False
    x, q = _data(30, 4, 9), _data(5, 4, 10)
    with pytest.raises(TypeError, match="embedding_coverage: normalize must be True or False"):
        bt.quality.embedding_coverage(x, q, normalize="no")
    # refused up front, not only when some query is uncovered (and then by torch, without the argument's name)
    with pytest.raises(TypeError, match="embedding_coverage: generator must be a torch.Generator, got Generator"):
        bt.quality.embedding_coverage(x, x.clone(), generator=np.random.default_rng(0))


def test_unconvertible_features_name_the_argument():
    with pytest.raises(ValueError, match="train_features must be numeric, got dtype <U1"):
        Det(k=1).fit([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="train_features must be a numeric array"):
        Det(k=1).fit([[1.0, 2.0], [3.0]])
    det = Det(k=2).fit(_data(10, 2, 11))
    with pytest.raises(ValueError, match="features must be numeric"):
        det.score([["x", "y"]])


def test_report_groups_that_cannot_be_sorted_and_predict_before_fit():
    det = Det(k=3).fit(_data(30, 4, 12))
    det.threshold(_data(20, 4, 13), 0.9)
    with pytest.raises(ValueError, match=r"groups\['site'\] mixes values that cannot be sorted together"):
        det.report(_data(6, 4, 14), groups={"site": [1, "a", None, 1, "a", None]})
    with pytest.raises(RuntimeError, match=r"NoveltyDetector.predict: call fit\(\) first"):
        Det(k=3).predict(_data(6, 4, 14))


# -- gallery ---------------------------------------------------------------------------------------------------------


def test_gallery_refuses_images_without_pixels():
    pytest.importorskip("matplotlib")
    y = torch.tensor([0, 1])
    p = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    for images in (torch.rand(2, 3, 0, 5), torch.zeros(2, 3, 4, 0, dtype=torch.uint8), torch.zeros(2, 0, 5)):
        with pytest.raises(ValueError, match=r"images\[0\] is empty: shape \(\d+, \d+(, \d+)?\) has no pixels"):
            bt.quality.plot_mistakes(images, y, p)
    with pytest.raises(ValueError, match=r"images\[1\] is empty"):
        bt.quality.plot_novel(torch.zeros(2, 1, 5, 0), torch.tensor([0.0, 1.0]))


# -- half-precision probabilities ---------------------------------------------------------------------------------


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


# -- inspect-predictions -----------------------------------------------------------------------------------------


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


# -- across ranks ----------------------------------------------------------------------------------------------------


def _bad_argument_on_one_rank(rank, init_file, out_dir):
    init_gloo(rank, 2, init_file, timeout=30)
    try:
        det = Det(k=3).fit(_data(20, 4, 20 + rank))
        out = {}
        for what, call in (
            ("tpr", lambda: det.threshold(_data(8, 4, 30 + rank), tpr=0.5 if rank == 0 else 2.0)),
            ("top_n", lambda: det.report(_data(8, 4, 40 + rank), top_n=5 if rank == 0 else -1)),
        ):
            try:
                call()
                out[what] = None
            except ValueError as e:
                out[what] = str(e)
            if what == "tpr":
                det.threshold(_data(8, 4, 30 + rank), 0.5)  # the ranks are still in step
        out["after"] = det.score(torch.ones(2, 4))
        torch.save(out, f"{out_dir}/rank{rank}.pt")
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_bad_threshold_or_report_argument_on_one_rank_raises_on_both(tmp_path):
    # rank 1 raised before the collective score() while rank 0 waited in it for ever
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    ctx = torch.multiprocessing.spawn(
        _bad_argument_on_one_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two ranks hung")
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert "tpr must be in (0, 1), got 2.0" in parts[1]["tpr"]
    assert "NoveltyDetector.threshold: invalid input on rank(s) [1]" in parts[0]["tpr"]
    assert "top_n must be an int >= 0, got -1" in parts[1]["top_n"]
    assert "NoveltyDetector.report: invalid input on rank(s) [1]" in parts[0]["top_n"]
    assert parts[0]["after"].shape == parts[1]["after"].shape == (2,)
