"""Validate a raw table against the columns declared under ``data`` in ``params.yaml``.

Validation is lazy: every failing check is collected and reported together, one line each, so a
user fixes a broken file in one pass.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from modelci.config import ColumnSpec, DataParams
from modelci.errors import DataError

_DTYPES: dict[str, Any] = {"int": "int64", "float": "float64", "bool": "bool", "category": None}
MAX_EXAMPLES = 5


def normalize_numeric(frame: pd.DataFrame, columns: dict[str, ColumnSpec]) -> pd.DataFrame:
    """Cast lossless numeric variants to the declared type before the dtype check.

    Integers are fine in a float column; whole floats (as pandas reads an int column with gaps)
    are fine in an int column only when they are all whole and the column may hold nulls, in
    which case it is kept as float so the null check, not the dtype check, reports the gaps.
    """
    out = frame.copy()
    for name, spec in columns.items():
        if name not in out.columns:
            continue
        series = out[name]
        if spec.type == "float" and pd.api.types.is_integer_dtype(series.dtype):
            out[name] = series.astype("float64")
        elif spec.type == "int" and pd.api.types.is_float_dtype(series.dtype):
            values = series.dropna()
            if not values.empty and (values % 1 == 0).all() and not series.isna().any():
                out[name] = series.astype("int64")
    return out


def _column(name: str, spec: ColumnSpec) -> pa.Column:
    checks = []
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.categories is not None:
        checks.append(pa.Check.isin(list(spec.categories)))
    if spec.type == "int":
        # A nullable int column is held as float: without this, 39.1 would pass as an int.
        checks.append(pa.Check(lambda values: values % 1 == 0, name="whole numbers (type int)"))
    dtype = _DTYPES[spec.type]
    if spec.type == "int" and spec.nullable:
        dtype = None  # pandas holds an int column with nulls as float; range checks still apply
    return pa.Column(dtype, checks=checks, nullable=spec.nullable, name=name)


def build_schema(data: DataParams, min_rows: bool = True) -> pa.DataFrameSchema:
    """The schema of ``data.columns``; without ``min_rows`` for one partition of a table (the
    Dask engine counts the rows of all partitions)."""
    minimum = data.min_rows
    return pa.DataFrameSchema(
        {name: _column(name, spec) for name, spec in data.columns.items()},
        checks=(
            [pa.Check(lambda df: len(df) >= minimum, name=f"at least {minimum} rows")]
            if min_rows
            else []
        ),
        strict=True,
        ordered=False,
    )


def _describe(check: str, column: str | None, cases: list[Any], count: int) -> str:
    where = f"column {column!r}" if column else "table"
    shown = ", ".join(repr(case) for case in cases[:MAX_EXAMPLES])
    more = f" (+{count - MAX_EXAMPLES} more)" if count > MAX_EXAMPLES else ""
    if check == "column_in_dataframe":
        return f"column {cases[0]!r}: declared in params.yaml but missing from the data"
    if check == "column_in_schema":
        return f"column {cases[0]!r}: present in the data but not declared in params.yaml"
    if check.startswith("dtype("):
        return f"{where}: expected type {check[6:-1].strip(chr(39))}, got {shown}"
    if check == "not_nullable":
        return f"{where}: {count} null value(s) where none are allowed"
    if check.startswith("at least"):
        return f"{where}: has fewer rows than the required {check.removeprefix('at least ')}"
    return f"{where}: {count} value(s) fail {check}: {shown}{more}"


# One failing check: its column (None: the table), its name, how many values fail, the first ones.
Failure = tuple[str | None, str, int, list[Any]]


def failures(errors: SchemaErrors) -> list[Failure]:
    """pandera's failure cases grouped by (column, check), at most MAX_EXAMPLES cases kept each."""
    cases = errors.failure_cases
    found: list[Failure] = []
    grouped = cases.groupby(["column", "check"], dropna=False, sort=False)["failure_case"]
    for (column, check), values in grouped:
        items = values.tolist()
        if all(str(item).startswith("TypeError(") for item in items):
            continue  # a range check that could not run on a wrongly typed column
        column_name = None if pd.isna(column) else str(column)
        found.append((column_name, str(check), len(items), items[: MAX_EXAMPLES + 1]))
    return found


def merge_failures(parts: list[list[Failure]]) -> list[Failure]:
    """The failures of several partitions as one table's: counts added, first cases kept in
    partition order, checks in order of first appearance."""
    merged: dict[tuple[str | None, str], tuple[int, list[Any]]] = {}
    for part in parts:
        for column, check, count, cases in part:
            total, kept = merged.get((column, check), (0, []))
            merged[(column, check)] = (total + count, (kept + cases)[: MAX_EXAMPLES + 1])
    return [(column, check, count, cases) for (column, check), (count, cases) in merged.items()]


def failure_lines(errors: SchemaErrors) -> list[str]:
    """Summarize pandera's failure cases as one line per (column, check)."""
    return describe(failures(errors))


def describe(found: list[Failure]) -> list[str]:
    return [_describe(check, column, cases, count) for column, check, count, cases in found]


def drop_declared(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, list[str]]:
    """The table without ``data.drop_columns``, and a problem for each one it does not have."""
    problems = [
        f"column {name!r}: in data.drop_columns but missing from the data"
        for name in data.drop_columns
        if name not in frame.columns
    ]
    kept = frame.drop(columns=[name for name in data.drop_columns if name in frame.columns])
    return kept, problems


def check_partition(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, list[Failure]]:
    """One partition of a table (columns already dropped) normalized and checked against the
    schema without the row count: the frame and its failures (Dask engine)."""
    normalized = normalize_numeric(frame, data.columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return build_schema(data, min_rows=False).validate(normalized, lazy=True), []
    except SchemaErrors as errors:
        return normalized, failures(errors)


def raise_problems(source: str, problems: list[str]) -> None:
    """Raise the DataError listing ``problems`` (one line each, prefixed by ``source``)."""
    if problems:
        lines = [f"{source}: {line}" for line in problems]
        raise DataError(
            f"{source}: {len(lines)} schema check(s) failed; first: {problems[0]}", details=lines
        ) from None


def validate(frame: pd.DataFrame, data: DataParams, source: str) -> pd.DataFrame:
    """Return the table without ``data.drop_columns`` and with declared dtypes, or raise
    DataError listing every failing check (a dropped column missing from the data is one)."""
    kept, problems = drop_declared(frame, data)
    normalized = normalize_numeric(kept, data.columns)
    validated = normalized
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandera's own concat of failures
            validated = build_schema(data).validate(normalized, lazy=True)
    except SchemaErrors as errors:
        problems += failure_lines(errors)
    raise_problems(source, problems)
    return validated
