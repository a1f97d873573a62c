"""Small file helpers: atomic writes and content hashes.

Every file a stage produces goes through :func:`write_atomic`, so a failing stage never leaves a
half-written output behind. The file gets the mode any other tool would give it (``0666`` less
the user's umask), not the ``0600`` of the private temporary file it is written to first.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask; POSIX can only read it by setting it, so it is set back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp's 0600 is for the temporary file only
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(path, write)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as stable, diff-friendly JSON (sorted keys, two-space indent)."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=True) + "\n")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes; ``md5`` matches the hash DVC records in ``dvc.lock``."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dvc_dir_md5(directory: Path) -> str:
    """The hash ``dvc.lock`` records for a folder output (``<md5>.dir``): the md5 of DVC's
    listing of the folder, ``[{"md5": <file md5>, "relpath": <posix path>}, ...]`` sorted by
    path, as sorted-key JSON (checked against ``dvc add`` in tests/unit/test_serving_export.py)."""
    entries = [
        {"md5": file_digest(path, "md5"), "relpath": path.relative_to(directory).as_posix()}
        for path in directory.rglob("*")
        if path.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing, usedforsecurity=False).hexdigest() + ".dir"
