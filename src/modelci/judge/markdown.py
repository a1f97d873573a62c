"""Untrusted text made inert for GitHub Markdown: the one defusing every bot-posted text uses.

The PR report's cells, the monitor issue (``drift.md``), the retraining pull request's body (the
same ``drift.md``) and the job summaries (the monitor workflow appends ``drift.md``; modelci's own
summaries hold no production values) all pass untrusted values through :func:`escape`. The
comment workflow's validator (``.github/actions/comment``) applies the same link rules to the
whole report with its own standard-library copy, since it runs isolated without modelci
installed; ``tests/workflows/test_comment_validator.py`` holds the two to the same output.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

CELL_LIMIT = 120

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
ZWSP = "\u200b"
# What GitHub links by itself in text: GFM autolinks (``scheme://``, ``www.``), issue references
# (``#1``; as ``owner/repo#1`` they post a cross-reference on another repository's issue) and
# mentions (``@user``, ``@org/team``, which notify). A zero-width space splits each.
_SCHEME = re.compile(r"://")
_WWW = re.compile(r"(?i)\b(www)\.")
_ISSUE_REF = re.compile(r"#(?=\d)")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def defuse_links(text: str) -> str:
    """``text`` reading the same, with no autolink, issue reference or mention GitHub would make."""
    text = _SCHEME.sub(f":{ZWSP}//", text)
    text = _WWW.sub(lambda match: f"{match.group(1)}{ZWSP}.", text)
    text = _ISSUE_REF.sub(f"#{ZWSP}", text)
    return _MENTION.sub(f"@{ZWSP}", text)


def escape(value: Any, limit: int = CELL_LIMIT) -> str:
    """Untrusted text as inert Markdown: one line, bounded, no HTML, no formatting, no links,
    references or mentions."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str, allow_nan=True)
    # Cut before replacing the unprintable characters (one for one, so the cut is the same): a
    # long value costs its first ``limit`` characters, not its whole length.
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = "".join(char if char.isprintable() else " " for char in text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return defuse_links(html.escape(text, quote=False))
