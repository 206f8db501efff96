"""Real docstrings, and reprs that show every non-default argument.

Covers every public name of ``bt.data``, ``bt.resample``, ``bt.ops`` and
``bt.class_weights`` (and the modules behind them), found through ``__all__``:
a class or function added there is checked without touching this file, and a
class whose constructor arguments are not in the tables below fails with a
message that says what to add. The losses of ``bt.nn`` and ``BatchAugment``
(their ``forward``, the functional forms, ``affine_color``) are listed at the
end.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
import torch

import balancedtorch as bt
import balancedtorch.augment.functional as AF
import balancedtorch.functional as btf
from balancedtorch._validate import UNSET

# by import path: the package attributes ops.knn / ops.class_counts are the functions, not the modules
_MODULES = tuple(
    importlib.import_module(name)
    for name in (
        "balancedtorch.data",
        "balancedtorch.resample",
        "balancedtorch.ops",
        "balancedtorch.weights",  # bt.class_weights
        "balancedtorch.data.labels",
        "balancedtorch.ops.class_counts",
        "balancedtorch.ops.knn",
        "balancedtorch.ops.sampling",
        "balancedtorch._labels",
    )
)


def _public():
    """(qualified name, object) of every callable in the modules' ``__all__``, each object once."""
    seen, out = set(), []
    for module in _MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{module.__name__}.{name}", obj))
    return out


_PUBLIC = _public()
_CLASSES = [(name, obj) for name, obj in _PUBLIC if inspect.isclass(obj)]

# -- docstrings ----------------------------------------------------------------------------------------------------


