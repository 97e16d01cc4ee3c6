"""``python -m fkit_core.cli``."""

import sys

from fkit_core.cli import main

sys.exit(main())
