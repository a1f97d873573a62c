"""The intervals of the gated metrics' deltas, from both sides' per-row test predictions.

The head's predictions are the working tree's ``reports/predictions.parquet`` (after ``dvc
repro``); the base's are the same output as the base commit's ``dvc.lock`` records it, read from
the DVC cache or, failing that, the DVC remote (``dvc.api.open``), never recomputed. The two are
paired when the test split is the same on both sides (same md5 in ``dvc.lock``, same labels).
Whatever is missing leaves the gate on point comparisons, and a note says why.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelci.ci.state import MAX_FILE_BYTES
from modelci.config import DataParams, GateParams
from modelci.dvcfiles import lock_out_md5
from modelci.judge.metrics import Predictions
from modelci.judge.stats import SUPPORTED, DeltaInterval, Scored, StatsError, compare
from modelci.layout import DEFAULT_PATHS
from modelci.prediction_table import PREDICTIONS, PROBA, to_frame

TEST_SPLIT = DEFAULT_PATHS.test.as_posix()
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


def read_base(root: Path, commit: str, path: str = PREDICTIONS) -> bytes:
    """The base commit's DVC output ``path`` from the DVC cache or remote; StatsError why not.

    DVC resolves ``path`` through the base commit's own ``dvc.lock``: the bytes are the base's,
    whatever the working tree holds.
    """
    import dvc.api

    try:
        with dvc.api.open(path, repo=str(root), rev=commit, mode="rb") as handle:
            data: bytes = handle.read(MAX_FILE_BYTES + 1)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StatsError(f"not in the DVC cache or remote ({first[:200]})") from None
    if len(data) > MAX_FILE_BYTES:
        raise StatsError(f"larger than {MAX_FILE_BYTES} bytes")
    return data


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


@dataclass
class DvcOutputs:
    """A commit's DVC-tracked outputs (from the cache or remote), read like a state's files."""

    root: Path
    commit: str

    def read(self, path: str) -> bytes | None:
        try:
            return read_base(self.root, self.commit, path)
        except StatsError:
            return None


def _scored(data: bytes, params: Mapping[str, Any]) -> Scored:
    section = params.get("data") if isinstance(params.get("data"), Mapping) else {}
    assert isinstance(section, Mapping)  # noqa: S101 - narrowed just above
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as error:
        raise StatsError(f"not a readable parquet table ({str(error)[:120]})") from None
    task = section.get("task", "binary")
    return to_scored(frame, task != "regression", section.get("positive_label"))


def changed_test_split(base_lock: Any, head_lock: Any) -> bool:
    """Whether ``dvc.lock`` records different test splits (unknown on either side: False)."""
    old, new = lock_out_md5(base_lock, TEST_SPLIT), lock_out_md5(head_lock, TEST_SPLIT)
    return old is not None and new is not None and old != new


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


def compare_predictions(
    gate: GateParams,
    *,
    root: Path,
    base_commit: str | None,
    base_params: Mapping[str, Any] | None,
    base_lock: Any,
    head_data: bytes | None,
    head_params: Mapping[str, Any] | None,
    head_lock: Any,
) -> Comparison:
    """Read both sides' predictions and compare them; a Comparison with notes when it cannot."""
    if not gate.metrics:
        return Comparison()
    if head_data is None:
        return Comparison(notes=[f"no {PREDICTIONS} in the PR: point comparisons only"])
    if base_commit is None or lock_out_md5(base_lock, PREDICTIONS) is None:
        return Comparison(
            notes=[f"the base's dvc.lock records no {PREDICTIONS}: point comparisons only"]
        )
    try:
        base_data = read_base(root, base_commit)
    except StatsError as error:
        return Comparison(notes=[f"base {PREDICTIONS}: {error}: point comparisons only"])
    try:
        base = _scored(base_data, base_params or {})
    except StatsError as error:
        return Comparison(notes=[f"base {PREDICTIONS}: {error}: point comparisons only"])
    try:
        head = _scored(head_data, head_params or {})
    except StatsError as error:
        return Comparison(notes=[f"PR {PREDICTIONS}: {error}: point comparisons only"])
    return compare_sides(gate, base, head, test_changed=changed_test_split(base_lock, head_lock))
