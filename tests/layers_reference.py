"""The layer table of docs/development.md, rendered from the import-linter contract in
pyproject.toml and each module's docstring (`make docs`), and its check.

python -m tests.layers_reference       # rewrite the table in docs/development.md
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "development.md"
PACKAGE = ROOT / "src" / "modelci"
BEGIN, END = "<!-- layers:begin (make docs) -->", "<!-- layers:end -->"
LAYER_NAMES = ("entry point", "features", "core")
# Modules outside the contract: the package root (its version) and `python -m modelci`.
UNLAYERED = {"__init__", "__main__"}


def contract() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return dict(layers)


def layers() -> list[list[str]]:
    """The contract's layers, top first, each a list of module names under ``modelci``."""
    return [re.split(r"\s*[|:]\s*", layer.strip()) for layer in contract()["layers"]]


def top_level_modules() -> set[str]:
    """Every module and package directly under ``modelci``."""
    names = {p.stem for p in PACKAGE.glob("*.py")}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return names - UNLAYERED


def summary(name: str) -> str:
    """The first sentence of the module's (or package's) docstring."""
    path = PACKAGE / name / "__init__.py" if (PACKAGE / name).is_dir() else PACKAGE / f"{name}.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    sentence = doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".")
    return sentence.replace("|", "\\|") + "."


def render() -> str:
    lines = [BEGIN, "| layer | module | what it holds |", "|---|---|---|"]
    for layer_name, modules in zip(LAYER_NAMES, layers(), strict=True):
        for module in modules:
            suffix = "/" if (PACKAGE / module).is_dir() else ".py"
            lines.append(f"| {layer_name} | `{module}{suffix}` | {summary(module)} |")
    lines += ["", "Declared feature-to-feature directions (`ignore_imports`):", ""]
    lines += [f"- `{line}`" for line in contract().get("ignore_imports", [])]
    return "\n".join([*lines, END])


def rewrite(text: str) -> str:
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render() + text[stop:]


if __name__ == "__main__":
    PAGE.write_text(rewrite(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the layer table of {PAGE}")
