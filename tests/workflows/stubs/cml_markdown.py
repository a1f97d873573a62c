"""What CML 0.20.6 does to a report's Markdown with ``--publish`` (its default), for the stand-in.

From its source (``src/cml.js`` ``commentCreate``): the body is parsed with remark 13, every
``definition``, ``image`` and ``link`` node whose URL is not the watermark is "published":
a ``data:image/...`` URL is decoded and uploaded, any other URL is resolved as a path relative to
the Markdown file (``path.resolve``, so ``file:x`` or ``foo:../x`` are relative paths too) and
uploaded if that file exists. Then the tree is written back as Markdown. remark 13 knows
CommonMark only, so the round trip drops what matters only to GitHub's renderer: measured with
``remark@13`` from npm on this machine, ``\\|``, ``\\~`` and ``\\$`` lose their backslash and the
character references ``&#124;``, ``&#126;``, ``&#36;`` are decoded, outside code and HTML blocks
(which it keeps as written), and blocks are separated by one blank line. ``reserialise`` applies
those measured changes, not all of remark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from markdown_it import MarkdownIt

_GITHUB_ONLY = {
    r"\|": "|",
    r"\~": "~",
    r"\$": "$",
    "&#124;": "|",
    "&#x7c;": "|",
    "&#x7C;": "|",
    "&vert;": "|",
    "&verbar;": "|",
    "&#126;": "~",
    "&#x7e;": "~",
    "&#x7E;": "~",
    "&#36;": "$",
    "&#x24;": "$",
    "&dollar;": "$",
}
_LOST = re.compile("|".join(re.escape(key) for key in sorted(_GITHUB_ONLY, key=len, reverse=True)))
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark")
    md.validateLink = lambda url: True  # remark keeps every URL, javascript: and data: included
    md.normalizeLink = lambda url: url  # and does not percent-encode it
    return md


def link_targets(text: str) -> Iterator[str]:
    """The URL of every definition, image and link node, except CML's own watermark."""
    env: dict[str, dict[str, dict[str, str]]] = {}
    tokens = _parser().parse(text, env)
    for reference in env.get("references", {}).values():
        yield reference["href"]
    stack = list(tokens)
    while stack:
        token = stack.pop(0)
        stack[:0] = token.children or []
        if token.type == "link_open":
            yield str(token.attrGet("href") or "")
        elif token.type == "image" and not str(token.attrGet("title") or "").startswith(
            "CML watermark"
        ):
            yield str(token.attrGet("src") or "")


def reserialise(text: str) -> str:
    """``text`` after remark 13's parse and write-back, for the constructs measured above."""
    keep: set[int] = set()
    for token in _parser().parse(text):
        if token.type in ("fence", "code_block", "html_block") and token.map:
            keep.update(range(*token.map))
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if number in keep:
            continue
        pieces, position = [], 0
        for span in _CODE_SPAN.finditer(line):
            pieces.append(
                _LOST.sub(lambda m: _GITHUB_ONLY[m.group(0)], line[position : span.start()])
            )
            pieces.append(span.group(0))
            position = span.end()
        pieces.append(_LOST.sub(lambda m: _GITHUB_ONLY[m.group(0)], line[position:]))
        lines[number] = "".join(pieces)
    # remark writes one blank line between blocks and ends the text with one newline
    # (held to the real CML by test_cml_conformance.py)
    kept = [
        line
        for number, line in enumerate(lines)
        if number in keep or line.strip() or (number > 0 and lines[number - 1].strip())
    ]
    return "\n".join(kept).strip("\n") + "\n"
