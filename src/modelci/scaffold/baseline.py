"""Gate thresholds measured from the data: a dummy model's scores on the split the pipeline uses.

A new repository's gate should mean "better than knowing nothing" for *this* data, not numbers
that happened to fit another dataset. The dummy predicts the majority class (or the mean), so
every threshold here is one the real model must beat to be worth deploying.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams, PrepareParams
from modelci.judge import metrics as m
from modelci.pipeline.prepare import split

# The gated metrics per task: (name, tolerance against the base branch).
GATED: dict[str, tuple[tuple[str, float], ...]] = {
    "binary": (("balanced_accuracy", 0.02), ("roc_auc", 0.02), ("log_loss", 0.03)),
    "multiclass": (("balanced_accuracy", 0.02), ("f1_macro", 0.03), ("log_loss", 0.05)),
    "regression": (("r2", 0.02),),
}
# Regression errors are in the target's unit: their tolerance is a fraction of the baseline.
RELATIVE: dict[str, tuple[tuple[str, float], ...]] = {"regression": (("rmse", 0.02),)}


def dummy_scores(frame: pd.DataFrame, data: DataParams, prepare: PrepareParams) -> dict[str, float]:
    """Fit a most-frequent / mean dummy on the train split; its metrics on the test split."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    train, test = split(frame, data, prepare)
    dummy: Any = DummyClassifier() if data.is_classification else DummyRegressor()
    dummy.fit(train[data.features], train[data.target])
    pred = m.predict(dummy, test[data.features], test[data.target])
    return m.compute_metrics(pred, data)


def _round(value: float, higher_is_better: bool) -> float:
    """Four decimals, rounded towards the baseline's side so the dummy itself sits on the bound."""
    scaled = value * 10_000
    bound = math.floor(scaled) if higher_is_better else math.ceil(scaled)
    return float(bound / 10_000)


def gate_rules(task: str, baseline: dict[str, float]) -> dict[str, dict[str, Any]]:
    """``gate.metrics`` for ``params.yaml``: min (or max) at the baseline, with a tolerance."""
    rules: dict[str, dict[str, Any]] = {}
    pairs = [(name, tol, False) for name, tol in GATED[task]]
    pairs += [(name, tol, True) for name, tol in RELATIVE.get(task, ())]
    for name, tolerance, relative in pairs:
        value = baseline.get(name)
        if value is None or not np.isfinite(value):
            continue
        higher = m.HIGHER_IS_BETTER[name]
        rule: dict[str, Any] = {"min" if higher else "max": _round(value, higher)}
        rule["tolerance"] = round(tolerance * abs(value), 4) if relative else tolerance
        if not higher:
            rule["higher_is_better"] = False
        rules[name] = rule
    return rules
