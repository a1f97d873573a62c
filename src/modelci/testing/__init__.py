"""modelci's pytest plugin: model checks every model repository gets without copying them.

``from modelci.testing import ModelChecks`` and subclass it in a test module; the fixtures
(``modelci_model``, ``modelci_test_frame`` ...) come from the ``modelci`` pytest entry point.
``ModelChecks`` (and pandas with it) is imported only when a test module asks for it: the entry
point loads in every pytest run of an environment that has modelci, so it must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.testing.checks import ModelChecks

__all__ = ["ModelChecks"]


def __getattr__(name: str) -> Any:
    if name == "ModelChecks":
        from modelci.testing.checks import ModelChecks

        return ModelChecks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
