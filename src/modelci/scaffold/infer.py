"""Infer a ``data:`` schema, the task and the slices from a table: what ``modelci init`` writes.

Pure functions of a DataFrame. Every column either gets a declaration or is left out with the
reason (an identifier, free text, a date, too many categories), so the user sees why and how
to include it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from modelci.config import Task
from modelci.errors import ConfigError

MAX_CATEGORIES = 50
MAX_CLASSES = 20
MAX_SLICE_VALUES = 10
MAX_SLICES = 2
# Below this many rows with a target, a 25% test split has under 10 rows: no gate or statistic
# can tell a model from chance on it.
MIN_ROWS = 40
# Text whose values average more words than this is prose (comments, notes), not a category:
# a new sentence in production would be an unknown category, refused by serving.
MAX_CATEGORY_WORDS = 3
_DATE_PART = re.compile(r"\d+|[A-Za-z]{3,}")
_MONTHS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.IGNORECASE
)
_ID_NAME = re.compile(r"(^|_)(id|uuid|key)$|id$", re.IGNORECASE)


@dataclass(frozen=True)
class Column:
    """One declared column, in ``params.yaml``'s ``data.columns`` shape."""

    name: str
    type: str
    nullable: bool = False
    min: float | int | None = None
    max: float | int | None = None
    categories: tuple[Any, ...] | None = None
    reason: str = field(default="", compare=False)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.nullable:
            out["nullable"] = True
        for key in ("min", "max"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class LeftOut:
    """A column of the file the pipeline drops, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Inferred:
    task: Task
    target: str
    columns: list[Column]
    left_out: list[LeftOut]
    slices: list[str]
    null_target_rows: int
    rows: int


def _number(value: Any, kind: str) -> float | int:
    return int(value) if kind == "int" else float(value)


def _is_whole(values: pd.Series) -> bool:
    return bool(((values % 1) == 0).all())


def _looks_like_dates(values: pd.Series) -> bool:
    """Dates and times: three parts or more (``2024-01-31``, ``31 Jan 2024``, ``10:30:00``), or
    a month's name. ``1/2`` (a fraction) and ``3:1`` (a ratio) have two parts: not dates."""
    sample = values.astype(str).head(200)
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    parts = sample.map(lambda v: len(_DATE_PART.findall(v)))
    if not ((parts >= 3) | sample.str.contains(_MONTHS)).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


def _words_per_value(values: pd.Series) -> float:
    return float(values.map(lambda v: len(str(v).split())).mean())


def _range_reason(kind: str, rows: int) -> str:
    what = "whole numbers" if kind == "int" else "numbers"
    return f"{what}, the range observed in {rows} rows"


def infer_column(name: str, series: pd.Series, *, is_target: bool = False) -> Column | LeftOut:
    """Declare one column from its values, or say why it is left out."""
    values = series.dropna()
    nullable = bool(series.isna().any()) and not is_target
    unique = int(values.nunique())
    nulls = f", {int(series.isna().sum())} null" if nullable else ""
    if values.empty:
        return LeftOut(name, "every value is null")
    if unique == 1 and not is_target:
        return LeftOut(name, f"a constant: one value in {len(values)} rows, nothing to learn from")
    if pd.api.types.is_bool_dtype(series.dtype):
        return Column(name, "bool", nullable, reason=f"true/false{nulls}")
    if pd.api.types.is_numeric_dtype(series.dtype):
        if not is_target and unique == len(series) and _is_whole(values):
            if _ID_NAME.search(name):
                return LeftOut(name, "an identifier (a unique value per row, named like an id)")
            if name.startswith("Unnamed:") or values.is_monotonic_increasing:
                return LeftOut(name, "a row number (unique and increasing)")
        kind = "int" if _is_whole(values) else "float"
        return Column(
            name,
            kind,
            nullable,
            _number(values.min(), kind),
            _number(values.max(), kind),
            reason=_range_reason(kind, len(series)) + nulls,
        )
    text = values.astype(str)
    if not is_target and _looks_like_dates(text):
        return LeftOut(name, "a date or time (derive numeric features from it in your own code)")
    words = _words_per_value(text)
    if not is_target and words > MAX_CATEGORY_WORDS:
        # Free text: a new sentence in production would be an unknown category.
        return LeftOut(
            name,
            f"free text ({words:.1f} words per value on average): a new sentence would be an "
            "unknown category (encode it in your own code)",
        )
    if unique <= MAX_CATEGORIES:
        return Column(
            name,
            "category",
            nullable,
            categories=tuple(sorted(text.unique())),
            reason=f"{unique} distinct values in {len(series)} rows{nulls}",
        )
    if not is_target and unique >= 0.9 * len(values):
        what = "an identifier" if _ID_NAME.search(name) else "free text or an identifier"
        return LeftOut(name, f"{what} ({unique} distinct values in {len(values)} rows)")
    return LeftOut(
        name,
        f"{unique} distinct values, more than {MAX_CATEGORIES} categories "
        "(group them or encode them in your own code)",
    )


def infer_task(series: pd.Series) -> Task:
    """Binary for two values, multiclass for a few labels, regression for numbers."""
    values = series.dropna()
    unique = int(values.nunique())
    if unique < 2:
        raise ConfigError(
            f"target {series.name!r} has {unique} distinct value(s): nothing to learn"
        )
    if unique == 2:
        return "binary"
    numeric = pd.api.types.is_numeric_dtype(series.dtype)
    if not numeric:
        return "multiclass"
    if _is_whole(values) and unique <= MAX_CLASSES:
        return "multiclass"
    return "regression"


def _check_task(task: Task, target: pd.Series) -> None:
    """A task given with ``--task`` must fit the target's values."""
    values = int(target.dropna().nunique())
    if task == "binary" and values != 2:
        raise ConfigError(f"--task binary needs 2 target values; {target.name!r} has {values}")
    if task == "multiclass" and values < 3:
        raise ConfigError(
            f"--task multiclass needs at least 3 target values; {target.name!r} has {values}"
            " (use --task binary)"
        )
    numeric = pd.api.types.is_numeric_dtype(target.dtype)
    if task == "regression" and (pd.api.types.is_bool_dtype(target.dtype) or not numeric):
        raise ConfigError(f"--task regression needs a numeric target; {target.name!r} is not")


def pick_slices(columns: list[Column], target: str) -> list[str]:
    """Up to two categorical columns with few values: the per-group metrics of the report."""
    small = [
        c.name
        for c in columns
        if c.name != target
        and c.type in ("category", "bool")
        and (c.categories is None or len(c.categories) <= MAX_SLICE_VALUES)
    ]
    return small[:MAX_SLICES]


def infer(frame: pd.DataFrame, target: str, task: Task | None = None) -> Inferred:
    """The whole inference: target and task first, then every other column."""
    if target not in frame.columns:
        names = [str(c) for c in frame.columns]
        shown = ", ".join(repr(n[:40]) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        hint = ""
        for sep in (";", "\t", "|"):
            if len(names) == 1 and sep in names[0]:
                hint = (
                    f"; the header holds {sep!r}: the file looks {sep!r}-separated, and modelci "
                    "reads comma-separated CSV (convert it, e.g. pandas.read_csv(path, "
                    f"sep={sep!r}).to_csv(new_path, index=False))"
                )
        raise ConfigError(f"--target {target!r} is not a column of the data ({shown}){hint}")
    chosen = task or infer_task(frame[target])
    target_series = frame[target]
    _check_task(chosen, target_series)
    declared = infer_column(target, target_series, is_target=True)
    if isinstance(declared, LeftOut):
        raise ConfigError(f"target {target!r} cannot be used: {declared.reason}")
    if chosen != "regression" and declared.type == "float":
        raise ConfigError(
            f"target {target!r} has fractional values: use --task regression, not {chosen}"
        )
    if chosen != "regression" and declared.type == "int":
        levels = sorted(int(v) for v in target_series.dropna().unique())
        declared = Column(
            target, "int", False, levels[0], levels[-1], reason=f"{len(levels)} classes"
        )
    labelled = int(target_series.notna().sum())
    if labelled < MIN_ROWS:
        raise ConfigError(
            f"the data has {labelled} row(s) with a {target!r} value; init needs at least "
            f"{MIN_ROWS}: a test split of fewer than 10 rows cannot tell a model from chance"
        )
    columns: list[Column] = []
    left_out: list[LeftOut] = []
    for name in frame.columns:
        if name == target:
            columns.append(declared)
            continue
        result = infer_column(str(name), frame[name])
        if isinstance(result, Column):
            columns.append(result)
        else:
            left_out.append(result)
    if len(columns) < 2:
        raise ConfigError("no usable feature column: every column but the target was left out")
    return Inferred(
        task=chosen,
        target=target,
        columns=columns,
        left_out=left_out,
        slices=pick_slices(columns, target),
        null_target_rows=int(target_series.isna().sum()),
        rows=len(frame),
    )
