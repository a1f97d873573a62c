"""The monitor's issue commands without a pipeline: a missing drift report, and one issue per
model kept in sync on a stand-in GitHub. (``modelci monitor drift`` on a reproduced pipeline is
tested in ``tests/integration/test_drift_cli.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelci.cli import main
from modelci.drift.github import sync_issue
from modelci.github_api import GitHub, GitHubError
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN

pytestmark = pytest.mark.unit


def test_monitor_issue_without_drift_json_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "monitor",
            "issue",
            "--drift",
            str(tmp_path / "drift.json"),
            "--repo",
            "o/r",
            "--model",
            "m",
        ]
    )
    assert code == 1
    assert "not found: the drift check failed before writing its report" in capsys.readouterr().err


def test_sync_issue_opens_updates_and_closes_one_issue(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path, "o/r") as fake:
        github = GitHub(fake.url, "o/r", FAKE_GITHUB_TOKEN)
        assert sync_issue(github, "m", False, "t", "report", "") == ("none", None)
        for number in range(3):  # other open issues with the label, not this model's
            fake.state.issues.append(
                {"number": 100 + number, "user": "alice", "state": "open", "updates": 0,
                 "title": "x", "body": "not ours", "labels": ["modelci-monitor"]}
            )  # fmt: skip
        action, number = sync_issue(github, "m", True, "drift", "first", "")
        assert action == "opened"
        assert sync_issue(github, "other-model", True, "drift", "x", "")[0] == "opened"
        assert sync_issue(github, "m", True, "drift", "second", "u") == ("updated", number)
        assert sync_issue(github, "m", False, "ok", "clean", "u") == ("closed", number)
        ours = [i for i in fake.state.issues if i["number"] == number]
        assert ours[0]["state"] == "closed"
        assert "second" in ours[0]["body"]
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHub("http://127.0.0.1:1", "o/r", "")
