"""Where a model came from: git commit and dirty flag, data hashes, params digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from modelci import _proc
from modelci.config import ReleaseParams
from modelci.fileio import file_digest
from modelci.tags import (
    TAG_COMMIT,
    TAG_COMPUTE_PREFIX,
    TAG_DIRTY,
    TAG_PARAMS_DIGEST,
    TAG_TRAIN_THREADS,
    data_md5_tag,
)

UNKNOWN = "unknown"


def _git(*args: str) -> str | None:
    """git's output, or None where git is missing, fails or hangs (the lineage says unknown)."""
    try:
        done = _proc.run(["git", *args], timeout=10, check=False)
    except _proc.ProcError:
        return None
    return done.text.strip() if done.ok else None


def git_commit() -> str:
    return _git("rev-parse", "HEAD") or UNKNOWN


def git_dirty() -> bool:
    """True when tracked files differ from HEAD (untracked files do not count)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return bool(status)


def params_digest(params: ReleaseParams) -> str:
    """Digest of the params that shape the model given its training data (whose md5 is tagged)."""
    shaping = {
        "data": params.data.model_dump(mode="json", include={"target", "task", "columns"}),
        # None when training is the user's own stage (no modelci train section)
        "train": params.train.model_dump(mode="json") if params.train is not None else None,
    }
    canonical = json.dumps(shaping, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def compute_tags(record: Path) -> dict[str, str]:
    """``modelci.compute.*`` tags from the train stage's compute record (engine dask): the number
    of workers and partitions the model's bytes depend on."""
    if not record.is_file():
        return {}
    found = json.loads(record.read_text(encoding="utf-8"))
    return {f"{TAG_COMPUTE_PREFIX}{key}": str(value) for key, value in sorted(found.items())}


def lineage_tags(params: ReleaseParams, data_files: dict[str, Path]) -> dict[str, str]:
    """Tags recorded on every MLflow run; data hashes are md5, the same as in ``dvc.lock``
    (a file a user's own stage does not write gets no tag)."""
    commit = git_commit()
    tags = {
        "mlflow.source.git.commit": commit,
        TAG_COMMIT: commit,
        TAG_DIRTY: str(git_dirty()).lower(),
        TAG_PARAMS_DIGEST: params_digest(params),
    }
    if params.train is not None:
        # The model's bytes depend on it (modelci.threads); recorded next to the commit.
        tags[TAG_TRAIN_THREADS] = str(params.train.n_threads)
    for name, path in data_files.items():
        if path.is_file():
            tags[data_md5_tag(name)] = file_digest(path, "md5")
    return tags
