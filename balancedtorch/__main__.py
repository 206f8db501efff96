"""``python -m balancedtorch demo | inspect LABELS | info``."""

import sys

from .cli import main

sys.exit(main())
