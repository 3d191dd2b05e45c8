"""paradox_utils: the helper package behind the paradox analysis book.

Importing it does nothing but define names: seeds, threads and plot themes are set
by explicit calls (``paradox_utils.runtime``), and no module downloads at import.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
