"""Optional dependencies: import one, or say in one line which extra installs it.

The run-time dependencies are torch and numpy. Features that need more name
the extra (``pyproject.toml``'s ``[project.optional-dependencies]``) that
brings it, instead of ending in a bare ``ModuleNotFoundError``.
"""

import importlib
from types import ModuleType

#: module -> (distribution to install, the balancedtorch extra that brings it)
_PROVIDERS = {
    "sklearn": ("scikit-learn", "sklearn"),
    "scipy": ("scipy", "sklearn"),
    "matplotlib": ("matplotlib", "plots"),
    "tqdm": ("tqdm", "demo"),
    "pandas": ("pandas", "all"),
}


class MissingOptionalDependency(ModuleNotFoundError):
    """An optional package a feature needs is not installed; the message gives the install line."""


def install_hint(module: str, extra: str = "") -> str:
    """``pip install 'balancedtorch[EXTRA]'`` for the package that provides ``module``."""
    top = module.split(".")[0]
    dist, default_extra = _PROVIDERS.get(top, (top, "all"))
    return f"pip install 'balancedtorch[{extra or default_extra}]' (or pip install {dist})"


def require(module: str, feature: str, extra: str = "") -> ModuleType:
    """Import ``module`` for ``feature``, or raise MissingOptionalDependency (a ModuleNotFoundError) with the install line.

    Args:
        module: dotted module name, e.g. ``"sklearn.datasets"``.
        feature: what needs it, as the user knows it, e.g. ``"balancedtorch demo"``.
        extra: the balancedtorch extra to recommend (default: the one that
            lists the module's distribution).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        dist = _PROVIDERS.get(top, (top, ""))[0]
        raise MissingOptionalDependency(f"{feature} needs {dist}: {install_hint(module, extra)}", name=top) from exc
