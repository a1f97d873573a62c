"""Untrusted text made inert for GitHub Markdown: the PR report and the drift issue both use it.

The comment workflow's validator (``.github/actions/comment``) keeps its own standard-library
defusing: it runs isolated, without modelci installed.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

CELL_LIMIT = 120

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def escape(value: Any, limit: int = CELL_LIMIT) -> str:
    """Untrusted text as inert Markdown: one line, bounded, no HTML, no formatting, no mentions."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str, allow_nan=True)
    text = "".join(char if char.isprintable() else " " for char in text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = html.escape(text, quote=False)
    return text.replace("@", "@\u200b")
