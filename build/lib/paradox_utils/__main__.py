"""``python -m paradox_utils`` — the ``paradox`` command under its module name (``paradox_utils.cli``)."""

import sys

from .cli import main

sys.exit(main(prog="python -m paradox_utils"))
