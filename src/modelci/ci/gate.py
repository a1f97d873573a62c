"""Deprecated import path, kept for one release: the gate rules moved to :mod:`modelci.judge.gate`.

docs/pr-ci.md showed ``from modelci.ci.gate import evaluate_gate, load_gate_rules``; that import
keeps working, with a DeprecationWarning naming the new path.
"""

from __future__ import annotations

import warnings

from modelci.judge.gate import evaluate_gate, load_gate_rules

warnings.warn(
    "modelci.ci.gate is deprecated: import evaluate_gate and load_gate_rules from "
    "modelci.judge.gate",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["evaluate_gate", "load_gate_rules"]
