"""Read a raw table from a user's CSV/Parquet file or from a dataset shipped inside a package.

A packaged dataset is named by a small descriptor file (``*.source.yaml``) committed to the repo:
the package, the file inside it and the file's sha256. ``params.yaml`` therefore always points at
a real file that DVC can track, and a different package version that changed the data is caught
instead of silently training on other rows.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from modelci.config import read_yaml, validated
from modelci.errors import DataError

DESCRIPTOR_SUFFIXES = (".yaml", ".yml")
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


class PackagedDataset(BaseModel):
    """Descriptor of a dataset file that ships inside an installed distribution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    description: str = ""
    license: str = ""


def load_descriptor(path: Path) -> PackagedDataset:
    return validated(PackagedDataset, read_yaml(path, "dataset descriptor"), str(path))


def locate_packaged_file(dataset: PackagedDataset) -> Path:
    """Find the dataset file among the distribution's installed files, without importing it."""
    try:
        files = importlib.metadata.files(dataset.package) or []
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"dataset package {dataset.package!r} is not installed (run `make install`)"
        ) from None
    for entry in files:
        if str(entry) == dataset.file:
            return Path(str(entry.locate()))
    raise DataError(f"package {dataset.package!r} has no file {dataset.file!r}")


def _read_packaged(descriptor: Path) -> pd.DataFrame:
    dataset = load_descriptor(descriptor)
    path = locate_packaged_file(dataset)
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != dataset.sha256:
        raise DataError(
            f"{descriptor}: {dataset.package}/{dataset.file} has sha256 {actual}, "
            f"expected {dataset.sha256}: the installed package ships different data"
        )
    return _read_file(path)


def _refuse_duplicate_header(path: Path) -> None:
    """pandas renames a repeated column ``x`` to ``x.1``: a silent new column. Refuse it."""
    header = [str(name) for name in pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        names = ", ".join(f"{name!r} ({header.count(name)} times)" for name in repeated)
        raise DataError(f"{path}: the header repeats column(s) {names}: give each a unique name")


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        frame = pd.read_csv(path)
        if any(isinstance(c, str) and re.search(r"\.\d+$", c) for c in frame.columns):
            _refuse_duplicate_header(path)
        return frame
    if suffix in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    raise DataError(
        f"{path}: unsupported file type {suffix!r}; use .csv, .parquet or a .source.yaml descriptor"
    )


def read_table(source: Path) -> pd.DataFrame:
    """Read the raw table named by ``data.source``; every failure becomes a one-line DataError."""
    if not source.exists():
        raise DataError(f"{source}: data file not found (data.source in params.yaml)")
    if source.is_dir():
        raise DataError(f"{source}: is a directory, expected a .csv or .parquet file")
    try:
        if source.suffix.lower() in DESCRIPTOR_SUFFIXES:
            return _read_packaged(source)
        return _read_file(source)
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{source}: cannot read table: {first}") from None
