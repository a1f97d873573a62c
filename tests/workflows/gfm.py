"""Render Markdown as GitHub does where the tests need it: CommonMark with GFM tables and
strikethrough (markdown-it-py), read back as table rows and struck-through text."""

from __future__ import annotations

from markdown_it import MarkdownIt

_GFM = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def table_rows(markdown: str) -> list[list[str]]:
    """The text of every cell of every table row (header rows included), in order."""
    rows: list[list[str]] = []
    cell: list[str] | None = None
    for token in _GFM.parse(markdown):
        if token.type == "tr_open":
            rows.append([])
        elif token.type in ("th_open", "td_open"):
            cell = []
        elif token.type == "inline" and cell is not None:
            cell.append("".join(child.content for child in token.children or []))
        elif token.type in ("th_close", "td_close") and cell is not None:
            rows[-1].append("".join(cell))
            cell = None
    return rows


def struck(markdown: str) -> list[str]:
    """The text inside every ``<s>`` (GFM strikethrough) the Markdown renders."""
    html = _GFM.render(markdown)
    return [part.split("</s>")[0] for part in html.split("<s>")[1:]]
