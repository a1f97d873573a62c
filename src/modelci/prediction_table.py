"""The per-row predictions of the test rows, as ``evaluate`` stores them and the report reads them.

One row per test row, in the test split's order: ``actual``, ``predicted`` and, for a classifier
with probabilities, one ``proba:CLASS`` column per class (in the model's class order). The PR
report reads the base's file from the DVC cache (``modelci.ci.predictions``) to score both
models on the same rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from modelci.judge.metrics import Predictions
from modelci.layout import DEFAULT_PATHS

PROBA = "proba:"
PREDICTIONS = DEFAULT_PATHS.predictions.as_posix()


def to_frame(pred: Predictions) -> pd.DataFrame:
    """The table of ``pred`` (see the module docstring)."""
    columns: dict[str, Any] = {"actual": pred.y_true, "predicted": pred.y_pred}
    if pred.proba is not None:
        for index, label in enumerate(pred.classes):
            columns[f"{PROBA}{label}"] = pred.proba[:, index]
    return pd.DataFrame(columns)
