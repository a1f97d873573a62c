"""Data read where it lives: ``data.source`` as a file, a folder or a glob of Parquet or CSV files,
on the local disk or at a URL that fsspec reads (``s3://``, ``gs://``, ``az://``...).

:func:`record_versions` lists the files and the exact version of each (the object's ETag and
VersionId on S3, the generation on GCS, size and md5 on a local disk). The ``source``
stage writes that record (``data/source.json``) on every ``dvc repro``; ``prepare`` depends on it,
so ``dvc.lock`` pins the data and a changed object re-runs prepare, while an unchanged bucket
leaves the pipeline up to date. prepare reads exactly the listed files and checks afterwards
that none changed while it read them (:func:`check_unchanged`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelci.errors import DataError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# Version fields the fsspec backends report (s3fs, gcsfs, adlfs), kept as they come.
_VERSION_KEYS = ("ETag", "VersionId", "generation", "md5Hash", "etag", "version_id")
RECORD_VERSION = 1


def is_url(source: str) -> bool:
    return "://" in source


def _filesystem(source: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(source)
    except (ImportError, ValueError) as error:
        raise DataError(f"{source}: cannot open data.source: {error}") from None
    return fs, path


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol[0] if isinstance(protocol, (tuple, list)) else protocol)


def _full(fs: Any, path: str) -> str:
    """``path`` as the URL the readers take, or a local path relative to the working directory
    when it is under it (the record is committed: it must not name one checkout's folder)."""
    protocol = _protocol(fs)
    if protocol not in ("file", "local"):
        return f"{protocol}://{path}"
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def list_files(source: str) -> list[str]:
    """The data files ``source`` names, sorted: the file itself, every Parquet/CSV file under a
    folder, or the matches of a glob. Mixed formats, or none, are a DataError."""
    fs, path = _filesystem(source)
    try:
        if any(char in path for char in "*?["):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = fs.find(path)
        elif fs.exists(path):
            found = [path]
        else:
            raise DataError(f"{source}: data.source not found")
    except (OSError, PermissionError) as error:
        raise DataError(f"{source}: cannot list data.source: {error}") from None
    files = sorted(
        name for name in found if os.path.splitext(name)[1].lower() in FORMATS
    )  # folders may hold _SUCCESS markers, checksums...
    if not files:
        raise DataError(f"{source}: no .parquet or .csv files found")
    formats = {FORMATS[os.path.splitext(name)[1].lower()] for name in files}
    if len(formats) > 1:
        raise DataError(f"{source}: mixes Parquet and CSV files; point data.source at one format")
    return [_full(fs, name) for name in files]


def _version(fs: Any, path: str) -> dict[str, Any]:
    info = fs.info(path)
    entry: dict[str, Any] = {"path": _full(fs, path), "size": int(info.get("size") or 0)}
    if _protocol(fs) in ("file", "local"):
        from modelci.fileio import file_digest

        # No mtime: a fresh clone stamps every file with its own time, which would re-run
        # prepare on every runner. Size and md5 (DVC's hash) identify the content.
        entry["md5"] = file_digest(Path(path), "md5")
        return entry
    for key in _VERSION_KEYS:
        if info.get(key) not in (None, ""):
            entry[key] = str(info[key]).strip('"')
    return entry


def record_versions(source: str) -> dict[str, Any]:
    """What ``source`` holds now: its format and every file with its version."""
    files = list_files(source)
    fs, _ = _filesystem(source)
    try:
        versions = [_version(fs, fs._strip_protocol(name)) for name in files]
    except (OSError, PermissionError) as error:
        raise DataError(f"{source}: cannot read file versions: {error}") from None
    return {
        "version": RECORD_VERSION,
        "source": source,
        "format": FORMATS[os.path.splitext(files[0])[1].lower()],
        "files": versions,
    }


def check_unchanged(record: dict[str, Any]) -> None:
    """Raise DataError when a file of ``record`` changed since it was recorded (prepare read
    another version than the one ``dvc.lock`` pins)."""
    current = record_versions(str(record["source"]))
    before = {entry["path"]: entry for entry in record["files"]}
    after = {entry["path"]: entry for entry in current["files"]}
    changed = sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )
    if changed:
        raise DataError(
            f"{record['source']}: {len(changed)} file(s) changed while prepare read them, first "
            f"{changed[0]}; run `dvc repro` again to pin the new version"
        )
