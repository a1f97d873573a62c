"""Every MLflow tag name modelci writes or reads, in one place.

Runs carry the lineage tags (:func:`modelci.lineage.lineage_tags`) and the model's sha256;
registered versions carry a copy of them plus the gate's verdict. Renaming one is a migration:
versions registered by an older release keep the old name.
"""

from __future__ import annotations

# Lineage, on every run (and copied onto its registered version).
TAG_COMMIT = "modelci.git_commit"
TAG_DIRTY = "modelci.git_dirty"
TAG_PARAMS_DIGEST = "modelci.params_digest"
TAG_TRAIN_THREADS = "modelci.train.n_threads"
TAG_COMPUTE_PREFIX = "modelci.compute."  # engine, workers, partitions (compute.engine dask)
TAG_SHA256 = "modelci.model_sha256"
# The build-time ONNX export's own sha256 (models/onnx/model.onnx), on registered versions: a
# server pinned to the model's sha256 serves the export only when this pins it too.
TAG_ONNX_SHA256 = "modelci.onnx_sha256"
DATA_PREFIX = "modelci.data."


def data_md5_tag(name: str) -> str:
    """The tag holding the md5 of the data file ``name`` (``train``, ``test``) a run used."""
    return f"{DATA_PREFIX}{name}.md5"


# Registered versions.
TAG_COMMIT_TIME = "modelci.commit_time"
TAG_RUN_COMMIT = "modelci.run.git_commit"  # the run's own commit tags, kept under these names
TAG_RUN_DIRTY = "modelci.run.git_dirty"
TAG_MATCHES_LOCK = "modelci.model_matches_dvc_lock"
TAG_PR_REPORT = "modelci.pr_report"
TAG_REGISTERED_BY = "modelci.registered_by"
TAG_REGISTERED_AT = "modelci.registered_at"
TAG_GATE = "modelci.gate"  # passed | rejected | rolled_back | forced
TAG_GATE_DETAIL = "modelci.gate.detail"
TAG_GATE_FORCED_OVER = "modelci.gate.forced_over"  # what the gate said before a forced rollback
TAG_GATE_AGAINST = "modelci.gate.against"
# A rollback's record on each version it touched (who, why, when; where to and from).
ROLLBACK_PREFIX = "modelci.rollback."
TAG_ROLLBACK_BY = f"{ROLLBACK_PREFIX}by"
TAG_ROLLBACK_REASON = f"{ROLLBACK_PREFIX}reason"
TAG_ROLLBACK_AT = f"{ROLLBACK_PREFIX}at"
TAG_ROLLBACK_TO = f"{ROLLBACK_PREFIX}to"
TAG_ROLLBACK_FROM = f"{ROLLBACK_PREFIX}from"
METRIC_PREFIX = "modelci.metric."
EVAL_PREFIX = "modelci.eval."
DVC_PREFIX = "modelci.dvc."

# The values of TAG_GATE.
PASSED, REJECTED, ROLLED_BACK, FORCED = "passed", "rejected", "rolled_back", "forced"
ELIGIBLE = (PASSED, FORCED)  # gate values the champion rule may pick
