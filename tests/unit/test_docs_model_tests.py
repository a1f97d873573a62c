"""The ``model_tests:`` examples of docs/testing-plugin.md are valid declarations."""

from __future__ import annotations

import re

import pytest
import yaml

from modelci.config import ModelTestsParams, check_model_tests, load_data_params
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PAGE = REPO_ROOT / "docs/testing-plugin.md"
EXAMPLE = re.compile(
    r"^### (?P<task>[^\n]+)\n\n```yaml\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL
)


def examples() -> dict[str, str]:
    return {m["task"]: m["body"] for m in EXAMPLE.finditer(PAGE.read_text(encoding="utf-8"))}


def test_there_is_an_example_per_task() -> None:
    tasks = [task.split()[0] for task in examples()]
    assert tasks == ["Binary", "Multiclass", "Regression"]


@pytest.mark.parametrize("task", list(examples()))
def test_example_is_a_valid_declaration(task: str) -> None:
    raw = yaml.safe_load(examples()[task])
    tests = ModelTestsParams.model_validate(raw["model_tests"])
    assert tests.minimum_functionality
    assert tests.invariance
    assert tests.directional
    if task.startswith("Binary"):  # this repository's own schema
        check_model_tests(tests, load_data_params(REPO_ROOT / "params.yaml"))
