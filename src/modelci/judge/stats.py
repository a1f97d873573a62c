"""Is a metric's change between base and PR larger than noise? Intervals of the delta. Pure numpy.

``compare(metric, base, head, paired=...)`` returns a :class:`DeltaInterval` for ``head - base``:

- **paired** (both models scored on the same test rows): a bootstrap that resamples *rows* and
  recomputes the metric of both models on each resample, so the noise the two share cancels.
  Metrics made of counts (accuracy, precision, recall, F1, balanced accuracy) are resampled
  exactly over the distinct (actual, base prediction, PR prediction) cells, which costs the same
  at 10^6 rows as at 400. Metrics of scores (ROC AUC, log loss, RMSE, MAE, R²) resample the rows
  themselves up to :data:`EXACT_ROWS` rows; above, they use the bootstrap's large-sample limit, a
  normal interval from each row's influence on the metric (DeLong's for ROC AUC).
  Accuracy also gets McNemar's exact test: a binomial test on the rows only one model got right.
- **unpaired** (the test set changed): each side is resampled on its own. The interval is wider,
  because the rows' own difficulty no longer cancels out, and a change of rows can move a metric
  as much as a change of model.

The percentile interval is used; ``significant`` means the interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelci.errors import ModelCIError

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
# Rows up to which score metrics resample rows; above it the normal limit is used (see module doc).
EXACT_ROWS = 20_000
# Bound on the (resamples x units) weight matrix held at once.
CHUNK_CELLS = 4_000_000
# Below this many rows (or a class with fewer than MIN_CLASS_ROWS), an interval is called wide.
SMALL_ROWS = 100
MIN_CLASS_ROWS = 10

COUNT_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
COUNT_METRICS += ("f1_macro", "f1_weighted")
SCORE_METRICS = ("roc_auc", "log_loss", "rmse", "mae", "r2")
SUPPORTED = COUNT_METRICS + SCORE_METRICS

Method = Literal["paired bootstrap", "unpaired bootstrap", "paired normal", "unpaired normal"]


class StatsError(ModelCIError, ValueError):
    """The two sides cannot be compared (shapes differ, a metric is unsupported...)."""


@dataclass(frozen=True)
class Scored:
    """One model's outputs on a test set, encoded for resampling.

    Classification: ``actual``/``predicted`` are class indices into ``classes``; ``proba`` holds
    one column per class (None without probabilities); ``positive`` is the scored class (binary).
    Regression: ``actual``/``predicted`` are the values and ``classes`` is empty.
    """

    actual: NDArray[Any]
    predicted: NDArray[Any]
    proba: Floats | None = None
    classes: tuple[str, ...] = ()
    positive: int = 1

    @property
    def rows(self) -> int:
        return len(self.actual)

    @property
    def is_classification(self) -> bool:
        return bool(self.classes)


@dataclass(frozen=True)
class DeltaInterval:
    """``head - base`` of one metric, its interval at ``level`` and how it was obtained."""

    metric: str
    base: float
    head: float
    delta: float
    low: float
    high: float
    level: float
    method: Method
    rows: tuple[int, int]
    resamples: int
    significant: bool
    p_value: float | None = None
    test: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = list(self.rows)
        data["notes"] = list(self.notes)
        return data


# --- metrics of weighted units, vectorised over resamples -------------------------------------
# Each takes W (resamples x units) of non-negative weights and returns one value per resample.


def _safe_div(num: Floats, den: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _class_counts(w: Floats, side: Scored) -> tuple[Floats, Floats, Floats]:
    """Per class: true positives, predicted count and actual count (resamples x classes)."""
    k = len(side.classes)
    actual = np.eye(k)[side.actual]
    predicted = np.eye(k)[side.predicted]
    return w @ (actual * predicted), w @ predicted, w @ actual


def _f1(tp: Floats, predicted: Floats, actual: Floats) -> Floats:
    return _safe_div(2 * tp, predicted + actual)


def _count_metric(name: str, w: Floats, side: Scored) -> Floats:
    total = w.sum(axis=1)
    if name == "accuracy":
        return _safe_div(w @ (side.actual == side.predicted).astype(float), total)
    tp, predicted, actual = _class_counts(w, side)
    if name == "balanced_accuracy":
        present = actual > 0
        recall = _safe_div(tp, actual)
        return _safe_div((recall * present).sum(axis=1), present.sum(axis=1).astype(float))
    if name in ("precision", "recall", "f1"):
        p = side.positive
        if name == "precision":
            return _safe_div(tp[:, p], predicted[:, p])
        if name == "recall":
            return _safe_div(tp[:, p], actual[:, p])
        return _f1(tp[:, p], predicted[:, p], actual[:, p])
    f1 = _f1(tp, predicted, actual)
    if name == "f1_macro":
        # scikit-learn averages over the labels present in actual or predicted
        present = (actual + predicted) > 0
        return _safe_div((f1 * present).sum(axis=1), present.sum(axis=1).astype(float))
    return _safe_div((f1 * actual).sum(axis=1), total)  # f1_weighted


def _binary_auc(w: Floats, score: Floats, positive: NDArray[np.bool_]) -> Floats:
    """ROC AUC of weighted rows: ties count one half, as in scikit-learn."""
    order = np.argsort(score)  # ties are grouped by value below: no stable sort needed
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    ordered = w[:, order]
    pos = np.add.reduceat(ordered * positive[order], starts, axis=1)
    neg = np.add.reduceat(ordered, starts, axis=1) - pos
    below = np.cumsum(neg, axis=1) - neg
    return _safe_div((pos * (below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1))


def _score_metric(name: str, w: Floats, side: Scored) -> Floats:
    total = w.sum(axis=1)
    if name == "log_loss":
        if side.proba is None:
            raise StatsError("log_loss needs probabilities")
        p = np.clip(side.proba[np.arange(side.rows), side.actual], 1e-15, 1.0)
        return _safe_div(w @ -np.log(p), total)
    if name == "roc_auc":
        if side.proba is None:
            raise StatsError("roc_auc needs probabilities")
        if len(side.classes) == 2:
            return _binary_auc(w, side.proba[:, side.positive], side.actual == side.positive)
        per_class = [
            _binary_auc(w, side.proba[:, k], side.actual == k) for k in range(len(side.classes))
        ]
        return np.asarray(
            np.mean(per_class, axis=0)
        )  # one-vs-rest, macro average (as in metrics.json)
    actual = side.actual.astype(float)
    error = side.predicted.astype(float) - actual
    if name == "mae":
        return _safe_div(w @ np.abs(error), total)
    mse = _safe_div(w @ error**2, total)
    if name == "rmse":
        return np.sqrt(mse)
    mean = _safe_div(w @ actual, total)
    variance = _safe_div(w @ actual**2, total) - mean**2
    return 1.0 - _safe_div(mse, variance)  # r2


def metric_values(name: str, w: Floats, side: Scored) -> Floats:
    """``name`` of ``side`` under each row of weights ``w`` (resamples x rows)."""
    if name in COUNT_METRICS:
        return _count_metric(name, w, side)
    if name in SCORE_METRICS:
        return _score_metric(name, w, side)
    raise StatsError(f"no per-row statistic for metric {name!r}")


def point(name: str, side: Scored) -> float:
    """The metric on every row once."""
    return float(metric_values(name, np.ones((1, side.rows)), side)[0])


# --- resampling ------------------------------------------------------------------------------


def _weight_chunks(rng: np.random.Generator, counts: Ints, resamples: int) -> Iterator[Floats]:
    """Bootstrap weights of units with multiplicities ``counts``, ``resamples`` rows in chunks.

    Units of one row each draw row indices; cells (many rows each) draw a multinomial, which is
    the same distribution of the resampled rows' counts per cell.
    """
    units, n = len(counts), int(counts.sum())
    rows_are_units = bool(np.all(counts == 1))
    chunk = max(1, CHUNK_CELLS // max(units, n if rows_are_units else units))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        if rows_are_units:
            draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
            yield np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)
        else:
            yield rng.multinomial(n, counts / n, size=size).astype(float)
        done += size


def _cells(sides: list[Scored]) -> tuple[Ints, list[Scored]]:
    """The distinct (actual, predicted...) cells of rows shared by ``sides``, with their counts."""
    k = len(sides[0].classes)
    key = sides[0].actual.astype(np.int64)
    for side in sides:  # one integer per (actual, predicted...) tuple: a 1-D unique is fast
        key = key * k + side.predicted
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    cells = [
        Scored(s.actual[first], s.predicted[first], None, s.classes, s.positive) for s in sides
    ]
    return counts.astype(np.int64), cells


def _replicates(
    name: str, sides: list[Scored], rng: np.random.Generator, resamples: int
) -> tuple[list[float], list[Floats]]:
    """The metric of each side on all rows, and on the same resamples of their shared rows."""
    if name in COUNT_METRICS and sides[0].is_classification:
        counts, units = _cells(sides)
    else:
        counts, units = np.ones(sides[0].rows, dtype=np.int64), sides
    points = [float(metric_values(name, counts[None, :].astype(float), u)[0]) for u in units]
    parts: list[list[Floats]] = [[] for _ in sides]
    for w in _weight_chunks(rng, counts, resamples):
        for part, side in zip(parts, units, strict=True):
            part.append(metric_values(name, w, side))
    return points, [np.concatenate(part) for part in parts]


def _influence(name: str, side: Scored) -> tuple[float, Floats]:
    """The metric, and each row's influence on it: its variance is var(influence) / rows."""
    n = side.rows
    if name == "roc_auc":
        if side.proba is None or len(side.classes) != 2:
            raise StatsError("roc_auc above the exact-bootstrap size needs a binary task")
        return _delong(side.proba[:, side.positive], side.actual == side.positive)
    if name == "log_loss":
        if side.proba is None:
            raise StatsError("log_loss needs probabilities")
        loss: Floats = -np.log(np.clip(side.proba[np.arange(n), side.actual], 1e-15, 1.0))
        return float(loss.mean()), loss - float(loss.mean())
    actual: Floats = side.actual.astype(float)
    error: Floats = side.predicted.astype(float) - actual
    if name == "mae":
        absolute: Floats = np.abs(error)
        return float(absolute.mean()), absolute - float(absolute.mean())
    squared: Floats = error**2
    mse = float(squared.mean())
    if name == "rmse":
        rmse = math.sqrt(mse)
        return rmse, (squared - mse) / (2 * rmse) if mse > 0 else np.zeros(n)
    centred: Floats = (actual - float(actual.mean())) ** 2
    variance = float(centred.mean())
    influence = -(squared - mse) / variance + mse * (centred - variance) / variance**2
    return 1.0 - mse / variance, influence  # r2


