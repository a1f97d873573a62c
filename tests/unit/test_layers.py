"""The layer contract covers the whole package, and docs/development.md shows it as it is."""

from __future__ import annotations

import pytest

from tests.layers_reference import PAGE, layers, rewrite, top_level_modules

pytestmark = pytest.mark.unit


def test_every_module_is_in_exactly_one_layer() -> None:
    placed = [module for layer in layers() for module in layer]
    assert len(placed) == len(set(placed)), "a module is listed in two layers"
    # A module in no layer escapes lint-imports: it could import anything, and so could its users.
    assert set(placed) == top_level_modules()


def test_the_layer_table_is_up_to_date() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run `make docs`"


def test_the_documented_gate_import_still_works_with_a_deprecation_note() -> None:
    import importlib
    import sys

    from modelci.judge import gate

    sys.modules.pop("modelci.ci.gate", None)
    with pytest.warns(DeprecationWarning, match=r"modelci\.judge\.gate"):
        old = importlib.import_module("modelci.ci.gate")
    assert old.evaluate_gate is gate.evaluate_gate
    assert old.load_gate_rules is gate.load_gate_rules
