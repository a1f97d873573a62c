"""Task-appropriate metrics and per-slice metrics: pure functions of predictions."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams

# Whether a larger value is better: the report and the gate read this to call a change a regression.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "f1_macro": True,
    "f1_weighted": True,
    "roc_auc": True,
    "average_precision": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
ROUND = 6


@dataclass(frozen=True)
class Predictions:
    """Model outputs on a table: labels (or values), and class probabilities when available."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    classes: list[Any]


def predict(model: Any, features: pd.DataFrame, target: pd.Series) -> Predictions:
    """Run the model once over ``features``.

    A classifier with ``predict_proba`` gets its labels from the probabilities (the most probable
    class, the first on a tie), which is what scikit-learn's classifiers' ``predict`` computes;
    calling both doubled evaluate's time on large test sets.
    """
    classes = list(getattr(model, "classes_", []))
    if hasattr(model, "predict_proba") and classes:
        proba = np.asarray(model.predict_proba(features))
        labels = np.asarray(classes)[np.argmax(proba, axis=1)]
        return Predictions(np.asarray(target), labels, proba, classes)
    return Predictions(np.asarray(target), np.asarray(model.predict(features)), None, classes)


def positive_label(data: DataParams, classes: list[Any]) -> Any:
    """The class ROC/PR curves score: ``data.positive_label``, else the last class."""
    if data.positive_label is None:
        return classes[-1]
    matches = [label for label in classes if str(label) == str(data.positive_label)]
    if not matches:
        from modelci.errors import ConfigError

        raise ConfigError(
            f"params.yaml: data.positive_label: {data.positive_label!r} is not a class of the "
            f"model ({classes})"
        )
    return matches[0]


def _clean(value: float) -> float:
    return round(float(value), ROUND) if math.isfinite(value) else float(value)


def classification_metrics(pred: Predictions, data: DataParams) -> dict[str, float]:
    from sklearn import metrics as m

    scores: dict[str, float] = {
        "accuracy": m.accuracy_score(pred.y_true, pred.y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(pred.y_true, pred.y_pred),
    }
    present = set(np.unique(pred.y_true).tolist())
    if data.task == "binary":
        positive = positive_label(data, pred.classes)
        scores["precision"] = m.precision_score(
            pred.y_true, pred.y_pred, pos_label=positive, zero_division=0
        )
        scores["recall"] = m.recall_score(
            pred.y_true, pred.y_pred, pos_label=positive, zero_division=0
        )
        scores["f1"] = m.f1_score(pred.y_true, pred.y_pred, pos_label=positive, zero_division=0)
        if pred.proba is not None and len(present) == 2:
            score = pred.proba[:, pred.classes.index(positive)]
            is_positive = pred.y_true == positive
            scores["roc_auc"] = m.roc_auc_score(is_positive, score)
            scores["average_precision"] = m.average_precision_score(is_positive, score)
    else:
        scores["f1_macro"] = m.f1_score(pred.y_true, pred.y_pred, average="macro", zero_division=0)
        scores["f1_weighted"] = m.f1_score(
            pred.y_true, pred.y_pred, average="weighted", zero_division=0
        )
        if pred.proba is not None and present == set(pred.classes):
            scores["roc_auc"] = m.roc_auc_score(
                pred.y_true, pred.proba, multi_class="ovr", labels=pred.classes
            )
    if pred.proba is not None:
        scores["log_loss"] = m.log_loss(pred.y_true, pred.proba, labels=pred.classes)
    return {name: _clean(value) for name, value in scores.items()}


def regression_metrics(pred: Predictions) -> dict[str, float]:
    from sklearn import metrics as m

    scores = {
        "rmse": math.sqrt(m.mean_squared_error(pred.y_true, pred.y_pred)),
        "mae": m.mean_absolute_error(pred.y_true, pred.y_pred),
    }
    if len(pred.y_true) >= 2:
        scores["r2"] = m.r2_score(pred.y_true, pred.y_pred)
    return {name: _clean(value) for name, value in scores.items()}


def compute_metrics(pred: Predictions, data: DataParams) -> dict[str, float]:
    if data.is_classification:
        return classification_metrics(pred, data)
    return regression_metrics(pred)


def subset(pred: Predictions, mask: np.ndarray) -> Predictions:
    proba = pred.proba[mask] if pred.proba is not None else None
    return Predictions(pred.y_true[mask], pred.y_pred[mask], proba, pred.classes)


def slice_metrics(
    pred: Predictions,
    frame: pd.DataFrame,
    data: DataParams,
    columns: tuple[str, ...],
    min_rows: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column; slices smaller than ``min_rows`` report rows only."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        values = frame[column]
        if data.columns[column].is_numeric and values.nunique() > 10:
            values = pd.qcut(values, q=4, duplicates="drop").astype(str)
        per_value: dict[str, dict[str, float]] = {}
        for value in sorted(values.dropna().unique(), key=str):
            mask = (values == value).to_numpy()
            rows = int(mask.sum())
            entry: dict[str, float] = {"rows": rows}
            if rows >= min_rows:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # a slice may hold one class
                    entry.update(compute_metrics(subset(pred, mask), data))
            per_value[str(value)] = entry
        result[column] = per_value
    return result
