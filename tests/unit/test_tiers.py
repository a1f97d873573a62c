"""The suite's own tier check (``tests/tiers.py``): marker and folder agree, and the fast tiers
never pull an expensive session fixture."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from tests.tiers import tier_problem, xdist_group

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "markers", "fixtures"),
    [
        ("unit/test_x.py", ["unit"], ["tmp_path"]),
        ("data/test_x.py", ["data", "parametrize"], []),
        ("integration/test_x.py", ["integration", "slow"], ["pipeline_repo"]),
        ("model/test_x.py", ["model"], ["pipeline_repo", "modelci_model"]),
        ("workflows/test_x.py", ["workflows"], ["model_repo", "mlflow_backend"]),
        ("test_outside_a_tier.py", [], []),
        ("support/test_x.py", [], []),
    ],
)
def test_tests_in_their_tier_pass(path: str, markers: list[str], fixtures: list[str]) -> None:
    assert tier_problem(PurePath(path), markers, fixtures) is None


@pytest.mark.parametrize(
    ("path", "markers", "fixtures", "message"),
    [
        ("integration/test_x.py", ["unit"], [], "marked unit, but tests/integration/ holds"),
        ("unit/test_x.py", [], [], "has no tier marker, but tests/unit/ holds unit tests only"),
        ("unit/test_x.py", ["unit", "integration"], [], "marked integration, unit, but"),
        ("data/test_x.py", ["slow"], [], "has no tier marker"),
        ("unit/test_x.py", ["unit"], ["windows", "pipeline_repo"], "fixture pipeline_repo: move"),
        ("data/test_x.py", ["data"], ["modelci_dists", "mlflow_backend"], "mlflow_backend, model"),
        ("unit/test_x.py", ["unit"], ["serving_image"], "a unit test uses the slow session"),
    ],
)
def test_a_test_in_the_wrong_tier_is_named(
    path: str, markers: list[str], fixtures: list[str], message: str
) -> None:
    problem = tier_problem(PurePath(path), markers, fixtures)
    assert problem is not None
    assert message in problem


def test_xdist_groups_keep_shared_fixtures_on_one_worker() -> None:
    nodeid = "tests/workflows/test_act_pr.py::test_comment[x]"
    assert xdist_group(nodeid, {"tmp_path": "function", "pipeline_repo": "session"}) is None
    assert xdist_group(nodeid, {"pr_run": "module"}) == "tests/workflows/test_act_pr.py"
    assert xdist_group(nodeid, {"serving_image": "session", "server": "module"}) == "podman"
