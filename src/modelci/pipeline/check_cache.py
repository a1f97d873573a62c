"""The memory of ``modelci check-params``: which params files already passed the model check.

Checking ``train:`` builds the estimator (or calls the ``train.pipeline`` factory), which imports
scikit-learn: about 3 s of CPU, most of ``check-params``' time (docs/benchmarks.md,
"check-params"). The result depends only on the params file's bytes, the installed distributions,
the interpreter and the user's own code the params name, so a check that passed is remembered
under a key made of exactly those, and the same check with the same key is not run again. Only
passes are remembered: a failing file is checked, and its error printed, every time.

The key is cheap to compute (no import of what it describes): distribution versions come from
the names of the ``*.dist-info`` folders on ``sys.path``, and the user's code is hashed from its
source files, found with :func:`importlib.util.find_spec` on the top-level name only (which
imports nothing but that name's parent, and a top-level name has none).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from modelci.config import TrainParams
from modelci.fileio import write_json

CACHE_FILE = Path(".modelci") / "check-params.json"
# Bounds how many passing keys are kept: a few experiments' worth, never a growing file.
MAX_KEYS = 32
# The user's own code is hashed in full; past this many bytes the check is simply not cached.
MAX_SOURCE_BYTES = 16 * 1024 * 1024


def _installed() -> list[str]:
    """Every ``name-version.dist-info`` (or ``.egg-info``) folder on ``sys.path``, sorted."""
    found: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(name for name in names if name.endswith((".dist-info", ".egg-info")))
    return sorted(found)


def _in_site_packages(path: str) -> bool:
    return any(part in {"site-packages", "dist-packages"} for part in Path(path).parts)


def _own_code(dotted: str) -> bytes | None:
    """The source of the top-level package ``dotted`` starts with, when it is the user's own
    (not an installed distribution, which its version covers): b"" for an installed one, None
    when it cannot be found or is too large to hash (the check then always runs)."""
    top = dotted.split(":", 1)[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or (spec.origin is None and not spec.submodule_search_locations):
        return None
    roots = list(spec.submodule_search_locations or [spec.origin or ""])
    if all(_in_site_packages(root) for root in roots):
        return b""
    files = sorted(
        path
        for root in roots
        for path in ([Path(root)] if Path(root).is_file() else Path(root).rglob("*.py"))
    )
    if sum(path.stat().st_size for path in files) > MAX_SOURCE_BYTES:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path}\0".encode())
        digest.update(path.read_bytes())
    return digest.digest()


def check_key(params_file: Path, train: TrainParams | None) -> str | None:
    """The key of one model check, or None when it cannot be keyed (then always check)."""
    digest = hashlib.sha256()
    digest.update(params_file.read_bytes())
    digest.update(f"\0{sys.version}\0{sys.prefix}\0".encode())
    digest.update("\n".join(_installed()).encode())
    for dotted in (train.estimator, train.pipeline) if train is not None else ():
        if dotted:
            code = _own_code(dotted)
            if code is None:
                return None
            digest.update(code)
    return digest.hexdigest()


def _cache_path(params_file: Path) -> Path:
    return params_file.resolve().parent / CACHE_FILE


def _keys(path: Path) -> list[str]:
    try:
        keys = json.loads(path.read_text(encoding="utf-8")).get("passed", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [key for key in keys if isinstance(key, str)] if isinstance(keys, list) else []


def passed_before(params_file: Path, key: str) -> bool:
    """Whether a check with this key passed before (next to ``params_file``)."""
    return key in _keys(_cache_path(params_file))


def remember(params_file: Path, key: str) -> None:
    """Record a passing check; an unwritable folder only means the next run checks again."""
    path = _cache_path(params_file)
    keys = [old for old in _keys(path) if old != key][-(MAX_KEYS - 1) :]
    with contextlib.suppress(OSError):
        write_json(path, {"passed": [*keys, key]})
