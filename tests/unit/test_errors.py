"""Every public error class of the package is a ``ModelCIError``, so the CLI prints it as one line
with its exit code (instead of an "unexpected error") and callers catch one base class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.sources import package_trees

pytestmark = pytest.mark.unit


# Internal signals that never leave their module's caller, each with why it is not user-facing.
INTERNAL = {
    # One value's problem, always collected into the request's InputError (a 422 answer).
    "BadValueError",
    # The MLflow REST answer's status and code; Registry.call wraps it into a TrackingError.
    "RestError",
}


def _error_classes() -> dict[str, tuple[Path, list[str]]]:
    """Every class in the package: name -> (file, names of its bases)."""
    classes: dict[str, tuple[Path, list[str]]] = {}
    for path, tree in package_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
                classes[node.name] = (path, bases)
    return classes


def _reaches(name: str, classes: dict[str, tuple[Path, list[str]]], seen: set[str]) -> bool:
    if name == "ModelCIError":
        return True
    if name in seen or name not in classes:
        return False
    seen.add(name)
    return any(_reaches(base, classes, seen) for base in classes[name][1])


def _is_exception(name: str, classes: dict[str, tuple[Path, list[str]]]) -> bool:
    builtin = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    found = builtin.get(name)
    if isinstance(found, type) and issubclass(found, BaseException):
        return True
    return name in classes and any(_is_exception(base, classes) for base in classes[name][1])


def test_every_public_error_is_a_modelci_error() -> None:
    classes = _error_classes()
    errors = {
        name
        for name in classes
        if not name.startswith("_") and name not in INTERNAL and _is_exception(name, classes)
    }
    assert len(errors) > 15  # the walk found the package's errors
    strays = sorted(
        f"{classes[name][0].relative_to(REPO_ROOT)}: {name}"
        for name in errors
        if not _reaches(name, classes, set())
    )
    assert strays == []


def test_the_internal_signals_still_exist() -> None:
    """The allowance goes when its class does."""
    assert set(_error_classes()) >= INTERNAL
