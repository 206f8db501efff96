"""Prints the requirements of balancedtorch's ``docs`` extra, one a line, from the installed metadata.

``make docs`` installs them with pip without reinstalling balancedtorch itself
(an editable reinstall would run the extension build again). The metadata is
current: ``make install`` reruns whenever pyproject.toml changes.
"""

import re
from importlib.metadata import requires

EXTRA = re.compile(r"""extra\s*==\s*["']docs["']""")

if __name__ == "__main__":
    wanted = [r.split(";")[0].strip() for r in requires("balancedtorch") or [] if EXTRA.search(r)]
    if not wanted:
        raise SystemExit("the installed balancedtorch has no 'docs' extra: run `make install` again")
    print("\n".join(wanted))
