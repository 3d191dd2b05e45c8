"""``python -m paradox_utils`` — see ``paradox_utils.cli``."""

import sys

from .cli import main

sys.exit(main())
