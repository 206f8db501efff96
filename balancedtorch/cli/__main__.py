"""``python -m balancedtorch.cli``: the same command line as ``balancedtorch`` and ``python -m balancedtorch``."""

import sys

from . import main

sys.exit(main())
