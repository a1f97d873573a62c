"""The declared model tests (``model_tests:`` in params.yaml) run against a model.

Pure functions of a fitted model and tables: each returns the failures of a case as readable
lines naming the case, so a test can report every failing case at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import (
    DataParams,
    DirectionalCase,
    InvarianceCase,
    MinimumFunctionalityCase,
    ModelTestsParams,
    Row,
)
from modelci.errors import ConfigError
from modelci.judge.metrics import positive_label


def frame(rows: Iterable[Row], defaults: Row, data: DataParams) -> pd.DataFrame:
    """Rows merged over ``defaults``, with the model's feature columns in schema order."""
    return pd.DataFrame([{**defaults, **row} for row in rows], columns=data.features)


def _class_index(label: Any, classes: Sequence[Any], where: str) -> int:
    matches = [index for index, value in enumerate(classes) if str(value) == str(label)]
    if not matches:
        raise ConfigError(f"{where}.score_of: {label!r} is not a class of the model ({classes})")
    return matches[0]


def scores(model: Any, rows: pd.DataFrame, data: DataParams, score_of: Any, where: str) -> Any:
    """The score a case bounds: the predicted value (regression), else a class probability.

    Binary tasks score the positive class unless ``score_of`` names another; a multiclass case
    without ``score_of`` (invariance only) gets the whole probability matrix.
    """
    if not data.is_classification:
        return np.asarray(model.predict(rows), dtype=float)
    if not hasattr(model, "predict_proba"):
        raise ConfigError(f"{where}: the model has no predict_proba, so it has no score to check")
    proba = np.asarray(model.predict_proba(rows), dtype=float)
    classes = list(model.classes_)
    if score_of is None and data.task == "binary":
        score_of = positive_label(data, classes)
    if score_of is None:
        return proba
    return proba[:, _class_index(score_of, classes, where)]


def _same(label: Any, expected: Any) -> bool:
    return str(label) == str(expected)


def minimum_functionality(
    model: Any, case: MinimumFunctionalityCase, defaults: Row, data: DataParams, where: str
) -> list[str]:
    rows = frame([case.row], defaults, data)
    failures = []
    if case.predicts is not None:
        label = model.predict(rows)[0]
        label = label.item() if isinstance(label, np.generic) else label
        if not _same(label, case.predicts):
            failures.append(f"{case.name}: predicts {label!r}, expected {case.predicts!r}")
    if case.min is not None or case.max is not None:
        score = float(scores(model, rows, data, case.score_of, where)[0])
        if case.min is not None and score < case.min:
            failures.append(f"{case.name}: score {score:.4g} is below the minimum {case.min}")
        if case.max is not None and score > case.max:
            failures.append(f"{case.name}: score {score:.4g} is above the maximum {case.max}")
    return failures


def _perturbed(rows: pd.DataFrame, case: InvarianceCase) -> list[pd.DataFrame]:
    if case.shift is not None:
        return [rows.assign(**{case.column: rows[case.column] + case.shift})]
    return [rows.assign(**{case.column: value}) for value in case.values or ()]


def invariance(
    model: Any, case: InvarianceCase, rows: pd.DataFrame, data: DataParams, where: str
) -> list[str]:
    """The share of (row, perturbation) pairs whose output holds must reach ``min_share``."""
    held: list[np.ndarray] = []
    largest = 0.0
    before_labels = model.predict(rows) if case.same_label else None
    before = (
        scores(model, rows, data, case.score_of, where) if case.max_change is not None else None
    )
    for changed in _perturbed(rows, case):
        ok = np.ones(len(rows), dtype=bool)
        if before_labels is not None:
            ok &= np.asarray(model.predict(changed) == before_labels)
        if before is not None:
            change = np.abs(scores(model, changed, data, case.score_of, where) - before)
            if change.ndim == 2:
                change = change.max(axis=1)
            largest = max(largest, float(change.max(initial=0.0)))
            ok &= change <= case.max_change
        held.append(ok)
    share = float(np.concatenate(held).mean())
    if share >= case.min_share:
        return []
    what = "label unchanged" if case.same_label else ""
    if case.max_change is not None:
        bound = f"score change <= {case.max_change} (largest {largest:.4g})"
        what = f"{what} and {bound}" if what else bound
    return [
        f"{case.name}: {what} for {share:.1%} of {len(rows)} row(s) when {case.column!r} changes,"
        f" needs {case.min_share:.1%}"
    ]


def directional(
    model: Any, case: DirectionalCase, defaults: Row, data: DataParams, where: str
) -> list[str]:
    def score(value: Any) -> Any:
        rows = frame([{**row, case.column: value} for row in case.rows], defaults, data)
        return scores(model, rows, data, case.score_of, where)

    before, after = score(case.before), score(case.after)
    failures = []
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        delta = float(new) - float(old)
        moved = (
            delta > case.min_change if case.direction == "increase" else -delta > case.min_change
        )
        if not moved:
            failures.append(
                f"{case.name}: row {index}: score {float(old):.4g} -> {float(new):.4g} when "
                f"{case.column!r} goes {case.before!r} -> {case.after!r}, expected it to "
                f"{case.direction}"
                + (f" by more than {case.min_change}" if case.min_change else "")
            )
    return failures


def run_minimum_functionality(model: Any, tests: ModelTestsParams, data: DataParams) -> list[str]:
    failures: list[str] = []
    for index, case in enumerate(tests.minimum_functionality):
        where = f"model_tests.minimum_functionality.{index}"
        failures += minimum_functionality(model, case, tests.defaults, data, where)
    return failures


def run_invariance(
    model: Any, tests: ModelTestsParams, data: DataParams, test_split: pd.DataFrame | None
) -> list[str]:
    """Cases without ``rows`` perturb every row of ``test_split``."""
    failures: list[str] = []
    for index, case in enumerate(tests.invariance):
        where = f"model_tests.invariance.{index}"
        if case.rows is not None:
            rows = frame(case.rows, tests.defaults, data)
        elif test_split is not None:
            rows = test_split[data.features].reset_index(drop=True)
        else:
            raise ConfigError(f"{where}.rows: no rows given and no test split to perturb")
        failures += invariance(model, case, rows, data, where)
    return failures


def run_directional(model: Any, tests: ModelTestsParams, data: DataParams) -> list[str]:
    failures: list[str] = []
    for index, case in enumerate(tests.directional):
        where = f"model_tests.directional.{index}"
        failures += directional(model, case, tests.defaults, data, where)
    return failures