def _own_doc(obj) -> str:
    """The object's own docstring: a class's or function's, never one inherited from a base class."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    return getattr(obj, "__doc__", None) or ""


def _nontrivial(doc: str) -> bool:
    """At least one line of four or more words: more than a name or a placeholder."""
    return any(len(re.findall(r"[A-Za-z]{2,}", line)) >= 4 for line in doc.splitlines())


def _named_params(func, skip_first: bool):
    params = list(inspect.signature(func).parameters.values())
    if skip_first:
        params = params[1:]
    return [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _undocumented(doc: str, names) -> list:
    return [n for n in names if not re.search(rf"\b{re.escape(n)}\b", doc)]


def test_discovery_finds_the_public_names():
    names = {name.rsplit(".", 1)[1] for name, _ in _PUBLIC}
    expected = {
        "labels_of",
        "ClassBalancedSampler",
        "SMOTE",
        "FeatureSMOTE",
        "knn",
        "AliasTable",
        "class_weights",
        "check_labels",
    }
    assert expected <= names, expected - names


@pytest.mark.parametrize("name,obj", _PUBLIC, ids=[n for n, _ in _PUBLIC])
def test_public_callable_has_a_docstring_with_args_and_example(name, obj):
    doc = _own_doc(obj)
    assert _nontrivial(doc), f"{name} has no docstring of its own (or only a trivial one)"
    assert "Example" in doc, f"{name}'s docstring has no Example"
    if inspect.isclass(obj):
        params = _named_params(obj.__init__, skip_first=True)
    else:
        params = _named_params(obj, skip_first=False)
    missing = _undocumented(doc, params)
    assert not missing, f"{name}'s docstring does not describe its arguments {missing}"


_SPECIAL_METHODS = ("__call__", "__iter__", "__len__", "__getitem__", "forward")


def _methods(cls):
    """(name, function) of the public methods and properties that balancedtorch defines for ``cls``."""
    out = []
    for attr in sorted(dir(cls)):
        if attr.startswith("_") and attr not in _SPECIAL_METHODS:
            continue
        owner = next((k for k in cls.__mro__ if attr in vars(k)), None)
        if owner is None or not owner.__module__.startswith("balancedtorch"):
            continue  # torch's / scikit-learn's own methods are documented there
        raw = vars(owner)[attr]
        if isinstance(raw, property):
            func, is_method = raw.fget, False
        elif isinstance(raw, (staticmethod, classmethod)):
            func, is_method = raw.__func__, isinstance(raw, classmethod)
        elif inspect.isfunction(raw):
            func, is_method = raw, True
        else:
            continue  # data
        out.append((f"{owner.__name__}.{attr}", func, is_method))
    return out


@pytest.mark.parametrize("name,cls", _CLASSES, ids=[n for n, _ in _CLASSES])
def test_public_methods_have_their_own_docstrings(name, cls):
    methods = _methods(cls)
    assert methods or not any(hasattr(cls, m) for m in ("fit_resample", "forward", "__iter__")), name
    for qualname, func, is_method in methods:
        doc = func.__doc__ or ""
        assert _nontrivial(doc), f"{name}: {qualname} has no docstring of its own"
        if is_method:
            missing = _undocumented(doc, _named_params(func, skip_first=True))
            assert not missing, f"{name}: {qualname}'s docstring does not describe {missing}"
    if issubclass(cls, torch.nn.Module):
        owner = next(k for k in cls.__mro__ if "forward" in vars(k))
        assert owner.__module__.startswith("balancedtorch"), f"{name}.forward is torch's placeholder"


def test_methods_documented_that_were_not_before():
    # regressions: these had no docstring at all (forward showed nn.Module's placeholder)
    assert "Tensor[B + S, D]" in bt.resample.FeatureSMOTE.forward.__doc__
    assert "Args:" in bt.resample.SMOTETomek.fit_resample.__doc__
    assert "Args:" in bt.resample.SMOTE.__doc__ and "k_neighbors" in bt.resample.SMOTE.__doc__
    assert bt.data.WeightedRandomSampler.__iter__.__doc__ and bt.ops.AliasTable.sample.__doc__.count("Args:") == 1


# -- reprs ---------------------------------------------------------------------------------------------------------

N = 200


def _labels():
    """Four classes in a random order, each present."""
    return (torch.arange(N) % 4)[torch.randperm(N)]


def _weights():
    return torch.rand(N, dtype=torch.float64) + 0.1


# the required arguments of every class (absent: none)
_REQUIRED = {
    "WeightedRandomSampler": lambda: {"weights": _weights(), "num_samples": N},
    "ClassBalancedSampler": lambda: {"labels": _labels()},
    "StratifiedBatchSampler": lambda: {"labels": _labels(), "batch_size": 8},
    "AliasTable": lambda: {"weights": _weights()},
    "RepeatFactorSampler": lambda: {"labels": [{0}, {0, 1}, {0, 2}, {0}] * 10},
    "SMOTENC": lambda: {"categorical_features": [0]},
}


def _generator():
    return {"generator": torch.Generator().manual_seed(int(torch.randint(1, 2**31, (1,))))}


def _estimator(param, name, **kwargs):
    return lambda: {param: getattr(bt.resample, name)(**kwargs)}


# a non-default value for each optional argument, by name (bool arguments: the other value, automatically);
# each entry gives the keyword arguments to add (some arguments need another one)
_NON_DEFAULT = {
    "generator": _generator,
    "num_replicas": lambda: {"num_replicas": 2},
    "rank": lambda: {"rank": 1},
    "seed": lambda: {"seed": int(torch.randint(1, 1000, (1,)))},
    "num_classes": lambda: {"num_classes": 6},
    "class_shares": lambda: {"class_shares": "sqrt"},
    "num_samples": lambda: {"num_samples": 50},
    "sample_weights": lambda: {"sample_weights": _weights()},
    "schedule": lambda: {"schedule": 5},
    "num_batches": lambda: {"num_batches": 5},
    "sampling_strategy": lambda: {"sampling_strategy": "minority"},
    "random_state": lambda: {"random_state": 3},
    "device": lambda: {"device": "cpu"},
    "n_jobs": lambda: {"n_jobs": 2},
    "k_neighbors": lambda: {"k_neighbors": 3},
    "categorical_encoder": lambda: {"categorical_encoder": __import__("sklearn.preprocessing").preprocessing.OrdinalEncoder()},
    "m_neighbors": lambda: {"m_neighbors": 7},
    "kind": lambda: {"kind": "borderline-2"},
    "n_neighbors": lambda: {"n_neighbors": 4},
    "shrinkage": lambda: {"shrinkage": 0.5},
    "version": lambda: {"version": 2},
    "n_neighbors_ver3": lambda: {"n_neighbors_ver3": 5},
    "kind_sel": lambda: {"kind_sel": "mode"},
    "voting": lambda: {"voting": "hard"},
    "max_iter": lambda: {"max_iter": 50},
    "smote": _estimator("smote", "SMOTE", k_neighbors=3),
    "tomek": _estimator("tomek", "TomekLinks", sampling_strategy="all"),
    "enn": _estimator("enn", "EditedNearestNeighbours", kind_sel="mode"),
    "momentum": lambda: {"momentum": 0.1},
    "threshold": lambda: {"threshold": 0.2},
}
# per class, where the argument's meaning (or what it needs) differs
_NON_DEFAULT_BY_CLASS = {
    "FeatureSMOTE": {
        "sampling_strategy": lambda: {"sampling_strategy": 0.5},
        "memory_size": lambda: {"memory_size": 8, "num_classes": 4},
        "num_classes": lambda: {"num_classes": 4},
    },
    "RepeatFactorSampler": {
        # masks: the arguments that only apply to them
        "num_classes": lambda: {"labels": torch.randint(0, 3, (6, 4, 4)), "num_classes": 3},
        "ignore_index": lambda: {"labels": torch.randint(0, 3, (6, 4, 4)), "num_classes": 3, "ignore_index": 255},
        "progress": lambda: {"progress": False},
    },
    "ClusterCentroids": {"estimator": lambda: {"estimator": __import__("sklearn.cluster").cluster.KMeans(n_init=1)}},
}


def _optional_params(cls):
    sig = inspect.signature(cls.__init__)
    # a deprecated alias (default UNSET) is never shown: the repr names the new keyword
    return [p for p in list(sig.parameters.values())[1:] if p.default is not inspect.Parameter.empty and p.default is not UNSET]


def _non_default(cls, param):
    short = cls.__name__
    factory = _NON_DEFAULT_BY_CLASS.get(short, {}).get(param.name) or _NON_DEFAULT.get(param.name)
    if factory is None and isinstance(param.default, bool):
        return {param.name: not param.default}
    assert factory is not None, (
        f"tests/api/test_repr_docs.py: add a non-default value of {short}(…, {param.name}=…) to _NON_DEFAULT"
    )
    return factory()


def _make(cls, **kwargs):
    required = _REQUIRED.get(cls.__name__)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    needs = [p.name for p in params if p.default is inspect.Parameter.empty and p.kind in named]
    assert not needs or required is not None, (
        f"tests/api/test_repr_docs.py: add the required arguments {needs} of {cls.__name__} to _REQUIRED"
    )
    args = required() if required is not None else {}
    args.update(kwargs)
    return cls(**args)


def _shows(text: str, name: str) -> bool:
    """Whether the top-level call in ``text`` passes ``name=`` (nested calls such as ``smote=SMOTE(...)`` collapsed)."""
    inner = text[text.index("(") + 1 : text.rindex(")")]
    while True:
        collapsed = re.sub(r"\([^()]*\)", "", inner)
        if collapsed == inner:
            break
        inner = collapsed
    return re.search(rf"(?<![\w.]){re.escape(name)}=", inner) is not None


@pytest.fixture
def changed_only():
    sklearn = pytest.importorskip("sklearn")
    with sklearn.config_context(print_changed_only=True):
        yield


@pytest.mark.parametrize("name,cls", _CLASSES, ids=[n for n, _ in _CLASSES])
def test_repr_of_defaults_shows_required_arguments_only(name, cls, changed_only):
    obj = _make(cls)
    text = repr(obj)
    assert text.startswith(f"{cls.__name__}("), text
    for p in _optional_params(cls):
        assert not _shows(text, p.name), f"{text}: {p.name} is at its default and clutters the repr"
    for required in _REQUIRED.get(cls.__name__, lambda: {})():
        assert _shows(text, required), f"{text}: the required argument {required} is missing"
    assert "tensor([" not in text and "array([" not in text and len(text) < 200, text


@pytest.mark.parametrize("name,cls", _CLASSES, ids=[n for n, _ in _CLASSES])
def test_repr_shows_each_non_default_argument(name, cls, changed_only):
    params = _optional_params(cls)
    for p in params:
        kwargs = _non_default(cls, p)
        obj = _make(cls, **kwargs)
        text = repr(obj)
        assert _shows(text, p.name), f"{cls.__name__}({p.name}={kwargs[p.name]!r}) has repr {text}"
        for other in params:
            if other.name not in kwargs:
                assert not _shows(text, other.name), f"{text}: {other.name} is at its default"
        assert "tensor([" not in text and "array([" not in text and len(text) < 300, text
        if hasattr(obj, "get_params"):  # scikit-learn estimators: parameters stored as given, clonable
            from sklearn.base import clone

            held = obj.get_params(deep=False)
            for key, value in kwargs.items():
                assert held[key] is value, f"{cls.__name__}.get_params()[{key!r}] is not the value passed"
            assert repr(clone(obj)) == text


def test_sampler_reprs_summarise_tensors_and_read_no_process_group():
    labels = _labels()
    # regression: the repr resolved num_replicas / rank and raised for a rank given without a process group
    text = repr(bt.data.ClassBalancedSampler(labels, rank=1, sample_weights=_weights()))
    assert text == f"ClassBalancedSampler(labels=<tensor of {N}, 4 classes>, rank=1, sample_weights=<tensor of {N}>)"
    text = repr(bt.data.WeightedRandomSampler(_weights(), num_samples=10, replacement=False, num_replicas=2, rank=0))
    assert text == f"WeightedRandomSampler(weights=<tensor of {N}>, num_samples=10, replacement=False, num_replicas=2, rank=0)"
    text = repr(bt.data.StratifiedBatchSampler(labels, batch_size=8, generator=torch.Generator()))
    assert text == f"StratifiedBatchSampler(labels=<tensor of {N}, 4 classes>, batch_size=8, generator=<torch.Generator>)"
    sched = bt.data.ClassBalancedSampler(labels, schedule=lambda epoch: min(1.0, epoch / 3))
    assert "schedule=<function " in repr(sched) and "lambda" in repr(sched)
    # a dict of shares and a float power are shown as given
    assert "class_shares={0: 0.5, 1: 0.5}" in repr(bt.data.ClassBalancedSampler(labels, class_shares={0: 0.5, 1: 0.5}))
    assert "class_shares=0.0" in repr(bt.data.ClassBalancedSampler(labels, class_shares=0.0))


def test_feature_smote_and_alias_table_reprs():
    assert repr(bt.resample.FeatureSMOTE()) == "FeatureSMOTE()"
    text = repr(bt.resample.FeatureSMOTE(k_neighbors=3, memory_size=16, num_classes=5, momentum=0.5, generator=torch.Generator()))
    assert text == "FeatureSMOTE(k_neighbors=3, memory_size=16, num_classes=5, momentum=0.5, generator=<torch.Generator>)"
    weights = _weights()
    assert repr(bt.ops.AliasTable(weights)) == f"AliasTable(weights=<tensor of {N}>)"


# -- the losses' and BatchAugment's forward docstrings and reprs ---------------------------------------------------------


PUBLIC_MODULES = [
    bt.augment.BatchAugment,
    bt.nn.CrossEntropyLoss,
    bt.nn.FocalLoss,
    bt.nn.LogitAdjustedLoss,
    bt.nn.SigmoidFocalLoss,
    bt.nn.LDAMLoss,
    bt.nn.VSLoss,
    bt.nn.BalancedSoftmaxLoss,
]


@pytest.mark.parametrize(
    "obj",
    PUBLIC_MODULES
    + [AF.affine_color, btf.logit_adjusted_loss, btf.sigmoid_focal_loss, btf.ldam_loss, btf.vs_loss]
    + [btf.balanced_softmax_loss, btf.posthoc_logit_adjustment, bt.nn.tau_normalize],
    ids=lambda o: o.__qualname__,
)
def test_public_call_has_a_real_docstring(obj):
    fn = obj.forward if isinstance(obj, type) else obj
    doc = inspect.getdoc(fn) or ""
    for section in ("Args:", "Returns:", "Example:", "Tensor["):
        assert section in doc, f"{obj.__qualname__}: docstring lacks {section!r}"
    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "inputs", "targets")]
    for p in params:
        assert p in doc, f"{obj.__qualname__}: argument {p!r} undocumented"


REPR_CASES = [
    (
        bt.augment.BatchAugment,
        dict(
            hflip=0.5,
            vflip=0.25,
            rotation=30,
            translate=(0.1, 0.2),
            scale=(0.8, 1.2),
            shear=(1, 2, 3, 4),
            crop=32,
            brightness=0.4,
            contrast=0.3,
            saturation=0.2,
            hue=0.1,
            mean=(0.5, 0.4, 0.3),
            std=(0.2, 0.3, 0.4),
            out_dtype=torch.bfloat16,
            interpolation="nearest",
            p=0.7,
            same_on_batch=True,
            class_p={3: 1.0},
            crop_scale=(0.5, 1.0),
            crop_ratio=(0.9, 1.1),
            fill=None,
            mask_fill=254,
        ),
    ),
    (bt.nn.CrossEntropyLoss, dict(weight=torch.rand(3), ignore_index=255, reduction="sum", label_smoothing=0.1)),
    (bt.nn.FocalLoss, dict(gamma=1.5, weight=torch.rand(3), ignore_index=255, reduction="none", label_smoothing=0.1)),
    (
        bt.nn.LogitAdjustedLoss,
        dict(
            class_counts=[56, 0, 41],
            tau=0.5,
            gamma=1.0,
            weight=torch.rand(3),
            ignore_index=7,
            reduction="sum",
            label_smoothing=0.2,
        ),
    ),
    (bt.nn.SigmoidFocalLoss, dict(alpha=0.5, gamma=1.0, reduction="sum", pos_weight=torch.rand(3))),
    (
        bt.nn.LDAMLoss,
        dict(
            class_counts=[56, 2, 41],
            max_m=0.3,
            s=10.0,
            weight=torch.rand(3),
            ignore_index=7,
            reduction="sum",
            label_smoothing=0.2,
        ),
    ),
    (
        bt.nn.VSLoss,
        dict(class_counts=[56, 2, 41], gamma=0.2, tau=0.5, weight=torch.rand(3), ignore_index=7, reduction="none"),
    ),
    (bt.nn.BalancedSoftmaxLoss, dict(class_counts=[56, 2, 41], weight=torch.rand(3), label_smoothing=0.1)),
]

_COUNTED = (bt.nn.LogitAdjustedLoss, bt.nn.LDAMLoss, bt.nn.VSLoss, bt.nn.BalancedSoftmaxLoss)


@pytest.mark.parametrize("cls, kwargs", REPR_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_repr_shows_every_non_default_argument(cls, kwargs):
    text = repr(cls(**kwargs))
    for name in kwargs:
        assert f"{name}=" in text, f"{cls.__name__}: {name} missing from {text}"
    # each argument alone, too (nothing hides behind another)
    for name, value in kwargs.items():
        if name == "class_counts":
            continue
        base = {"class_counts": [5, 3, 1]} if cls in _COUNTED else {}
        if cls is bt.augment.BatchAugment and name in ("crop_scale", "crop_ratio"):
            base = {"crop": 16}
        assert f"{name}=" in repr(cls(**base, **{name: value})), name


def test_repr_values():
    assert repr(bt.augment.BatchAugment()) == "BatchAugment()"
    text = repr(bt.augment.BatchAugment(rotation=30, shear=(1, 2, 3, 4), mask_fill=254, class_p={3: 1.0}))
    assert "rotation=(-30.0, 30.0)" in text and "shear=(1.0, 2.0, 3.0, 4.0)" in text
    assert "mask_fill=254" in text and "class_p={3: 1.0}" in text and "hflip" not in text
    assert "class_counts=[56, 0, 41]" in repr(bt.nn.LogitAdjustedLoss([56, 0, 41]))
    assert "class_counts=[20 classes]" in repr(bt.nn.LogitAdjustedLoss(list(range(1, 21))))
    # state stays as before: the counts are in repr only, logit_bias is the buffer
    assert set(bt.nn.LogitAdjustedLoss([56, 0, 41]).state_dict()) == {"logit_bias"}
