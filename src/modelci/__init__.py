"""modelci: GitHub Actions CI/CD for machine-learning model repositories.

What adopters may import is ``__all__`` (listed with its meaning in docs/api.md); everything else
is private by name even where it is importable, and may change in any release. The names are
loaded on first use (PEP 562), so ``import modelci`` stays as light as the CLI's ``--help``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.cli import main
    from modelci.config import (
        Column,
        ColumnSpec,
        DataParams,
        GateParams,
        Params,
        load_data_params,
        load_params,
        load_section,
    )
    from modelci.errors import ConfigError, DataError, ModelCIError, ModelFileError, TrackingError
    from modelci.judge.gate import Verdict, evaluate_gate, load_gate, load_gate_rules
    from modelci.testing import ModelChecks

# One source for the version: pyproject.toml, read from the installed distribution's metadata.
__version__ = version("modelci")

# Public name -> the module it is imported from.
_PUBLIC = {
    "main": "modelci.cli",
    "ModelCIError": "modelci.errors",
    "ConfigError": "modelci.errors",
    "DataError": "modelci.errors",
    "ModelFileError": "modelci.errors",
    "TrackingError": "modelci.errors",
    "Params": "modelci.config",
    "DataParams": "modelci.config",
    "ColumnSpec": "modelci.config",
    "Column": "modelci.config",
    "GateParams": "modelci.config",
    "load_params": "modelci.config",
    "load_data_params": "modelci.config",
    "load_section": "modelci.config",
    "Verdict": "modelci.judge.gate",
    "evaluate_gate": "modelci.judge.gate",
    "load_gate": "modelci.judge.gate",
    "load_gate_rules": "modelci.judge.gate",
    "ModelChecks": "modelci.testing",
}

__all__ = [
    "Column",
    "ColumnSpec",
    "ConfigError",
    "DataError",
    "DataParams",
    "GateParams",
    "ModelCIError",
    "ModelChecks",
    "ModelFileError",
    "Params",
    "TrackingError",
    "Verdict",
    "__version__",
    "evaluate_gate",
    "load_data_params",
    "load_gate",
    "load_gate_rules",
    "load_params",
    "load_section",
    "main",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name here."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
