"""Where the stages read and write, relative to the repository root (as declared in dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StagePaths:
    train: Path = Path("data/prepared/train.parquet")
    test: Path = Path("data/prepared/test.parquet")
    profile: Path = Path("data/prepared/profile.json")
    model: Path = Path("models/model.skops")
    onnx: Path = Path("models/onnx")
    metrics: Path = Path("metrics.json")
    slices: Path = Path("reports/slices.json")
    predictions: Path = Path("reports/predictions.parquet")
    model_card: Path = Path("reports/model_card.md")
    plots: Path = Path("plots")


DEFAULT_PATHS = StagePaths()
