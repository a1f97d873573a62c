"""The drift verdict over a window: per-feature shifts, multiple-testing correction, thresholds.

Pure: two tables, the schema and the ``monitor:`` thresholds in, a ``DriftResult`` out. The rules
are ``MonitorParams``' docstring; the p-values of the features' tests are adjusted together
(``adjust_p_values``), so 30 features tested at alpha 0.01 do not raise a false alarm on one
window in four.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams, FeatureThreshold, MonitorParams
from modelci.errors import DataError
from modelci.judge.distance import ColumnShift, Kind, column_shift


def adjust_p_values(p_values: list[float], method: str) -> list[float]:
    """p-values adjusted for testing them together, in the input's order.

    ``bonferroni``: ``min(1, m p)``. ``holm``: Holm's step-down (family-wise error, uniformly
    more powerful than Bonferroni). ``bh``: Benjamini-Hochberg (false discovery rate), through
    ``scipy.stats.false_discovery_control``. ``none``: unchanged.
    """
    m = len(p_values)
    if m == 0 or method == "none":
        return list(p_values)
    p = np.asarray(p_values, dtype=float)
    if method == "bonferroni":
        return [float(v) for v in np.minimum(1.0, p * m)]
    if method == "bh":
        from scipy.stats import false_discovery_control

        return [float(v) for v in false_discovery_control(p, method="bh")]
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return [float(v) for v in adjusted]


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict. ``shift`` is None when a side has fewer than ``min_rows``
    non-missing values (only the null rates are judged then)."""

    column: str
    kind: Kind
    shift: ColumnShift | None
    null_rate_reference: float
    null_rate_current: float
    psi_threshold: float
    p_adjusted: float | None
    drifted: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.shift is not None:
            data["shift"]["new_categories"] = list(self.shift.new_categories)
            data["shift"]["removed_categories"] = list(self.shift.removed_categories)
        data["reasons"], data["notes"] = list(self.reasons), list(self.notes)
        return data