def _delong(score: Floats, positive: NDArray[np.bool_]) -> tuple[float, Floats]:
    """ROC AUC and DeLong's structural components as per-row influences (ties count one half)."""
    from scipy.stats import rankdata

    m, k = int(positive.sum()), int((~positive).sum())
    if m == 0 or k == 0:
        raise StatsError("roc_auc needs both classes among the test rows")
    rank_all = rankdata(score)
    rank_pos = rankdata(score[positive])
    rank_neg = rankdata(score[~positive])
    v10 = (rank_all[positive] - rank_pos) / k  # share of negatives below each positive
    v01 = 1.0 - (rank_all[~positive] - rank_neg) / m  # share of positives above each negative
    auc = float(v10.mean())
    n = m + k
    influence = np.empty(n)
    influence[positive] = (v10 - auc) * n / m
    influence[~positive] = (v01 - auc) * n / k
    return auc, influence


def _normal_interval(delta: float, se: float, level: float) -> tuple[float, float, float]:
    """Interval and two-sided p-value of ``delta`` with standard error ``se``."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = float(2 * norm.sf(abs(delta) / se)) if se > 0 else (0.0 if delta else 1.0)
    return delta - z * se, delta + z * se, p


def mcnemar(base: Scored, head: Scored) -> float:
    """McNemar's exact test (two-sided binomial test on the discordant rows) for accuracy."""
    from scipy.stats import binomtest

    base_right = base.actual == base.predicted
    head_right = head.actual == head.predicted
    only_head = int(np.sum(head_right & ~base_right))
    only_base = int(np.sum(base_right & ~head_right))
    if only_head + only_base == 0:
        return 1.0
    return float(binomtest(only_head, only_head + only_base, 0.5).pvalue)


