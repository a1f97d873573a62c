"""Gate thresholds measured from the data: what a model that knows nothing scores on this split.

A new repository's gate should mean "better than knowing nothing" for *this* data, not numbers
that happened to fit another dataset. Two measurements on the test split the pipeline uses:

- the dummy: the majority class (or the mean), fitted on the train split;
- chance: the best score a model that knows nothing reaches by luck in 99 draws of 100. For a
  label or ranking metric (balanced accuracy, F1, ROC AUC) that is the 99th percentile over
  draws whose predictions are the test labels shuffled (right class balance, no knowledge of
  the row). For R², whose dummy sits at 0, it is the dummy plus 2.33 standard errors of the
  dummy's mean squared error, relative to the test variance (a one-sided 99% bound).

A metric with a chance bound gets it as its ``min``: the dummy model itself fails the gate.
Losses (log loss, RMSE) stay at the dummy's value: a model worse than the class prior (or the
mean) fails, and a real model's gain there is often within a test split's noise.
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


# One-sided 99%: the normal quantile, and the percentile of the shuffled draws.
Z_99 = 2.326
CHANCE_DRAWS = 200


def _split_dummy(
    frame: pd.DataFrame, data: DataParams, prepare: PrepareParams
) -> tuple[m.Predictions, pd.DataFrame]:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    train, test = split(frame, data, prepare)
    dummy: Any = DummyClassifier() if data.is_classification else DummyRegressor()
    dummy.fit(train[data.features], train[data.target])
    return m.predict(dummy, test[data.features], test[data.target]), test


def dummy_scores(frame: pd.DataFrame, data: DataParams, prepare: PrepareParams) -> dict[str, float]:
    """Fit a most-frequent / mean dummy on the train split; its metrics on the test split."""
    pred, _ = _split_dummy(frame, data, prepare)
    return m.compute_metrics(pred, data)


def _shuffled_draws(y_true: np.ndarray, task: str, seed: int) -> dict[str, np.ndarray]:
    """Scores of predictions that are the test labels in a random order: no knowledge of a row.

    Such a prediction ranks a row only by its predicted label, so each class's one-vs-rest ROC
    AUC is the mean of its recall and specificity (ties count a half, as scikit-learn counts
    them); the counts are computed for all draws at once.
    """
    rng = np.random.default_rng(seed)
    classes, codes = np.unique(y_true, return_inverse=True)
    shuffled = np.stack([rng.permutation(codes) for _ in range(CHANCE_DRAWS)])
    n = len(codes)
    recall, specificity, f1 = [], [], []
    for k in range(len(classes)):
        actual, predicted = codes == k, shuffled == k
        tp = (predicted & actual).sum(axis=1)
        positives, called = actual.sum(), predicted.sum(axis=1)
        recall.append(tp / positives)
        specificity.append((n - positives - called + tp) / (n - positives))
        f1.append(2 * tp / (positives + called))
    balanced = np.mean(recall, axis=0)
    auc = np.mean((np.asarray(recall) + np.asarray(specificity)) / 2, axis=0)
    if task == "binary":
        return {"balanced_accuracy": balanced, "roc_auc": auc}
    return {"balanced_accuracy": balanced, "f1_macro": np.mean(f1, axis=0), "roc_auc": auc}


def chance_scores(
    frame: pd.DataFrame, data: DataParams, prepare: PrepareParams, seed: int = 0
) -> dict[str, float]:
    """The best score a model that knows nothing reaches by luck in 99 of 100 draws (see above)."""
    pred, _ = _split_dummy(frame, data, prepare)
    if data.is_classification:
        draws = _shuffled_draws(np.asarray(pred.y_true), data.task, seed)
        return {name: float(np.quantile(values, 0.99)) for name, values in draws.items()}
    y_true = np.asarray(pred.y_true, dtype=float)
    errors = (y_true - np.asarray(pred.y_pred, dtype=float)) ** 2
    variance = float(np.mean((y_true - y_true.mean()) ** 2))
    if len(errors) < 2 or variance == 0:
        return {}
    se = float(np.std(errors, ddof=1) / np.sqrt(len(errors)))
    r2 = 1.0 - float(np.mean(errors)) / variance
    return {"r2": r2 + Z_99 * se / variance}


def _round(value: float, higher_is_better: bool) -> float:
    """Four decimals, rounded towards the baseline's side: the measured value sits on the bound."""
    scaled = value * 10_000
    bound = math.floor(scaled) if higher_is_better else math.ceil(scaled)
    return float(bound / 10_000)


def gate_rules(
    task: str, baseline: dict[str, float], chance: dict[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """``gate.metrics`` for ``params.yaml``: min (or max) at the baseline, with a tolerance.

    A metric in ``chance`` gets the higher of the dummy's and chance's score as its ``min``
    (rounded up, so the value measured at init fails: equal passes in the gate).
    """
    rules: dict[str, dict[str, Any]] = {}
    pairs = [(name, tol, False) for name, tol in GATED[task]]
    pairs += [(name, tol, True) for name, tol in RELATIVE.get(task, ())]
    for name, tolerance, relative in pairs:
        value = baseline.get(name)
        if value is None or not np.isfinite(value):
            continue
        higher = m.HIGHER_IS_BETTER[name]
        lucky = (chance or {}).get(name)
        if higher and lucky is not None and np.isfinite(lucky) and lucky >= value:
            bound = math.floor(lucky * 10_000 + 1) / 10_000
        else:
            bound = _round(value, higher)
        rule: dict[str, Any] = {"min" if higher else "max": bound}
        rule["tolerance"] = round(tolerance * abs(value), 4) if relative else tolerance
        if not higher:
            rule["higher_is_better"] = False
        rules[name] = rule
    return rules
