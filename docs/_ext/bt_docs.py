"""The Sphinx extension that writes the generated pages when a build starts.

- ``api/``: one page per package from its ``__all__`` and the raw-op page
  from the schemas (``bt_api.py``);
- ``_generated/benchmarks_summary.md`` and ``benchmark_ratios.png`` from
  ``benchmarks/RESULTS.md`` (``bt_benchmarks.py``).

Connected to ``config-inited``: before the environment lists the source files
(which autosummary's ``builder-inited`` handler scans for its directives), so a
clean checkout, which has no ``api/`` folder yet, gets every stub page.
"""

import os
import re

import bt_api
import bt_benchmarks


def generate(app, config=None):
    srcdir = str(app.srcdir)
    root = os.path.dirname(srcdir)
    documented = bt_api.api_pages(srcdir)
    bt_api.raw_ops_page(srcdir, os.path.join(root, "csrc", "balancedtorch.cpp"))
    ours = sorted({name.rsplit(".", 1)[1] for name in documented})
    bt_benchmarks.write_page(srcdir, os.path.join(root, "benchmarks", "RESULTS.md"), ours)


# torch's shape notation "Tensor[N, C, *]": the bare * of "any more dimensions"
_SHAPE_STAR = re.compile(r"(?<=[\[, ])\*(?=\s*[\],])")


def escape_shape_stars(app, what, name, obj, options, lines):
    """Escapes the ``*`` of shapes such as ``Tensor[N, *]`` outside literals and doctest lines.

    Napoleon puts an argument's type in emphasis (``*Tensor[N, *]*``), where a
    bare ``*`` opens a second emphasis and fails the build; torch writes its
    shapes that way, so the docstrings may too. Runs before napoleon
    (priority 400 < 500).
    """
    for i, line in enumerate(lines):
        if line.lstrip().startswith((">>>", "...")):
            continue
        parts = re.split(r"(``.*?``)", line)
        lines[i] = "".join(p if p.startswith("``") else _SHAPE_STAR.sub(r"\\*", p) for p in parts)


def setup(app):
    app.connect("config-inited", generate)
    app.connect("autodoc-process-docstring", escape_shape_stars, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
