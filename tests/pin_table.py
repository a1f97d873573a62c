"""The action pin table of docs/security.md, rendered from .github/action-pins.tsv (`make docs`),
and its check (tests/workflows/test_static.py).

python -m tests.pin_table          # rewrite the table in docs/security.md
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / ".github" / "action-pins.tsv"
PAGE = ROOT / "docs" / "security.md"
# The table sits in a list item of the page, so each line is indented by two spaces.
START = "  <!-- pin table: written by `make docs` from .github/action-pins.tsv -->\n"
END = "  <!-- end of pin table -->\n"


def rows(tsv: str) -> list[tuple[str, str, str]]:
    """(action, tag, commit) of each row, comments and the header left out."""
    lines = [line for line in tsv.splitlines() if line.strip() and not line.startswith("#")]
    parsed = [tuple(line.split("\t")) for line in lines[1:]]
    if any(len(row) != 3 for row in parsed):
        raise ValueError(f"{PINS}: every row is action<TAB>tag<TAB>commit")
    return sorted((row[0], row[1], row[2]) for row in parsed)


def render(tsv: str) -> str:
    lines = ["| action | tag | commit |", "|---|---|---|"]
    lines += [f"| {action} | {tag} | `{commit}` |" for action, tag, commit in rows(tsv)]
    return "".join(f"  {line}\n" for line in lines)


def page_with_table(page: str, tsv: str) -> str:
    """``page`` with the text between its pin-table markers replaced by ``render(tsv)``."""
    head, found, rest = page.partition(START)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"{PAGE}: the pin-table markers are missing")
    return head + START + "\n" + render(tsv) + "\n" + END + tail


def main() -> None:
    page = PAGE.read_text(encoding="utf-8")
    PAGE.write_text(page_with_table(page, PINS.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
