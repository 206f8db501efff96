"""bt.data.labels_of on targets it cannot use as they are, and its progress bar.

One-hot and string targets (as an attribute or sample by sample) say what was
found and what to pass; the progress bar is closed however reading ends.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

import balancedtorch as bt


class _Targets(Dataset):
    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return torch.zeros(2), self.targets[i]


class _Samples(Dataset):
    """No label attribute: labels_of reads every sample."""

    def __init__(self, labels, fail_at=None):
        self.labels_ = labels
        self.fail_at = fail_at

    def __len__(self):
        return len(self.labels_)

    def __getitem__(self, i):
        if i == self.fail_at:
            return {"image": torch.zeros(2)}  # no label key: labels_of raises half-way
        return torch.zeros(2), self.labels_[i]


class _RecordingBar:
    instances: list = []

    def __init__(self, *args, **kwargs):
        self.closed = False
        self.n = 0
        _RecordingBar.instances.append(self)

    def update(self, n=1):
        self.n += n

    def close(self):
        self.closed = True

    def __iter__(self):  # pragma: no cover - labels_of updates the bar itself
        raise AssertionError("not used")


@pytest.fixture
def recording_tqdm(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    _RecordingBar.instances = []
    monkeypatch.setattr(tqdm_auto, "tqdm", _RecordingBar)
    return _RecordingBar


def test_labels_of_one_hot_targets():
    y = torch.randint(0, 4, (30,))
    with pytest.raises(
        ValueError, match=r"labels_of: \.targets looks like one-hot targets of shape \(30, 4\).*argmax\(1\).*column="
    ):
        bt.data.labels_of(_Targets(F.one_hot(y, 4)))
    with pytest.raises(ValueError, match=r"looks like multi-hot.*column="):
        bt.data.labels_of(_Targets((torch.rand(30, 4) < 0.5).long() | F.one_hot(y, 4)))
    # what the message says to pass works
    got = bt.data.labels_of(_Targets(F.one_hot(y, 4)), column=lambda ds: ds.targets.argmax(1))
    assert torch.equal(got, y)


def test_labels_of_string_targets(recording_tqdm):
    names = np.array(["cat", "dog", "bird"])[np.random.randint(0, 3, 25)]
    with pytest.raises(
        ValueError,
        match=r"labels_of: \.targets holds non-numeric labels: strings \(e\.g\. '(cat|dog|bird)'\).*numpy\.unique.*column=",
    ):
        bt.data.labels_of(_Targets(list(names)))
    with pytest.warns(UserWarning, match="loading every sample"):
        with pytest.raises(ValueError, match=r"holds non-numeric labels: strings.*column="):
            bt.data.labels_of(_Samples(list(names)))
    assert recording_tqdm.instances and all(bar.closed for bar in recording_tqdm.instances)
    classes, codes = np.unique(names, return_inverse=True)
    assert torch.equal(bt.data.labels_of(_Targets(list(names)), column=lambda ds: codes), torch.as_tensor(codes))


def test_labels_of_closes_its_progress_bar(recording_tqdm):
    y = torch.randint(0, 3, (12,))
    with pytest.warns(UserWarning, match="loading every sample"):
        assert torch.equal(bt.data.labels_of(_Samples(list(y))), y)
    (bar,) = recording_tqdm.instances
    assert bar.closed and bar.n == 12
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="sample 5 is a dict without a 'label'"):
        bt.data.labels_of(_Samples(list(y), fail_at=5))
    assert len(recording_tqdm.instances) == 2 and recording_tqdm.instances[1].closed
    # per-sample one-hot tensors are named as such
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"one-hot targets of shape \(12, 3\)"):
        bt.data.labels_of(_Samples(list(F.one_hot(y, 3))))
    assert all(bar.closed for bar in recording_tqdm.instances)
    # integral float labels per sample are labels
    with pytest.warns(UserWarning):
        assert torch.equal(bt.data.labels_of(_Samples([float(v) for v in y])), y)
