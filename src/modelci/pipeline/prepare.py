"""Stage ``prepare``: read the raw table, validate it, split it by seed into train and test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from modelci.config import DataParams, Params, PrepareParams
from modelci.data.schema import validate
from modelci.data.sources import read_table
from modelci.errors import DataError
from modelci.fileio import file_digest, write_atomic, write_json
from modelci.layout import DEFAULT_PATHS, StagePaths

MAX_LISTED = 10  # classes named in an error line; the rest are counted


def split(
    frame: pd.DataFrame, data: DataParams, prepare: PrepareParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split by seed, stratified on the target for classification."""
    from sklearn.model_selection import train_test_split

    stratify = frame[data.target] if data.is_classification else None
    if stratify is not None:
        counts = stratify.value_counts()
        rare = counts[counts < 2]
        if not rare.empty:
            shown = sorted(rare.index.tolist(), key=str)[:MAX_LISTED]
            more = f" and {len(rare) - len(shown)} more" if len(rare) > len(shown) else ""
            hint = (
                f" ({len(counts)} classes in {len(frame)} rows: if the target is a quantity, "
                "use data.task: regression)"
                if len(counts) > MAX_LISTED
                else ""
            )
            raise DataError(
                f"cannot stratify on {data.target!r}: class(es) {shown}{more} have fewer than"
                f" 2 rows{hint}"
            )
    try:
        train, test = train_test_split(
            frame, test_size=prepare.test_size, random_state=prepare.seed, stratify=stratify
        )
    except ValueError as error:
        raise DataError(f"cannot split {len(frame)} rows: {error}") from None
    return train.reset_index(drop=True), test.reset_index(drop=True)


def profile(
    frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, data: DataParams
) -> dict[str, Any]:
    """Row counts, column types and the target's distribution: what a data diff compares."""

    def target_summary(part: pd.DataFrame) -> dict[str, Any]:
        column = part[data.target]
        if data.is_classification:
            counts = column.value_counts().sort_index()
            return {"classes": {str(key): int(value) for key, value in counts.items()}}
        return {"mean": round(float(column.mean()), 6), "std": round(float(column.std()), 6)}

    return {
        "rows": {"total": len(frame), "train": len(train), "test": len(test)},
        "columns": {name: spec.type for name, spec in data.columns.items()},
        "target": {
            "name": data.target,
            "task": data.task,
            "train": target_summary(train),
            "test": target_summary(test),
        },
    }


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def drop_null_target(
    frame: pd.DataFrame, data: DataParams, prepare: PrepareParams
) -> tuple[pd.DataFrame, int]:
    """With ``prepare.null_target: drop``, the rows whose target is null and how many there were
    (with ``error`` the schema's not-null check reports them)."""
    if prepare.null_target != "drop" or data.target not in frame.columns:
        return frame, 0
    missing = frame[data.target].isna()
    return frame[~missing].reset_index(drop=True), int(missing.sum())


def run(params: Params, paths: StagePaths = DEFAULT_PATHS) -> dict[str, Any]:
    if params.compute.engine == "dask":
        from modelci.pipeline import cluster

        return cluster.prepare(params, paths)
    source = Path(params.data.source)
    raw, null_target_rows = drop_null_target(read_table(source), params.data, params.prepare)
    frame = validate(raw, params.data, str(source))
    train, test = split(frame, params.data, params.prepare)
    summary = profile(frame, train, test, params.data)
    summary["dropped"] = {
        "columns": list(params.data.drop_columns),
        "null_target_rows": null_target_rows,
    }
    summary["source"] = {"path": str(source), "md5": file_digest(source, "md5")}
    _write_parquet(train, paths.train)
    _write_parquet(test, paths.test)
    write_json(paths.profile, summary)
    return summary