def _check(name: str, base: Scored, head: Scored, paired: bool) -> None:
    if name not in SUPPORTED:
        raise StatsError(f"no per-row statistic for metric {name!r}")
    if base.is_classification != head.is_classification:
        raise StatsError("one side is a classifier and the other is not")
    if base.is_classification and base.classes != head.classes:
        raise StatsError(f"the classes differ: {list(base.classes)} vs {list(head.classes)}")
    if min(base.rows, head.rows) == 0:
        raise StatsError("a side has no test rows")
    if paired and (base.rows != head.rows or not np.array_equal(base.actual, head.actual)):
        raise StatsError("paired comparison needs the same test rows on both sides")


def _notes(base: Scored, head: Scored, paired: bool) -> tuple[str, ...]:
    notes = []
    if not paired:
        notes.append(
            "the test set changed: unpaired interval, wider than a paired one, and part of the "
            "change may come from the new rows rather than the model"
        )
    rows = min(base.rows, head.rows)
    smallest = rows
    if base.is_classification:
        smallest = min(
            int(np.bincount(side.actual, minlength=len(side.classes)).min())
            for side in (base, head)
        )
    if rows < SMALL_ROWS or smallest < MIN_CLASS_ROWS:
        notes.append(f"tiny test set ({rows} rows): the interval is wide, read it with care")
    return tuple(notes)


