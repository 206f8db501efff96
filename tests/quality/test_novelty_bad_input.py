"""NoveltyDetector and embedding_coverage on bad input.

A stray huge label, flags that are not booleans, a bad device or generator,
features that are not numbers, report groups that cannot be sorted, predict
before fit, and a bad argument on one rank of several (every rank raises).
"""

import numpy as np
import pytest
import torch

import balancedtorch as bt

from _distributed import close_gloo, init_gloo, run_ranks, save_rank

Det = bt.quality.NoveltyDetector


def _data(n, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


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


# -- across ranks --------------------------------------------------------------------------------------------------------


def _bad_argument_on_one_rank(rank, world_size, init_file, out_dir):
    init_gloo(rank, world_size, init_file, timeout=30)
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
        save_rank(out, out_dir, rank)
    finally:
        close_gloo()


@pytest.mark.slow
@pytest.mark.distributed
def test_bad_threshold_or_report_argument_on_one_rank_raises_on_both(tmp_path):
    # rank 1 raised before the collective score() while rank 0 waited in it for ever
    parts = run_ranks(_bad_argument_on_one_rank, 2, tmp_path, timeout=120)
    assert "tpr must be a number in (0, 1), got 2.0" in parts[1]["tpr"]
    assert "NoveltyDetector.threshold: invalid input on rank(s) [1]" in parts[0]["tpr"]
    assert "top_n must be an int >= 0, got -1" in parts[1]["top_n"]
    assert "NoveltyDetector.report: invalid input on rank(s) [1]" in parts[0]["top_n"]
    assert parts[0]["after"].shape == parts[1]["after"].shape == (2,)
