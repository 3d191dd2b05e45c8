"""A box of text that the book shows as its own admonition ("note", "warning", …).

A cell's HTML output with the classes of a Sphinx admonition is styled by the book's
theme as one written in Markdown; JupyterLab shows a plain box with the same words.
The chapters display these rather than a bare string, which a notebook shows quoted
('…') as a Python value.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

__all__ = ["Admonition"]


@dataclass(frozen=True)
class Admonition:
    """``text`` under ``title`` in a box of ``kind`` (a Sphinx admonition class: "note",
    "warning", "tip", …); ``str()`` gives the text alone."""

    kind: str
    title: str
    text: str

    def _repr_html_(self) -> str:
        return (f'<div class="admonition {html.escape(self.kind)}"><p class="admonition-title">'
                f"{html.escape(self.title)}</p><p>{html.escape(self.text)}</p></div>")

    def __str__(self) -> str:
        return self.text
