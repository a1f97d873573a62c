"""Reading a window of production data: the serving prediction log, or any CSV/Parquet/JSONL.

A JSON Lines row is either a prediction-log record (``{"request_id": ..., "input": {column:
value}, "prediction": ...}``, see ``modelci.serving.predlog``) or a flat ``{column: value}``
object. A directory is read as a prediction log (``predictions.jsonl`` and its rotated files,
oldest first), or, without one, as every CSV/Parquet/JSONL file in it, in name order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from modelci.errors import DataError
from modelci.layout import prediction_log_files

SUFFIXES = (".csv", ".parquet", ".jsonl")
REQUEST_ID = "request_id"
ROW_ID = "row_id"  # server-made, one per logged row (modelci.serving.requestid)


def _flatten(record: dict[str, object]) -> dict[str, object]:
    """A prediction-log record as one flat row: its inputs, ids and prediction."""
    inputs = record.get("input")
    if not isinstance(inputs, dict):
        return record
    flat = dict(inputs)
    for key in (REQUEST_ID, ROW_ID, "prediction"):
        if key in record:
            flat[f"_{key}" if key in flat else key] = record[key]
    return flat


def _jsonl_rows(path: Path) -> list[dict[str, object]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    rows: list[dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            if number == len(lines):  # a torn last line: the writer stopped mid-line
                break
            raise DataError(f"{path}:{number}: not JSON: {error}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        rows.append(_flatten(record))
    return rows


def _read_file(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read {path.suffix[1:]}: {error}") from None
    return pd.DataFrame(_jsonl_rows(path))


def window_files(path: Path) -> list[Path]:
    """The files a window at ``path`` is read from (see the module docstring)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise DataError(f"{path}: unsupported format (expected {', '.join(SUFFIXES)})")
        return [path]
    files = prediction_log_files(path) or sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
    if not files:
        raise DataError(f"{path}: no prediction log and no {', '.join(SUFFIXES)} files in it")
    return files


def read_window(path: Path) -> pd.DataFrame:
    """Every row of the window at ``path`` as one table (may be empty: callers check sizes)."""
    frames = [_read_file(file) for file in window_files(path)]
    frames = [frame for frame in frames if len(frame.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