def compare(
    name: str,
    base: Scored,
    head: Scored,
    *,
    paired: bool,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> DeltaInterval:
    """The interval of ``head - base`` for metric ``name`` (see the module docstring)."""
    _check(name, base, head, paired)
    rng = np.random.default_rng(seed)
    alpha = 1.0 - level
    exact = name in COUNT_METRICS or max(base.rows, head.rows) <= EXACT_ROWS
    p_value: float | None = None
    if exact:
        if paired:
            (base_value, head_value), (base_reps, head_reps) = _replicates(
                name, [base, head], rng, resamples
            )
        else:
            (base_value,), (base_reps,) = _replicates(name, [base], rng, resamples)
            (head_value,), (head_reps,) = _replicates(name, [head], rng, resamples)
        delta = head_value - base_value
        deltas = head_reps - base_reps
        low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
        method: Method = "paired bootstrap" if paired else "unpaired bootstrap"
        used = resamples
    else:
        (base_value, base_influence), (head_value, head_influence) = (
            _influence(name, side) for side in (base, head)
        )
        delta = head_value - base_value
        if paired:
            variance = float(np.var(head_influence - base_influence)) / base.rows
        else:
            variance = float(np.var(base_influence)) / base.rows
            variance += float(np.var(head_influence)) / head.rows
        low, high, p_value = _normal_interval(delta, math.sqrt(variance), level)
        method = "paired normal" if paired else "unpaired normal"
        used = 0
    test = None
    if paired and name == "accuracy":
        p_value, test = mcnemar(base, head), "McNemar exact"
    significant = bool(low > 0 or high < 0)
    return DeltaInterval(
        metric=name,
        base=base_value,
        head=head_value,
        delta=delta,
        low=float(low),
        high=float(high),
        level=level,
        method=method,
        rows=(base.rows, head.rows),
        resamples=used,
        significant=significant,
        p_value=p_value,
        test=test,
        notes=_notes(base, head, paired),
    )
