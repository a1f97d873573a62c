"""The evaluate stage's metrics from per-partition aggregates (``compute.engine: dask``).

Each partition of the test split is scored where it lives and reduced to an :class:`Aggregate`
whose size does not grow with the rows; aggregates add up, and the metrics come from the sum:

- exact: the confusion counts (accuracy, balanced accuracy, precision, recall, F1), the summed
  log loss, and for regression the count, the summed squared and absolute errors and the target's
  mean and sum of squared deviations (combined with Chan's formula), so ``rmse``, ``mae`` and
  ``r2`` equal the local engine's within floating-point rounding;
- bounded: for each class, histograms of its predicted probability over :data:`SCORE_BINS` fixed
  bins of [0, 1], one for the rows of that class and one for the others (kept sparse: only the
  bins that hold a row). ``roc_auc`` and ``average_precision`` and the curves are computed from
  them. Two scores that fall in one bin count as a tie, so the area can differ from the exact one
  by at most :func:`auc_error_bound` (half the share of positive-negative pairs that share a bin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams
from modelci.judge.metrics import Predictions, _clean, positive_label

SCORE_BINS = 1 << 20


@dataclass
class Histogram:
    """Sparse counts over the :data:`SCORE_BINS` bins: sorted bin numbers and their counts."""

    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, scores: np.ndarray) -> Histogram:
        index = np.clip(
            (np.asarray(scores, dtype=np.float64) * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1
        )
        bins, counts = np.unique(index, return_counts=True)
        return cls(bins, counts.astype(np.int64))

    def __add__(self, other: Histogram) -> Histogram:
        bins, inverse = np.unique(np.concatenate([self.bins, other.bins]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([self.counts, other.counts]))
        return Histogram(bins, counts.astype(np.int64))

    def dense_on(self, bins: np.ndarray) -> np.ndarray:
        """The counts at ``bins`` (a sorted superset of this histogram's bins)."""
        out = np.zeros(len(bins), dtype=np.int64)
        out[np.searchsorted(bins, self.bins)] = self.counts
        return out


@dataclass
class Aggregate:
    """What one partition (or the sum of several) contributes to the metrics."""

    rows: int = 0
    # classification
    confusion: dict[tuple[Any, Any], int] = field(default_factory=dict)
    log_loss_sum: float = 0.0
    has_proba: bool = False
    # per class: (histogram of its score on its rows, on the other rows)
    scores: dict[Any, tuple[Histogram, Histogram]] = field(default_factory=dict)
    # regression
    squared_error: float = 0.0
    absolute_error: float = 0.0
    target_mean: float = 0.0
    target_m2: float = 0.0

    def __add__(self, other: Aggregate) -> Aggregate:
        confusion = dict(self.confusion)
        for key, count in other.confusion.items():
            confusion[key] = confusion.get(key, 0) + count
        scores = dict(self.scores)
        for label, (own, rest) in other.scores.items():
            if label in scores:
                scores[label] = (scores[label][0] + own, scores[label][1] + rest)
            else:
                scores[label] = (own, rest)
        rows = self.rows + other.rows
        mean, m2 = self.target_mean, self.target_m2
        if other.rows:
            delta = other.target_mean - mean
            mean += delta * other.rows / rows
            m2 += other.target_m2 + delta * delta * self.rows * other.rows / rows
        return Aggregate(
            rows=rows,
            confusion=confusion,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            has_proba=self.has_proba or other.has_proba,
            scores=scores,
            squared_error=self.squared_error + other.squared_error,
            absolute_error=self.absolute_error + other.absolute_error,
            target_mean=mean,
            target_m2=m2,
        )


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def aggregate(pred: Predictions, classification: bool) -> Aggregate:
    """One partition's predictions reduced to their aggregate."""
    rows = len(pred.y_true)
    if not classification:
        truth = pred.y_true.astype(np.float64)
        error = truth - pred.y_pred.astype(np.float64)
        mean = float(truth.mean()) if rows else 0.0
        return Aggregate(
            rows=rows,
            squared_error=float(np.square(error).sum()),
            absolute_error=float(np.abs(error).sum()),
            target_mean=mean,
            target_m2=float(np.square(truth - mean).sum()),
        )
    pairs = pd.DataFrame({"actual": pred.y_true, "predicted": pred.y_pred}).value_counts()
    confusion = {
        (_label(key[0]), _label(key[1])): int(count)
        for key, count in zip(pairs.index.tolist(), pairs.tolist(), strict=True)
    }
    result = Aggregate(rows=rows, confusion=confusion)
    if pred.proba is None:
        return result
    proba = np.asarray(pred.proba)
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    true_index = pd.Index(pred.classes).get_indexer(pred.y_true)
    if (true_index < 0).any():
        unknown = pred.y_true[true_index < 0][0]
        raise ValueError(f"label {unknown!r} is not a class of the model ({pred.classes})")
    result.log_loss_sum = float(-np.log(clipped[np.arange(rows), true_index]).sum())
    result.has_proba = True
    for index, label in enumerate(pred.classes):
        own = true_index == index
        result.scores[_label(label)] = (
            Histogram.of(proba[own, index]),
            Histogram.of(proba[~own, index]),
        )
    return result


def _ranked(own: Histogram, rest: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per occupied bin, the highest scores first."""
    bins = np.unique(np.concatenate([own.bins, rest.bins]))
    return own.dense_on(bins)[::-1], rest.dense_on(bins)[::-1]


def roc_auc(own: Histogram, rest: Histogram) -> float:
    """The area under the ROC curve; scores sharing a bin count as ties (half a pair each)."""
    pos, neg = _ranked(own, rest)
    positives, negatives = int(pos.sum()), int(neg.sum())
    if not positives or not negatives:
        return math.nan
    below = negatives - np.cumsum(neg)
    return float((pos * (below + neg / 2)).sum() / (positives * negatives))


def auc_error_bound(own: Histogram, rest: Histogram) -> float:
    """How far :func:`roc_auc` can be from the area over the exact scores: half the share of
    positive-negative pairs in one bin (each such pair counts 1/2 where it is worth 0 or 1)."""
    pos, neg = _ranked(own, rest)
    pairs = int(pos.sum()) * int(neg.sum())
    return float(0.5 * (pos * neg).sum() / pairs) if pairs else 0.0


def _pr_points(own: Histogram, rest: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall with the threshold at each occupied bin, highest first."""
    pos, neg = _ranked(own, rest)
    true_positives, false_positives = np.cumsum(pos), np.cumsum(neg)
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    recall = true_positives / max(int(pos.sum()), 1)
    return precision, recall


def average_precision(own: Histogram, rest: Histogram) -> float:
    """scikit-learn's ``average_precision_score`` over the bins' thresholds."""
    if not own.counts.sum():
        return math.nan
    precision, recall = _pr_points(own, rest)
    return float((np.diff(np.concatenate([[0.0], recall])) * precision).sum())


def roc_points(own: Histogram, rest: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) from (0, 0) up, one vertex per occupied bin."""
    pos, neg = _ranked(own, rest)
    fpr = np.concatenate([[0.0], np.cumsum(neg) / max(int(neg.sum()), 1)])
    tpr = np.concatenate([[0.0], np.cumsum(pos) / max(int(pos.sum()), 1)])
    return fpr, tpr


def pr_points(own: Histogram, rest: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) in scikit-learn's order: recall falling, ending at (0, 1)."""
    precision, recall = _pr_points(own, rest)
    return np.concatenate([recall[::-1], [0.0]]), np.concatenate([precision[::-1], [1.0]])


def labels_of(total: Aggregate) -> list[Any]:
    """The labels seen as actual or predicted, in the order ``np.unique`` sorts them."""
    seen = {label for pair in total.confusion for label in pair}
    return list(np.unique(np.array(sorted(seen, key=str))).tolist()) if seen else []


def _classification(total: Aggregate, data: DataParams, classes: list[Any]) -> dict[str, float]:
    count = total.confusion.get
    labels = labels_of(total)
    support = {a: sum(count((a, p), 0) for p in labels) for a in labels}
    predicted = {p: sum(count((a, p), 0) for a in labels) for p in labels}
    present = {label for label in labels if support[label]}

    def f1(label: Any) -> float:
        hits = count((label, label), 0)
        denominator = support[label] + predicted[label]
        return 2 * hits / denominator if denominator else 0.0

    scores: dict[str, float] = {
        "accuracy": sum(count((label, label), 0) for label in labels) / total.rows,
        "balanced_accuracy": float(
            np.mean(
                [count((label, label), 0) / support[label] for label in sorted(present, key=str)]
            )
        ),
    }
    if data.task == "binary":
        positive = _label(positive_label(data, classes))
        hits = count((positive, positive), 0)
        scores["precision"] = hits / predicted[positive] if predicted.get(positive) else 0.0
        scores["recall"] = hits / support[positive] if support.get(positive) else 0.0
        scores["f1"] = f1(positive) if positive in support else 0.0
        if total.has_proba and len(present) == 2:
            own, rest = total.scores[positive]
            scores["roc_auc"] = roc_auc(own, rest)
            scores["average_precision"] = average_precision(own, rest)
    else:
        per_label = [f1(label) for label in labels]
        scores["f1_macro"] = float(np.mean(per_label))
        weights = [support[label] for label in labels]
        scores["f1_weighted"] = float(np.average(per_label, weights=weights))
        if total.has_proba and present == {_label(c) for c in classes}:
            scores["roc_auc"] = float(np.mean([roc_auc(*total.scores[_label(c)]) for c in classes]))
    if total.has_proba:
        scores["log_loss"] = total.log_loss_sum / total.rows
    return scores


def _regression(total: Aggregate) -> dict[str, float]:
    scores = {
        "rmse": math.sqrt(total.squared_error / total.rows),
        "mae": total.absolute_error / total.rows,
    }
    if total.rows >= 2:
        if total.target_m2 > 0:
            scores["r2"] = 1 - total.squared_error / total.target_m2
        else:  # scikit-learn's force_finite: a constant target
            scores["r2"] = 1.0 if total.squared_error == 0 else 0.0
    return scores


def metrics(total: Aggregate, data: DataParams, classes: list[Any]) -> dict[str, float]:
    """``metrics.json`` from the summed aggregate, as ``modelci.judge.metrics.compute_metrics``
    computes it from every prediction."""
    if not total.rows:
        return {}
    found = _classification(total, data, classes) if data.is_classification else _regression(total)
    return {name: _clean(value) for name, value in found.items()}


def slice_metrics(
    slices: dict[str, dict[str, Aggregate]], data: DataParams, classes: list[Any], min_rows: int
) -> dict[str, dict[str, dict[str, float]]]:
    """``slices.json`` from each slice value's summed aggregate, as
    ``modelci.judge.metrics.slice_metrics`` computes it (values sorted as text; a slice under
    ``min_rows`` reports its rows only)."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column, per_value in slices.items():
        result[column] = {}
        for value in sorted(per_value, key=str):
            total = per_value[value]
            entry: dict[str, float] = {"rows": total.rows}
            if total.rows >= min_rows:
                entry.update(metrics(total, data, classes))
            result[column][value] = entry
    return result
