"""Every default path, relative to the repository root: what modelci's own ``dvc.yaml`` declares
and what a command reads when it is given no path. An adopter's ``dvc.yaml`` may declare others
(``modelci.dvcfiles``); these are the defaults, spelled once."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")


class StagePaths(NamedTuple):
    """The stages' paths; a NamedTuple, not a dataclass, so the CLI's --help (which reads the
    defaults) does not import ``dataclasses`` and ``inspect``. Change one with ``_replace``."""

    # compute.engine dask: the version of every file data.source names (the source stage)
    source: Path = Path("data/source.json")
    train: Path = Path("data/prepared/train.parquet")
    test: Path = Path("data/prepared/test.parquet")
    profile: Path = Path("data/prepared/profile.json")
    model: Path = Path("models/model.skops")
    # compute.engine dask: where the model was trained (engine, workers, partitions)
    compute: Path = Path("models/compute.json")
    onnx: Path = Path("models/onnx")
    metrics: Path = Path("metrics.json")
    reports: Path = Path("reports")
    slices: Path = Path("reports/slices.json")
    predictions: Path = Path("reports/predictions.parquet")
    model_card: Path = Path("reports/model_card.md")
    plots: Path = Path("plots")


DEFAULT_PATHS = StagePaths()

# compute.engine dask: where and how each stage last ran (workers, partitions, wall time,
# dashboard), for the job summary and the PR report; not a DVC output (it differs every run).
COMPUTE_RUN = Path(".modelci/compute-run.json")

# The serving prediction log (modelci.serving.predlog) writes DIR/PREDICTION_LOG and rotates it
# into PREDICTION_LOG.1 ... .N; the drift check (modelci.drift.inputs) reads them back.
PREDICTION_LOG = "predictions.jsonl"


def prediction_log_files(directory: Path) -> list[Path]:
    """The prediction log files in ``directory``, oldest first."""
    rotated = sorted(
        directory.glob(f"{PREDICTION_LOG}.*"),
        key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
        reverse=True,
    )
    current = directory / PREDICTION_LOG
    return [*rotated, *([current] if current.exists() else [])]
