"""The plot tables ``dvc.yaml`` declares, bounded in size whatever the number of test rows.

Every file here is committed to git and copied into each MLflow run, so none may grow with the
data. The rules (docs/scale.md), each deterministic, so the files are reproducible like every
other output:

- ``confusion.csv``: one line per (actual, predicted) pair of classes with its ``count``; exact.
  ``dvc plots`` draws it with the ``confusion_counts`` template in ``.dvc/plots/``, which sums
  ``count`` where DVC's ``confusion`` template counts lines.
- ``roc.csv``, ``precision_recall.csv``: the exact curve over all rows, thinned to at most
  :data:`MAX_CURVE_POINTS` vertices evenly spaced along its length, endpoints kept. A curve in the
  unit square is at most 2 long, so every dropped vertex lies within ``2 / (MAX_CURVE_POINTS - 2)``
  (along the curve) of a kept one. The AUC in ``metrics.json`` is computed from all rows.
- ``predictions.csv``, ``residuals.csv`` (regression): at most :data:`MAX_SCATTER_ROWS` test rows,
  evenly spaced in the test set's order (which the seeded split already shuffled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams
from modelci.judge.aggregates import Aggregate, Histogram, labels_of, pr_points, roc_points
from modelci.judge.metrics import ROUND, Predictions, positive_label

MAX_CURVE_POINTS = 250
MAX_SCATTER_ROWS = 2000


def evenly_spaced(n: int, limit: int) -> np.ndarray:
    """``limit`` indices out of ``range(n)``, evenly spaced, first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def thin_curve(xs: np.ndarray, ys: np.ndarray, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` vertices of the polyline, evenly spaced along its length."""
    if len(xs) <= limit:
        return np.arange(len(xs))
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    if length[-1] == 0:
        return np.array([0, len(xs) - 1])
    targets = np.linspace(0.0, length[-1], limit - 1)  # + the last vertex: at most ``limit``
    nearest = np.searchsorted(length, targets).clip(0, len(xs) - 1)
    return np.unique(np.concatenate([[0], nearest, [len(xs) - 1]]))


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Every (actual, predicted) pair of the labels seen, with its count (zeros included)."""
    values, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    actual, predicted = codes[: len(y_true)], codes[len(y_true) :]
    counts = np.bincount(actual * len(values) + predicted, minlength=len(values) ** 2)
    labels = values.astype(str)
    return pd.DataFrame(
        {
            "actual": np.repeat(labels, len(labels)),
            "predicted": np.tile(labels, len(labels)),
            "count": counts,
        }
    )


def _curve_table(xs: np.ndarray, ys: np.ndarray, x: str, y: str) -> pd.DataFrame:
    keep = thin_curve(xs, ys)
    return pd.DataFrame({x: xs[keep], y: ys[keep]})


def _scored(pred: Predictions, data: DataParams) -> tuple[np.ndarray, np.ndarray] | None:
    """The 0/1 truth and the score the curves rank by (micro-averaged for multiclass)."""
    if pred.proba is None:
        return None
    if data.task == "binary":
        positive = positive_label(data, pred.classes)
        truth = (pred.y_true == positive).astype(int)
        score = pred.proba[:, pred.classes.index(positive)]
    else:  # micro-average over one-vs-rest indicators
        truth = np.column_stack([pred.y_true == label for label in pred.classes]).ravel()
        score = pred.proba.ravel()
    return (truth, score) if len(np.unique(truth)) == 2 else None


def plot_tables(pred: Predictions, data: DataParams) -> dict[str, pd.DataFrame]:
    """The plot data ``dvc.yaml`` declares, one table per file name (see the module docstring)."""
    from sklearn import metrics as m

    if not data.is_classification:
        keep = evenly_spaced(len(pred.y_true), MAX_SCATTER_ROWS)
        actual, predicted = pred.y_true[keep], pred.y_pred[keep]
        tables = {
            "predictions.csv": pd.DataFrame({"actual": actual, "predicted": predicted}),
            "residuals.csv": pd.DataFrame({"predicted": predicted, "residual": actual - predicted}),
        }
    else:
        tables = {"confusion.csv": confusion_counts(pred.y_true, pred.y_pred)}
        scored = _scored(pred, data)
        if scored is not None:
            fpr, tpr, _ = m.roc_curve(*scored)
            precision, recall, _ = m.precision_recall_curve(*scored)
            tables["roc.csv"] = _curve_table(fpr, tpr, "fpr", "tpr")
            tables["precision_recall.csv"] = _curve_table(recall, precision, "recall", "precision")
    return {name: table.round(ROUND) for name, table in tables.items()}


def aggregate_plot_tables(
    total: Aggregate, classes: list[Any], scatter: pd.DataFrame, data: DataParams
) -> dict[str, pd.DataFrame]:
    """The tables of :func:`plot_tables` from the Dask engine's summed aggregate: the confusion
    counts exact, the curves over the score histograms' bins (then thinned the same way), the
    regression scatter from the rows at the same evenly spaced positions."""
    if not data.is_classification:
        actual, predicted = scatter["actual"].to_numpy(), scatter["predicted"].to_numpy()
        tables = {
            "predictions.csv": pd.DataFrame({"actual": actual, "predicted": predicted}),
            "residuals.csv": pd.DataFrame({"predicted": predicted, "residual": actual - predicted}),
        }
        return {name: table.round(ROUND) for name, table in tables.items()}
    labels = labels_of(total)
    text = np.array(labels).astype(str)
    tables = {
        "confusion.csv": pd.DataFrame(
            {
                "actual": np.repeat(text, len(text)),
                "predicted": np.tile(text, len(text)),
                "count": [total.confusion.get((a, p), 0) for a in labels for p in labels],
            }
        )
    }
    if total.has_proba:
        if data.task == "binary":
            own, rest = total.scores[positive_label(data, classes)]
        else:  # micro-average over one-vs-rest indicators
            own = sum((pair[0] for pair in total.scores.values()), Histogram())
            rest = sum((pair[1] for pair in total.scores.values()), Histogram())
        if own.counts.sum() and rest.counts.sum():
            fpr, tpr = roc_points(own, rest)
            recall, precision = pr_points(own, rest)
            tables["roc.csv"] = _curve_table(fpr, tpr, "fpr", "tpr")
            tables["precision_recall.csv"] = _curve_table(recall, precision, "recall", "precision")
    return {name: table.round(ROUND) for name, table in tables.items()}
