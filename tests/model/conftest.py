"""Fixtures for checks against the model the real pipeline produced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelci.config import Params, load_params
from modelci.modelfile import load_model


@pytest.fixture(scope="session")
def params(pipeline_repo: Path) -> Params:
    return load_params(pipeline_repo / "params.yaml")


@pytest.fixture(scope="session")
def model(pipeline_repo: Path, params: Params) -> Any:
    return load_model(pipeline_repo / "models/model.skops", params.train.trusted_types)


@pytest.fixture(scope="session")
def test_frame(pipeline_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(pipeline_repo / "data/prepared/test.parquet")


@pytest.fixture(scope="session")
def train_frame(pipeline_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(pipeline_repo / "data/prepared/train.parquet")
