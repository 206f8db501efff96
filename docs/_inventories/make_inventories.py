"""Writes the intersphinx inventories the docs link through, without a network.

CI reaches only package registries, so ``intersphinx_mapping`` cannot fetch
``objects.inv`` from torch's, numpy's or scikit-learn's sites. This script
writes small inventories (Sphinx's version-2 format: four header lines, then
zlib-compressed ``name domain:role priority uri display`` lines) for the names
our docstrings and guide pages mention, with the real URLs of those projects'
documentation. ``docs/conf.py`` runs it at the start of every build; add a
name here when a page links to a new one.

Usage: python docs/_inventories/make_inventories.py [output folder]
"""

import os
import sys
import zlib

# project: (title, base URL, [(name, role, path relative to the base URL)])
INVENTORIES = {
    "python": (
        "Python",
        "https://docs.python.org/3/",
        [
            (name, "py:class", f"library/functions.html#{name}")
            for name in ("bool", "int", "float", "str", "list", "tuple", "dict", "set", "object", "callable")
        ]
        + [
            ("None", "py:data", "library/constants.html#None"),
            ("pathlib.Path", "py:class", "library/pathlib.html#pathlib.Path"),
            ("os.PathLike", "py:class", "library/os.html#os.PathLike"),
            ("collections.abc.Sequence", "py:class", "library/collections.abc.html#collections.abc.Sequence"),
            ("collections.abc.Mapping", "py:class", "library/collections.abc.html#collections.abc.Mapping"),
            ("collections.abc.Iterable", "py:class", "library/collections.abc.html#collections.abc.Iterable"),
            ("typing.Optional", "py:data", "library/typing.html#typing.Optional"),
            ("typing.Union", "py:data", "library/typing.html#typing.Union"),
            ("typing.Any", "py:data", "library/typing.html#typing.Any"),
            ("ValueError", "py:exception", "library/exceptions.html#ValueError"),
            ("TypeError", "py:exception", "library/exceptions.html#TypeError"),
            ("RuntimeError", "py:exception", "library/exceptions.html#RuntimeError"),
            ("DeprecationWarning", "py:exception", "library/exceptions.html#DeprecationWarning"),
        ],
    ),
    "torch": (
        "PyTorch",
        "https://docs.pytorch.org/docs/stable/",
        [
            ("torch.Tensor", "py:class", "tensors.html#torch.Tensor"),
            ("torch.dtype", "py:class", "tensor_attributes.html#torch.dtype"),
            ("torch.device", "py:class", "tensor_attributes.html#torch.device"),
            ("torch.Generator", "py:class", "generated/torch.Generator.html#torch.Generator"),
            ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#torch.nn.Module"),
            ("torch.nn.CrossEntropyLoss", "py:class", "generated/torch.nn.CrossEntropyLoss.html#torch.nn.CrossEntropyLoss"),
            ("torch.nn.BCEWithLogitsLoss", "py:class", "generated/torch.nn.BCEWithLogitsLoss.html#torch.nn.BCEWithLogitsLoss"),
            (
                "torch.nn.functional.cross_entropy",
                "py:function",
                "generated/torch.nn.functional.cross_entropy.html#torch.nn.functional.cross_entropy",
            ),
            ("torch.utils.data.Dataset", "py:class", "data.html#torch.utils.data.Dataset"),
            ("torch.utils.data.TensorDataset", "py:class", "data.html#torch.utils.data.TensorDataset"),
            ("torch.utils.data.Subset", "py:class", "data.html#torch.utils.data.Subset"),
            ("torch.utils.data.ConcatDataset", "py:class", "data.html#torch.utils.data.ConcatDataset"),
            ("torch.utils.data.DataLoader", "py:class", "data.html#torch.utils.data.DataLoader"),
            ("torch.utils.data.Sampler", "py:class", "data.html#torch.utils.data.Sampler"),
            ("torch.utils.data.BatchSampler", "py:class", "data.html#torch.utils.data.BatchSampler"),
            ("torch.utils.data.WeightedRandomSampler", "py:class", "data.html#torch.utils.data.WeightedRandomSampler"),
            (
                "torch.utils.data.distributed.DistributedSampler",
                "py:class",
                "data.html#torch.utils.data.distributed.DistributedSampler",
            ),
            ("torch.multinomial", "py:function", "generated/torch.multinomial.html#torch.multinomial"),
            ("torch.bincount", "py:function", "generated/torch.bincount.html#torch.bincount"),
            ("torch.compile", "py:function", "generated/torch.compile.html#torch.compile"),
            ("torch.autocast", "py:class", "amp.html#torch.autocast"),
            ("torch.library.opcheck", "py:function", "library.html#torch.library.opcheck"),
            ("torch.library.register_fake", "py:function", "library.html#torch.library.register_fake"),
            ("torch.library.register_autograd", "py:function", "library.html#torch.library.register_autograd"),
            ("torch.distributed", "py:module", "distributed.html#module-torch.distributed"),
            ("torch.distributed.all_reduce", "py:function", "distributed.html#torch.distributed.all_reduce"),
            (
                "torch.nn.parallel.DistributedDataParallel",
                "py:class",
                "generated/torch.nn.parallel.DistributedDataParallel.html#torch.nn.parallel.DistributedDataParallel",
            ),
        ],
    ),
    "numpy": (
        "NumPy",
        "https://numpy.org/doc/stable/",
        [
            ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#numpy.ndarray"),
            ("numpy.memmap", "py:class", "reference/generated/numpy.memmap.html#numpy.memmap"),
            ("numpy.unique", "py:function", "reference/generated/numpy.unique.html#numpy.unique"),
            ("numpy.random.Generator", "py:class", "reference/random/generator.html#numpy.random.Generator"),
            ("numpy.random.RandomState", "py:class", "reference/random/legacy.html#numpy.random.RandomState"),
        ],
    ),
    "sklearn": (
        "scikit-learn",
        "https://scikit-learn.org/stable/",
        [
            (f"sklearn.{path}", role, f"modules/generated/sklearn.{path}.html#sklearn.{path}")
            for path, role in (
                ("pipeline.Pipeline", "py:class"),
                ("pipeline.make_pipeline", "py:function"),
                ("base.BaseEstimator", "py:class"),
                ("base.clone", "py:function"),
                ("model_selection.GridSearchCV", "py:class"),
                ("model_selection.cross_val_score", "py:function"),
                ("model_selection.cross_val_predict", "py:function"),
                ("neighbors.NearestNeighbors", "py:class"),
                ("cluster.KMeans", "py:class"),
                ("linear_model.LogisticRegression", "py:class"),
                ("compose.ColumnTransformer", "py:class"),
                ("preprocessing.StandardScaler", "py:class"),
                ("metrics.classification_report", "py:function"),
                ("metrics.average_precision_score", "py:function"),
                ("metrics.roc_auc_score", "py:function"),
                ("metrics.precision_recall_curve", "py:function"),
                ("metrics.roc_curve", "py:function"),
                ("utils.parallel.delayed", "py:function"),
            )
        ],
    ),
    "matplotlib": (
        "Matplotlib",
        "https://matplotlib.org/stable/",
        [("matplotlib.figure.Figure", "py:class", "api/_as_gen/matplotlib.figure.Figure.html#matplotlib.figure.Figure")],
    ),
}


def inventory_bytes(project, entries, version="stable"):
    """One objects.inv (format version 2) for ``entries`` of ``(name, role, path)``."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    lines = "".join(f"{name} {role} 1 {path} -\n" for name, role, path in sorted(entries))
    return header + zlib.compress(lines.encode(), 9)


def write_all(folder):
    """Writes ``<project>.inv`` for every project into ``folder`` (only when changed); returns the mapping."""
    os.makedirs(folder, exist_ok=True)
    mapping = {}
    for key, (project, url, entries) in INVENTORIES.items():
        path = os.path.join(folder, f"{key}.inv")
        data = inventory_bytes(project, entries)
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            with open(path, "wb") as f:
                f.write(data)
        mapping[key] = (url, path)
    return mapping


if __name__ == "__main__":
    for key, (url, path) in write_all(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))).items():
        print(f"{key}: {url} -> {path}")
