"""The model's outputs on a window, and its realized performance once ground truth arrives.

Labels are joined to the window by the row id the server logs and returns (``row_id``, or
``request_id`` for labels keyed by the client's id, one to one only);
the realized metrics are the pipeline's own (``modelci.judge.metrics``), judged by the gate's
rules (``modelci.judge.gate``) with the model's test-set metrics as the baseline, so "degraded in
production" means what "regressed in a pull request" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams, MetricRule
from modelci.drift.inputs import REQUEST_ID, ROW_ID
from modelci.errors import DataError
from modelci.judge.distance import Kind
from modelci.judge.gate import Verdict, evaluate_gate


def model_frame(frame: pd.DataFrame, data: DataParams) -> pd.DataFrame:
    """The feature columns as the model takes them: numbers as float (unreadable ones missing,
    which the drift check reports as nulls), categories as they are."""
    out = {}
    for name in data.features:
        values = frame[name]
        if data.columns[name].is_numeric:
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[name] = values.astype(object).where(values.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)


def model_outputs(model: Any, frame: pd.DataFrame, data: DataParams) -> tuple[pd.Series, Kind]:
    """What prediction drift compares: the positive class's probability for a binary
    classifier with ``predict_proba`` (numeric), the label for other classifiers
    (categorical), the predicted value for a regressor (numeric)."""
    from modelci.judge.metrics import positive_label

    features = model_frame(frame, data)
    classes = list(getattr(model, "classes_", []))
    if data.task == "binary" and classes and hasattr(model, "predict_proba"):
        column = classes.index(positive_label(data, classes))
        return pd.Series(np.asarray(model.predict_proba(features))[:, column]), "numeric"
    values = pd.Series(np.asarray(model.predict(features)))
    return values, ("categorical" if data.is_classification else "numeric")


def join_labels(window: pd.DataFrame, labels: pd.DataFrame, target: str, source: str) -> Any:
    """The window's rows that have a label, with the label as ``target``; errors name ``source``.

    Labels are keyed by ``row_id`` (server-made, one per logged row) when they have that column,
    else by ``request_id`` (what ``X-Request-ID`` said: the client's own when it sent one). The
    join must be one to one: a key labelled twice, or a labelled key shared by several rows of
    the window (a batch, or a client reusing an id to weigh one label many times), is refused.
    """
    key = ROW_ID if ROW_ID in labels.columns else REQUEST_ID
    if key not in window.columns:
        raise DataError(
            f"current window: no {key!r} column, so labels cannot be joined "
            f"(the serving prediction log records {REQUEST_ID} and {ROW_ID} for every row)"
        )
    for column in (key, target):
        if column not in labels.columns:
            raise DataError(
                f"{source}: no {column!r} column (labels need {ROW_ID} or {REQUEST_ID}, {target})"
            )
    spelled = key.replace("_", " ")
    truth = labels[[key, target]].dropna()
    truth = truth.assign(**{key: truth[key].astype(str)})
    duplicated = truth[key].duplicated()
    if duplicated.any():
        first = truth[key][duplicated].iloc[0]
        raise DataError(f"{source}: {spelled} {first!r} has more than one label")
    inputs = window.drop(columns=[target], errors="ignore")
    inputs = inputs.assign(**{key: inputs[key].astype(str)})
    counts = inputs[key][inputs[key].isin(truth[key])].value_counts()
    shared = counts[counts > 1]
    if len(shared):
        named = ", ".join(f"{rid!r} ({rows} rows)" for rid, rows in shared.head(5).items())
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise DataError(
            f"{source}: the join is not one to one: {spelled}(s) {named}{more} label several "
            f"rows of the window; key the labels by {ROW_ID} (one per logged row)"
        )
    return inputs.merge(truth, on=key, how="inner")


@dataclass(frozen=True)
class Realized:
    rows: int
    metrics: dict[str, float]
    test_metrics: dict[str, Any]
    verdict: Verdict

    @property
    def degraded(self) -> bool:
        return not self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "degraded": self.degraded,
            "metrics": self.metrics,
            "test_metrics": self.test_metrics,
            "verdict": self.verdict.to_dict(),
        }


def realized_performance(
    model: Any,
    joined: pd.DataFrame,
    data: DataParams,
    rules: dict[str, MetricRule],
    test_metrics: dict[str, Any],
    min_rows: int,
) -> Realized:
    """The model's metrics on the labelled rows, judged by the gate against its test metrics."""
    from modelci.judge import metrics as m

    if len(joined) < min_rows:
        raise DataError(
            f"labels: {len(joined)} rows of the window have a label, fewer than "
            f"monitor.min_rows ({min_rows}): too few to measure realized performance"
        )
    target = joined[data.target]
    if data.columns[data.target].is_numeric:
        target = pd.to_numeric(target, errors="coerce")
    pred = m.predict(model, model_frame(joined, data), target)
    if data.is_classification:
        classes = {str(value) for value in pred.classes}
        unknown = sorted({str(value) for value in target} - classes)
        if unknown:
            raise DataError(f"labels: {', '.join(unknown[:5])} is not a class of the model")
        dtype = np.asarray(pred.classes).dtype
        y_true = np.asarray([_class_of(value, pred.classes) for value in target], dtype=dtype)
        pred = m.Predictions(y_true, pred.y_pred, pred.proba, pred.classes)
    scores = m.compute_metrics(pred, data)
    return Realized(len(joined), scores, test_metrics, evaluate_gate(rules, scores, test_metrics))


def _class_of(value: Any, classes: list[Any]) -> Any:
    """A label read from CSV/JSON as the model's class it spells (``"1"`` -> ``1``)."""
    return next(label for label in classes if str(label) == str(value))
