"""The model checks run against the model the real pipeline produced in ``pipeline_repo``.

The plugin's fixtures (``modelci_*``) read that repository; the short names are the ones the ONNX
tests use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelci.config import Params, load_params


@pytest.fixture(scope="session")
def modelci_root(pipeline_repo: Path) -> Path:
    return pipeline_repo


@pytest.fixture(scope="session")
def params(pipeline_repo: Path) -> Params:
    return load_params(pipeline_repo / "params.yaml")


@pytest.fixture(scope="session")
def model(modelci_model: Any) -> Any:
    return modelci_model


@pytest.fixture(scope="session")
def test_frame(modelci_test_frame: pd.DataFrame) -> pd.DataFrame:
    return modelci_test_frame


@pytest.fixture(scope="session")
def train_frame(modelci_train_frame: pd.DataFrame) -> pd.DataFrame:
    return modelci_train_frame