@dataclass(frozen=True)
class PredictionDrift:
    shift: ColumnShift
    threshold: float

    @property
    def drifted(self) -> bool:
        return self.shift.psi >= self.threshold


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]
    prediction: PredictionDrift | None
    rows_reference: int
    rows_current: int
    max_drifted_share: float
    notes: tuple[str, ...] = field(default=())

    @property
    def drifted_features(self) -> list[str]:
        return [feature.column for feature in self.features if feature.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def drifted(self) -> bool:
        features = self.drifted_share > self.max_drifted_share
        return features or (self.prediction is not None and self.prediction.drifted)

    def summary(self) -> str:
        parts = []
        if self.drifted_features:
            parts.append(
                f"{len(self.drifted_features)} of {len(self.features)} features drifted "
                f"({', '.join(self.drifted_features)}; tolerated share "
                f"{self.max_drifted_share:.0%})"
            )
        if self.prediction is not None and self.prediction.drifted:
            parts.append(
                f"predictions drifted (PSI {self.prediction.shift.psi:.3f} >= "
                f"{self.prediction.threshold:g})"
            )
        verdict = "DRIFT" if self.drifted else "no drift"
        return f"{verdict}: " + ("; ".join(parts) if parts else "every feature within thresholds")

    def to_dict(self) -> dict[str, Any]:
        prediction = None
        if self.prediction is not None:
            prediction = {
                **asdict(self.prediction.shift),
                "threshold": self.prediction.threshold,
                "drifted": self.prediction.drifted,
            }
        return {
            "drift": self.drifted,
            "summary": self.summary(),
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "drifted_features": self.drifted_features,
            "drifted_share": self.drifted_share,
            "max_drifted_share": self.max_drifted_share,
            "features": [feature.to_dict() for feature in self.features],
            "prediction": prediction,
            "notes": list(self.notes),
        }


_NO_OVERRIDE = FeatureThreshold()


def as_category(values: pd.Series) -> pd.Series:
    """Category values as strings (``1``, ``"1"`` and ``True`` read from CSV, JSON or Parquet
    compare equal to the schema's spelling), missing values kept missing."""
    return values.astype("string").astype(object).where(values.notna(), None)


def feature_kind(data: DataParams, column: str) -> Kind:
    return "numeric" if data.columns[column].is_numeric else "categorical"


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def check_window(
    reference: pd.DataFrame, current: pd.DataFrame, data: DataParams, monitor: MonitorParams
) -> None:
    """Refuse a window without the declared features, or samples too small to judge
    (``monitor.min_rows``), naming the side, the columns and the sizes."""
    missing = [column for column in data.features if column not in current.columns]
    if missing and len(current):
        shown = ", ".join(map(str, current.columns[:20]))
        raise DataError(
            f"current window: feature column(s) {', '.join(map(repr, missing))} missing "
            f"(it has {shown})"
        )
    for side, frame in (("reference", reference), ("current window", current)):
        if len(frame) < monitor.min_rows:
            raise DataError(
                f"{side}: {len(frame)} rows, fewer than monitor.min_rows ({monitor.min_rows}): "
                "too small a sample to judge drift (collect a longer window or lower min_rows)"
            )


def _shifts(
    reference: pd.DataFrame, current: pd.DataFrame, data: DataParams, monitor: MonitorParams
) -> list[tuple[str, Kind, ColumnShift | None]]:
    out: list[tuple[str, Kind, ColumnShift | None]] = []
    for column in data.features:
        if monitor.features.get(column, _NO_OVERRIDE).ignore:
            continue
        kind = feature_kind(data, column)
        ref, cur = reference[column], current[column]
        if kind == "categorical":
            ref, cur = as_category(ref), as_category(cur)
        small = min(int(ref.notna().sum()), int(cur.notna().sum())) < monitor.min_rows
        out.append((column, kind, None if small else column_shift(column, ref, cur, kind)))
    return out


def _uses_test(kind: Kind, monitor: MonitorParams) -> bool:
    return (monitor.numeric_test if kind == "numeric" else monitor.categorical_test) != "none"


def analyse(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    data: DataParams,
    monitor: MonitorParams,
    predictions: tuple[pd.Series, pd.Series, Kind] | None = None,
) -> DriftResult:
    """Judge ``current`` against ``reference`` on every declared feature (see the module doc).

    ``predictions``: the model's outputs on the reference and on the current window, and how to
    compare them (class labels categorical, scores or values numeric).
    """
    check_window(reference, current, data, monitor)
    shifts = _shifts(reference, current, data, monitor)
    tested = [
        (index, shift.p_value)
        for index, (_, kind, shift) in enumerate(shifts)
        if shift is not None and _uses_test(kind, monitor)
    ]
    adjusted = dict(
        zip(
            (index for index, _ in tested),
            adjust_p_values([p for _, p in tested], monitor.correction),
            strict=True,
        )
    )
    features = tuple(
        _judge(column, kind, shift, adjusted.get(index), reference, current, monitor)
        for index, (column, kind, shift) in enumerate(shifts)
    )
    prediction = None
    notes: list[str] = []
    if predictions is not None:
        ref_pred, cur_pred, kind = predictions
        if kind == "categorical":
            ref_pred, cur_pred = as_category(ref_pred), as_category(cur_pred)
        shift = column_shift("prediction", ref_pred, cur_pred, kind)
        prediction = PredictionDrift(shift, monitor.prediction_psi)
    else:
        notes.append("no model: prediction drift not checked")
    return DriftResult(
        features=features,
        prediction=prediction,
        rows_reference=len(reference),
        rows_current=len(current),
        max_drifted_share=monitor.max_drifted_share,
        notes=tuple(notes),
    )


def _judge(
    column: str,
    kind: Kind,
    shift: ColumnShift | None,
    p_adjusted: float | None,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    monitor: MonitorParams,
) -> FeatureDrift:
    override = monitor.features.get(column, _NO_OVERRIDE)
    psi_threshold = override.psi if override.psi is not None else monitor.psi
    max_null = (
        override.max_null_rate_increase
        if override.max_null_rate_increase is not None
        else monitor.max_null_rate_increase
    )
    null_ref, null_cur = _null_rate(reference[column]), _null_rate(current[column])
    reasons: list[str] = []
    notes: list[str] = []
    if null_cur - null_ref > max_null:
        reasons.append(
            f"null rate rose from {null_ref:.1%} to {null_cur:.1%} (more than {max_null:.0%})"
        )
    if shift is None:
        notes.append(f"fewer than {monitor.min_rows} non-missing values: distances not computed")
    elif shift.psi >= psi_threshold:
        test = shift.test.upper() if kind == "numeric" else "chi-square"
        if p_adjusted is None:
            reasons.append(f"PSI {shift.psi:.3f} >= {psi_threshold:g}")
        elif p_adjusted < monitor.alpha:
            reasons.append(
                f"PSI {shift.psi:.3f} >= {psi_threshold:g} and {test} p-value {p_adjusted:.2g} "
                f"< {monitor.alpha:g} ({monitor.correction}-adjusted)"
            )
        else:
            notes.append(
                f"PSI {shift.psi:.3f} >= {psi_threshold:g}, but the {test} test is not "
                f"significant (adjusted p-value {p_adjusted:.2g}): a small-sample fluctuation"
            )
    if shift is not None and shift.new_categories:
        notes.append("unseen categories: " + ", ".join(shift.new_categories[:10]))
    return FeatureDrift(
        column=column,
        kind=kind,
        shift=shift,
        null_rate_reference=null_ref,
        null_rate_current=null_cur,
        psi_threshold=psi_threshold,
        p_adjusted=p_adjusted,
        drifted=bool(reasons),
        reasons=tuple(reasons),
        notes=tuple(notes),
    )
