"""Two models' per-row test predictions compared metric by metric: the intervals of the gated
metrics' deltas, paired when both scored the same rows. Pure: the PR report reads the two sides
(``modelci.ci.predictions``), the release scores champion and challenger
(``modelci.registry.promote``), and both judge them here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams, GateParams
from modelci.judge.metrics import Predictions
from modelci.judge.stats import SUPPORTED, DeltaInterval, Scored, StatsError, compare
from modelci.prediction_table import PROBA, to_frame

LABELS = ("actual", "predicted")


@dataclass
class Comparison:
    """The intervals found, whether they are paired, and why any are missing."""

    intervals: dict[str, DeltaInterval] = field(default_factory=dict)
    paired: bool | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paired": self.paired,
            "notes": self.notes,
            "intervals": {name: i.to_dict() for name, i in self.intervals.items()},
        }


def to_scored(frame: pd.DataFrame, classification: bool, positive_label: Any) -> Scored:
    """A predictions table encoded for ``modelci.judge.stats``; StatsError when it is not one."""
    missing = [name for name in LABELS if name not in frame.columns]
    if missing:
        raise StatsError(f"no column {missing[0]!r}")
    if not classification:
        try:
            return Scored(frame["actual"].to_numpy(float), frame["predicted"].to_numpy(float))
        except (TypeError, ValueError):
            raise StatsError("regression values are not numbers") from None
    proba_columns = [str(c) for c in frame.columns if str(c).startswith(PROBA)]
    # labels compare as text (parquet keeps 1 as an int, the proba column names it "1"); only
    # the distinct values are converted, so a million rows cost one factorize per column
    factorized = {name: pd.factorize(frame[name], use_na_sentinel=False) for name in LABELS}
    seen = {str(v) for _, uniques in factorized.values() for v in uniques}
    if proba_columns:
        classes = tuple(column[len(PROBA) :] for column in proba_columns)
    else:
        classes = tuple(sorted(seen))
    index = {label: code for code, label in enumerate(classes)}
    unknown = sorted(seen - set(index))
    if unknown:
        raise StatsError(f"labels {unknown[:3]} are not among the classes {list(classes)[:10]}")
    try:
        proba = frame[proba_columns].to_numpy(float) if proba_columns else None
    except (TypeError, ValueError):
        raise StatsError("probabilities are not numbers") from None
    codes = {
        name: np.array([index[str(v)] for v in uniques], dtype=np.int64)[positions]
        for name, (positions, uniques) in factorized.items()
    }
    return Scored(
        codes["actual"],
        codes["predicted"],
        proba,
        classes,
        index.get(str(positive_label), len(classes) - 1),
    )


def compare_sides(
    gate: GateParams,
    base: Scored,
    head: Scored,
    *,
    test_changed: bool,
) -> Comparison:
    """The interval of every gated metric that has a per-row statistic."""
    paired = (
        not test_changed and base.rows == head.rows and bool((base.actual == head.actual).all())
    )
    result = Comparison(paired=paired)  # each unpaired interval's notes say why it is weaker
    for name, rule in gate.metrics.items():
        if name not in SUPPORTED:
            result.notes.append(f"{name}: no per-row statistic, compared on the point estimate")
            continue
        try:
            result.intervals[name] = compare(
                name,
                base,
                head,
                paired=paired,
                level=rule.confidence,
                resamples=gate.bootstrap.resamples,
                seed=gate.bootstrap.seed,
            )
        except StatsError as error:
            result.notes.append(f"{name}: no interval: {error}")
    return result


def compare_predicted(
    gate: GateParams, base: Predictions, head: Predictions, data: DataParams
) -> Comparison:
    """Two models' predictions on the same rows (the release: champion vs challenger), paired."""
    try:
        sides = [
            to_scored(to_frame(pred), data.is_classification, data.positive_label)
            for pred in (base, head)
        ]
    except StatsError as error:
        return Comparison(notes=[f"no intervals: {error}"])
    return compare_sides(gate, sides[0], sides[1], test_changed=False)
