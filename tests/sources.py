"""The package's modules as syntax trees, parsed once per test process.

Several unit tests read every module of ``src/modelci`` (where a function is called, what is
imported, which classes derive from which); one full parse takes about 0.8 s of CPU on the 2-core
machine, and each of those tests parsed the package again. The trees are shared: read them only.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "modelci"


@functools.cache
def package_trees() -> dict[Path, ast.Module]:
    """Every ``.py`` file under src/modelci (templates too), sorted by path, with its tree."""
    return {
        path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))
    }


def called_name(func: ast.expr) -> str | None:
    """The last name of a call's target (``f`` of ``a.b.f(...)``); None for ``f()(...)`` and the
    like. Read off the node: unparsing every call of the package took seconds."""
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None
