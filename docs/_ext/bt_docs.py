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

import bt_api
import bt_benchmarks


def generate(app, config=None):
    srcdir = str(app.srcdir)
    root = os.path.dirname(srcdir)
    documented = bt_api.api_pages(srcdir)
    bt_api.raw_ops_page(srcdir, os.path.join(root, "csrc", "balancedtorch.cpp"))
    ours = sorted({name.rsplit(".", 1)[1] for name in documented})
    bt_benchmarks.write_page(srcdir, os.path.join(root, "benchmarks", "RESULTS.md"), ours)


def setup(app):
    app.connect("config-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
