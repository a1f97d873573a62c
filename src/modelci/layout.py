"""Every default path, relative to the repository root: what modelci's own ``dvc.yaml`` declares
and what a command reads when it is given no path. An adopter's ``dvc.yaml`` may declare others
(``modelci.dvcfiles``); these are the defaults, spelled once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")


@dataclass(frozen=True)
class StagePaths:
    train: Path = Path("data/prepared/train.parquet")
    test: Path = Path("data/prepared/test.parquet")
    profile: Path = Path("data/prepared/profile.json")
    model: Path = Path("models/model.skops")
    onnx: Path = Path("models/onnx")
    metrics: Path = Path("metrics.json")
    reports: Path = Path("reports")
    slices: Path = Path("reports/slices.json")
    predictions: Path = Path("reports/predictions.parquet")
    model_card: Path = Path("reports/model_card.md")
    plots: Path = Path("plots")


DEFAULT_PATHS = StagePaths()
