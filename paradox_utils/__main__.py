"""``python -m paradox_utils`` — see ``paradox_utils.pipeline``."""

import sys

from .pipeline import main

sys.exit(main())
