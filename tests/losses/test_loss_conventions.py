"""torch's and torchvision's conventions in the losses, and one label validator (issue 15, sections 4 and 5).

Losses: float32 under autocast as F.cross_entropy, torchvision's sigmoid_focal_loss
defaults and keyword names, nan for a mean over zero summed target weight with
label smoothing, gradients for probability targets, and fake kernels in the real
kernels' memory format (channels-last in, channels-last out).

Labels: class_weights of masks of any shape, labels_of on one-hot and string
targets (and its progress bar), ClassificationMetrics and FeatureSMOTE through
balancedtorch._labels with one rule set (integral floats accepted everywhere).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

import balancedtorch as bt
import balancedtorch.functional as btf
from balancedtorch._labels import check_labels, check_probabilities

# ---------------------------------------------------------------------------------------------
# 4. autocast: the losses return float32, as F.cross_entropy (on autocast's float32 list)
# ---------------------------------------------------------------------------------------------


def _autocast_dtypes(device):
    return [torch.bfloat16] if device.type == "cpu" else [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("soft", [False, True])
def test_autocast_cross_entropy_float32_as_torch(device, soft):
    C = 7
    lin = torch.nn.Linear(12, C).to(device)
    x = torch.randn(40, 12, device=device)
    weight = torch.rand(C, device=device) + 0.2
    if soft:
        target = torch.softmax(torch.randn(40, C, device=device), dim=1)  # float32 probabilities
    else:
        target = torch.randint(0, C, (40,), device=device)
        target[::7] = -100
    for dtype in _autocast_dtypes(device):
        kwargs = dict(weight=weight, label_smoothing=0.1)
        with torch.autocast(device.type, dtype=dtype):
            logits = lin(x)
            assert logits.dtype == dtype  # the model's output is in low precision
            expected = F.cross_entropy(logits, target, **kwargs)
            got = btf.cross_entropy(logits, target, **kwargs)
            module = bt.nn.CrossEntropyLoss(**kwargs)(logits, target)
        assert expected.dtype == torch.float32
        assert got.dtype == torch.float32 and module.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(module, expected, rtol=1e-5, atol=1e-6)
        # gradients reach the model through the cast, as torch's
        g_expected = torch.autograd.grad(expected, lin.weight, retain_graph=True)[0]
        g_got = torch.autograd.grad(got, lin.weight)[0]
        assert g_got.dtype == lin.weight.dtype
        torch.testing.assert_close(g_got, g_expected, rtol=2e-2, atol=1e-4)


def test_autocast_focal_and_logit_adjusted_compute_in_float32(device):
    x = (torch.randn(64, 5, 3, device=device) * 3).bfloat16()
    target = torch.randint(0, 5, (64, 3), device=device)
    counts = [50, 20, 9, 4, 1]
    for dtype in _autocast_dtypes(device):
        with torch.autocast(device.type, dtype=dtype):
            focal = btf.focal_loss(x, target, gamma=2.0, label_smoothing=0.05)
            adjusted = bt.nn.LogitAdjustedLoss(counts, tau=1.0, gamma=0.5)(x, target)
        assert focal.dtype == torch.float32 and adjusted.dtype == torch.float32
        # the same numbers as float32 logits without autocast
        torch.testing.assert_close(focal, btf.focal_loss(x.float(), target, gamma=2.0, label_smoothing=0.05))
        torch.testing.assert_close(adjusted, btf.logit_adjusted_loss(x.float(), target, counts, gamma=0.5))


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_autocast_sigmoid_focal_float32_as_torchvision(torchvision_ops, device, reduction):
    x = (torch.randn(30, 6, device=device) * 3).bfloat16().requires_grad_()
    y = (torch.rand(30, 6, device=device) < 0.3).float()
    for dtype in _autocast_dtypes(device):
        with torch.autocast(device.type, dtype=dtype):
            got = btf.sigmoid_focal_loss(x, y, reduction=reduction)
            module = bt.nn.SigmoidFocalLoss(reduction=reduction)(x, y)
        assert got.dtype == torch.float32 and module.dtype == torch.float32
        expected = torchvision_ops.sigmoid_focal_loss(x.detach().float(), y, reduction=reduction)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        got.sum().backward()
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()
        x.grad = None


def test_autocast_direct_op_calls_and_off_switch(device):
    x = torch.randn(10, 4, device=device).bfloat16()
    t = torch.randint(0, 4, (10,), device=device)
    y = torch.rand(10, 4, device=device).bfloat16()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss, _ = torch.ops.balancedtorch.softmax_loss(x, t, None, None, -100, 0.0, 0.0, 1, False)
        sloss, _ = torch.ops.balancedtorch.sigmoid_focal_loss(x, y, None, 0.25, 2.0, 0, False)
        x64 = x.double()  # float64 is left alone, as autocast does
        loss64, _ = torch.ops.balancedtorch.softmax_loss(x64, t, None, None, -100, 0.0, 0.0, 1, False)
    assert loss.dtype == torch.float32 and sloss.dtype == torch.float32 and loss64.dtype == torch.float64
    torch.testing.assert_close(loss, F.cross_entropy(x.float(), t))
    # outside autocast the input's dtype is kept
    assert btf.cross_entropy(x, t).dtype == torch.bfloat16
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=False):
        assert btf.sigmoid_focal_loss(x, y).dtype == torch.bfloat16


@pytest.mark.slow
def test_autocast_under_torch_compile():
    lin = torch.nn.Linear(8, 5)
    criterion = bt.nn.CrossEntropyLoss(label_smoothing=0.1)
    compiled = torch.compile(lambda x, t: criterion(lin(x), t), fullgraph=True)
    x, t = torch.randn(32, 8), torch.randint(0, 5, (32,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = compiled(x, t)
        expected = F.cross_entropy(lin(x), t, label_smoothing=0.1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 4. sigmoid_focal_loss: torchvision's default reduction and keyword names
# ---------------------------------------------------------------------------------------------


def test_sigmoid_focal_functional_defaults_as_torchvision(torchvision_ops):
    x, y = torch.randn(9, 4) * 2, (torch.rand(9, 4) < 0.4).float()
    assert inspect.signature(btf.sigmoid_focal_loss).parameters["reduction"].default == "none"
    got = btf.sigmoid_focal_loss(x, y)
    assert got.shape == x.shape
    torch.testing.assert_close(got, torchvision_ops.sigmoid_focal_loss(x, y))
    # torchvision's keyword names, as in a call written for torchvision
    by_name = btf.sigmoid_focal_loss(inputs=x, targets=y, alpha=0.5, gamma=1.0, reduction="sum")
    torch.testing.assert_close(
        by_name, torchvision_ops.sigmoid_focal_loss(inputs=x, targets=y, alpha=0.5, gamma=1.0, reduction="sum")
    )
    torch.testing.assert_close(btf.sigmoid_focal_loss(input=x, target=y), got)
    # the module keeps "mean"
    assert bt.nn.SigmoidFocalLoss().reduction == "mean"
    torch.testing.assert_close(bt.nn.SigmoidFocalLoss()(x, y), got.mean())
    with pytest.raises(TypeError, match="got both input and inputs"):
        btf.sigmoid_focal_loss(x, y, inputs=x)
    with pytest.raises(TypeError, match="missing the argument target"):
        btf.sigmoid_focal_loss(x)


# ---------------------------------------------------------------------------------------------
# 4. label smoothing with a zero summed target weight: nan, as torch (was inf)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["zero_weight", "all_ignored"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.6])
def test_zero_target_weight_is_nan_as_torch(device, case, label_smoothing):
    x = torch.randn(6, 3, 5, device=device, requires_grad=True)
    if case == "zero_weight":
        target = torch.randint(0, 2, (6, 5), device=device)
        weight = torch.tensor([0.0, 0.0, 1.5], device=device)
    else:
        target = torch.full((6, 5), -100, device=device)
        weight = torch.rand(3, device=device) + 0.5
    expected = F.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing)
    got = btf.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing)
    assert math.isnan(expected.item()) and math.isnan(got.item())
    g_expected = torch.autograd.grad(expected, x)[0]
    g_got = torch.autograd.grad(got, x)[0]
    torch.testing.assert_close(g_got, g_expected, equal_nan=True)
    focal = btf.focal_loss(x, target, gamma=2.0, weight=weight, label_smoothing=label_smoothing)
    assert math.isnan(focal.item())
    # "sum" stays finite, as torch's
    s = btf.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing, reduction="sum")
    torch.testing.assert_close(s, F.cross_entropy(x, target, weight=weight, label_smoothing=label_smoothing, reduction="sum"))


# ---------------------------------------------------------------------------------------------
# 4. probability targets that require grad are differentiated as torch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(7, 4), (3, 4, 5)])
def test_probability_target_grad_as_torch(device, reduction, label_smoothing, shape):
    x = torch.randn(shape, device=device, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(shape, device=device, dtype=torch.float64), dim=1).requires_grad_()
    weight = torch.rand(shape[1], device=device, dtype=torch.float64) + 0.3
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    expected = F.cross_entropy(x, q, **kwargs)
    got = btf.cross_entropy(x, q, **kwargs)
    grad_out = torch.randn_like(expected)
    gx_e, gq_e = torch.autograd.grad(expected, (x, q), grad_out)
    gx_g, gq_g = torch.autograd.grad(got, (x, q), grad_out)
    torch.testing.assert_close(gq_g, gq_e)
    torch.testing.assert_close(gx_g, gx_e)
    # only the target requires grad
    gq_only = torch.autograd.grad(btf.cross_entropy(x.detach(), q, **kwargs), q, grad_out)[0]
    torch.testing.assert_close(gq_only, gq_e)
    assert torch.autograd.gradcheck(lambda q_: btf.cross_entropy(x.detach(), q_, **kwargs), (q,))


def test_probability_target_grad_focal_logit_adjusted_sigmoid(torchvision_ops, device):
    x = torch.randn(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(6, 4, device=device, dtype=torch.float64), dim=1).requires_grad_()
    w = torch.rand(4, device=device, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda a, b: btf.focal_loss(a, b, gamma=1.5, weight=w, label_smoothing=0.1), (x, q))
    assert torch.autograd.gradcheck(lambda a, b: btf.logit_adjusted_loss(a, b, [9, 5, 2, 1], gamma=0.5), (x, q))
    y = torch.rand(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    for gamma in (0.0, 0.7, 2.0):
        for reduction in ("none", "mean", "sum"):
            assert torch.autograd.gradcheck(
                lambda a, b, gamma=gamma, reduction=reduction: btf.sigmoid_focal_loss(
                    a, b, gamma=gamma, reduction=reduction, pos_weight=w
                ),
                (x, y),
            )
    # torchvision's own function gives the same target gradient
    got = torch.autograd.grad(btf.sigmoid_focal_loss(x, y, reduction="sum"), y)[0]
    expected = torch.autograd.grad(torchvision_ops.sigmoid_focal_loss(x, y, reduction="sum"), y)[0]
    torch.testing.assert_close(got, expected)


def test_probability_target_grad_opcheck():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(5, 3, dtype=torch.float64), dim=1).requires_grad_()
    torch.library.opcheck(torch.ops.balancedtorch.softmax_loss.default, (x, q, None, None, -100, 0.1, 1.0, 1, True))
    y = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.balancedtorch.sigmoid_focal_loss.default, (x, y, None, 0.25, 2.0, 0, True))


# ---------------------------------------------------------------------------------------------
# 4. fake kernels return the real kernels' memory format
# ---------------------------------------------------------------------------------------------


def _fake_outputs(op, args):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        return op(*fake_args)


def _assert_same_layout(real, fake):
    real = real if isinstance(real, (tuple, list)) else (real,)
    fake = fake if isinstance(fake, (tuple, list)) else (fake,)
    for r, f in zip(real, fake):
        assert r.shape == f.shape and r.dtype == f.dtype
        if r.numel() > 1:
            assert r.stride() == f.stride(), (r.stride(), f.stride())


@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("reduction", [0, 1])
def test_loss_fakes_channels_last(torchvision_ops, device, compute_grad, reduction):
    x = torch.randn(2, 5, 4, 3, device=device).to(memory_format=torch.channels_last)
    t = torch.randint(0, 5, (2, 4, 3), device=device)
    q = torch.softmax(torch.randn(2, 5, 4, 3, device=device), dim=1).to(memory_format=torch.channels_last)
    for target in (t, q):
        args = (x, target, None, None, -100, 0.1, 0.0, reduction, compute_grad)
        op = torch.ops.balancedtorch.softmax_loss.default
        real = op(*args)
        if compute_grad:
            assert real[1].is_contiguous(memory_format=torch.channels_last)
        _assert_same_layout(real, _fake_outputs(op, args))
        torch.library.opcheck(op, args)
    y = torch.rand(2, 5, 4, 3, device=device).to(memory_format=torch.channels_last)
    for pos_weight in (None, torch.rand(5, device=device) + 0.5):  # (C,): the class dimension 1
        args = (x, y, pos_weight, 0.25, 2.0, reduction, compute_grad)
        op = torch.ops.balancedtorch.sigmoid_focal_loss.default
        real = op(*args)
        # channels-last in, channels-last out, as torchvision's elementwise loss
        if reduction == 0:
            assert real[0].is_contiguous(memory_format=torch.channels_last)
            expected = torchvision_ops.sigmoid_focal_loss(x, y, reduction="none") if pos_weight is None else None
            if expected is not None:
                assert expected.is_contiguous(memory_format=torch.channels_last)
                torch.testing.assert_close(real[0], expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(real[0], op(x.contiguous(), y.contiguous(), pos_weight, 0.25, 2.0, 0, False)[0])
        if compute_grad:
            assert real[1].is_contiguous(memory_format=torch.channels_last)
        _assert_same_layout(real, _fake_outputs(op, args))
        torch.library.opcheck(op, args)


def test_sigmoid_focal_channels_last_gradient(torchvision_ops, device):
    x = torch.randn(3, 4, 5, 6, device=device).to(memory_format=torch.channels_last).requires_grad_()
    y = (torch.rand(3, 4, 5, 6, device=device) < 0.3).float()
    xr = x.detach().clone().requires_grad_()
    btf.sigmoid_focal_loss(x, y, reduction="mean").backward()
    torchvision_ops.sigmoid_focal_loss(xr, y, reduction="mean").backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_affine_fakes_memory_format(device, channels_last):
    images = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8, device=device)
    if channels_last:
        images = images.to(memory_format=torch.channels_last)
    theta = torch.eye(2, 3, device=device).repeat(3, 1, 1) + 0.05 * torch.randn(3, 2, 3, device=device)
    op = torch.ops.balancedtorch.affine_color.default
    args = (images, theta, None, None, None, None, 8, 9, 0, None, torch.float32)
    real = op(*args)
    assert real.is_contiguous(memory_format=torch.channels_last) == channels_last
    _assert_same_layout(real, _fake_outputs(op, args))
    torch.library.opcheck(op, args)
    masks = torch.randint(0, 5, (3, 10, 12), dtype=torch.uint8, device=device)
    mop = torch.ops.balancedtorch.affine_mask.default
    margs = (masks, theta, None, 8, 9, 255)
    _assert_same_layout(mop(*margs), _fake_outputs(mop, margs))
    torch.library.opcheck(mop, margs)


# ---------------------------------------------------------------------------------------------
# 5. class_weights(labels=masks): any shape, as class_counts
# ---------------------------------------------------------------------------------------------


def test_class_weights_accepts_masks_of_any_shape(device):
    masks = torch.randint(0, 4, (3, 7, 9), device=device, dtype=torch.uint8)
    masks[0, 0, :4] = 255
    got = bt.class_weights(labels=masks, ignore_index=255, num_classes=4)
    expected = bt.class_weights(counts=bt.ops.class_counts(masks, 4, 255))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, bt.class_weights(labels=masks.flatten(), ignore_index=255, num_classes=4))
    torch.testing.assert_close(
        bt.class_weights(labels=masks.cpu().numpy()[1:, :2]), bt.class_weights(labels=masks[1:, :2].flatten().cpu())
    )
    # integral floats are labels here too (one rule set)
    torch.testing.assert_close(bt.class_weights(labels=masks[1:].float()), bt.class_weights(labels=masks[1:]))
    with pytest.raises(ValueError, match=r"class_weights: labels looks like one-hot .*argmax\(1\)"):
        bt.class_weights(labels=F.one_hot(torch.randint(0, 3, (20,)), 3))
    with pytest.raises(ValueError, match=r"class_weights: labels must hold integer class labels.*1.5"):
        bt.class_weights(labels=torch.tensor([[0.0, 1.5], [1.0, 2.0]]))


# ---------------------------------------------------------------------------------------------
# 5. labels_of: one-hot and string targets say what was found and what to pass; the bar is closed
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# 5. ClassificationMetrics and FeatureSMOTE through the shared validator
# ---------------------------------------------------------------------------------------------


def test_metrics_labels_through_shared_validator(device):
    K = 4
    logits = torch.randn(50, K, device=device)
    target = torch.randint(0, K, (50,), device=device)
    a, b = bt.metrics.ClassificationMetrics(K), bt.metrics.ClassificationMetrics(K)
    a.update(logits, target)
    b.update(logits, target.double())  # integral floats: the same rule as everywhere
    assert torch.equal(a.confmat, b.confmat)
    m = bt.metrics.ClassificationMetrics(K)
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target looks like one-hot .*argmax\(1\)"):
        m.update(logits, F.one_hot(target, K))
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target looks like one-hot"):
        m.update(logits.argmax(1), F.one_hot(target, K).float())
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: preds_or_logits looks like one-hot"):
        m.update(F.one_hot(target, K), target)
    with pytest.raises(
        ValueError, match=r"ClassificationMetrics\.update: target must be >= 0 and < num_classes=4, got target\[3\] = 9"
    ):
        m.update(logits[:5], torch.tensor([0, 1, 2, 9, 0], device=device))
    with pytest.raises(ValueError, match=r"ClassificationMetrics\.update: target holds non-numeric labels: strings"):
        m.update(torch.tensor([0, 1]), ["cat", "dog"])
    assert int(m.confmat.sum()) == 0  # nothing counted by the refused updates
    # segmentation targets (N, H, W) and a negative ignore_index still work
    seg = bt.metrics.ClassificationMetrics(K, ignore_index=-1)
    masks = torch.randint(-1, K, (2, 4, K), device=device)
    seg.update(torch.randn(2, K, 4, K, device=device), masks)
    assert int(seg.confmat.sum()) == int((masks != -1).sum())
    with pytest.raises(
        ValueError, match=r"target must be >= 0 and < num_classes=4 \(or equal ignore_index=-1\), got target\[1\] = -5"
    ):
        seg.update(torch.tensor([0, 1, 2], device=device), torch.tensor([0, -5, -1], device=device))


def test_feature_smote_labels_through_shared_validator():
    feats = torch.randn(40, 6)
    y = torch.cat([torch.zeros(30, dtype=torch.long), torch.ones(8, dtype=torch.long), torch.full((2,), 2)])
    smote = bt.resample.FeatureSMOTE(k_neighbors=1)
    f1, y1 = smote(feats, y, generator=torch.Generator().manual_seed(3))
    f2, y2 = smote(feats, y.float(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(f1, f2) and torch.equal(y1, y2.long()) and y2.dtype == torch.float32
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must hold integer class labels.*labels\[0\] = 0.5"):
        smote(feats, y.float() + 0.5)
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels looks like one-hot .*argmax\(1\)"):
        smote(feats, F.one_hot(y, 3))
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must be >= 0 and < num_classes=2, got labels\[38\] = 2"):
        bt.resample.FeatureSMOTE(k_neighbors=1, num_classes=2)(feats, y)
    with pytest.raises(ValueError, match=r"FeatureSMOTE: labels must be >= 0, got labels\[1\] = -3"):
        smote(feats[:3], torch.tensor([0, -3, 1]))
    with pytest.raises(ValueError, match="FeatureSMOTE: labels must hold integers, got dtype torch.bool"):
        smote.eval()(feats[:2], torch.tensor([True, False]))


@pytest.mark.parametrize(
    "call",
    [
        lambda y: bt.class_weights(labels=y),
        lambda y: bt.data.labels_of(y),
        lambda y: bt.data.ClassBalancedSampler(y),
        lambda y: bt.metrics.ClassificationMetrics(3).update(torch.zeros(len(y), dtype=torch.long), y),
        lambda y: bt.resample.FeatureSMOTE(k_neighbors=1)(torch.randn(len(y), 4), y),
    ],
    ids=["class_weights", "labels_of", "ClassBalancedSampler", "ClassificationMetrics", "FeatureSMOTE"],
)
def test_one_rule_set_for_float_labels(call):
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    call(y.double())  # integral floats are labels everywhere
    with pytest.raises(ValueError, match=r"must hold integer class labels.*\[2\] = 2.5"):
        call(torch.tensor([0.0, 1.0, 2.5, 1.0, 0.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="must hold integers, got dtype torch.bool"):
        call(y > 0)


def test_check_labels_messages():
    with pytest.raises(ValueError, match=r"demo: y looks like one-hot targets of shape \(5, 3\).*y\.argmax\(1\)"):
        check_labels(np.eye(3)[[0, 1, 2, 1, 0]], "y", caller="demo")
    with pytest.raises(
        ValueError, match=r"demo: y holds non-numeric labels: strings \(e\.g\. 'a'\).*numpy\.unique\(y, return_inverse=True\)"
    ):
        check_labels(["a", "b"], "y", caller="demo")
    with pytest.raises(ValueError, match=r"demo: y must be 1-D, got shape \(2, 3\)"):
        check_labels(torch.tensor([[0, 5, 2], [1, 1, 3]]), "y", caller="demo")
    assert torch.equal(check_labels(torch.tensor([[0, 5], [1, 3]]), "y", any_shape=True), torch.tensor([0, 5, 1, 3]))


def test_check_probabilities_names_logits():
    logits = torch.randn(10, 4) * 3
    with pytest.raises(
        ValueError, match=r"demo: pred_probs must hold probabilities.*look like logits; pass torch\.softmax\(logits, dim=1\)"
    ):
        check_probabilities(logits, caller="demo")
    with pytest.raises(ValueError, match=r"sums to .* not 1.*look like logits"):
        check_probabilities(torch.sigmoid(logits), caller="demo")
    probs = torch.softmax(logits, dim=1)
    assert check_probabilities(probs, caller="demo") is probs
    with pytest.raises(ValueError, match="must hold floating probabilities"):
        check_probabilities(torch.ones(3, 2, dtype=torch.long))
