"""Sphinx configuration of the balancedtorch documentation (``make docs``).

Built with warnings as errors (``sphinx-build -W --keep-going``). Nothing is
fetched from the network: intersphinx reads the small inventories in
``_inventories/`` that ``_inventories/make_inventories.py`` writes, and the API
pages, the raw-op page and the benchmarks summary are generated from the
installed package, ``csrc/balancedtorch.cpp`` and ``benchmarks/RESULTS.md``
(``_ext/``) when the build starts.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.join(HERE, "_inventories"))

import balancedtorch  # noqa: E402  (the docs describe the installed, compiled package)

project = "balancedtorch"
author = "balancedtorch developers"
copyright = "the balancedtorch developers"
release = balancedtorch.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "bt_docs",  # _ext/bt_docs.py: the generated pages
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated/*.md",  # included by benchmarks.md, not pages of their own
    "gallery/GALLERY_HEADER.rst",  # sphinx-gallery's input; its output is auto_examples/
    "**/README.md",
    "Thumbs.db",
    ".DS_Store",
]
templates_path = ["_templates"]

# -- autodoc / autosummary / napoleon -------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = False

# Unresolved cross-references are not errors (nitpicky off): docstrings name
# types such as "Tensor[N, C]" or "int or None" that are prose, not targets.
# Every warning Sphinx does emit is an error (-W).
nitpicky = False

# -- intersphinx: local inventories only ----------------------------------------
from make_inventories import write_all  # noqa: E402  (_inventories/make_inventories.py)

intersphinx_mapping = {
    key: (url, os.path.relpath(path, HERE)) for key, (url, path) in write_all(os.path.join(HERE, "_inventories")).items()
}
intersphinx_timeout = 1
intersphinx_cache_limit = 0

# -- MyST -------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# -- sphinx-gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/_",  # helpers shared by the scripts
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "reset_modules": ("matplotlib", "seaborn"),
    "min_reported_time": 1,
}

# -- HTML -------------------------------------------------------------------------
html_theme = "furo"
html_title = f"balancedtorch {release}"
html_show_sourcelink = False
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# matplotlib without a display, for the gallery and the benchmarks plot
os.environ.setdefault("MPLBACKEND", "Agg")
assert importlib.util.find_spec("matplotlib") is not None, "the docs need matplotlib: pip install 'balancedtorch[docs]'"
