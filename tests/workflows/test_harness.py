"""The act harness's readings of a run, held to act itself on a one-step workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run
from tests.workflows import harness

pytestmark = pytest.mark.workflows

WORKFLOW = """\
name: probe
on: push
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "fraud: released as fraud"
          echo "::notice::churn: unchanged: nothing to release"
          echo "::notice title=T::two%0Alines"
          echo "::warning::a warning"
"""


def test_annotations_are_the_workflow_commands_act_records_not_log_lines(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    workflow = repo / ".github" / "workflows" / "probe.yml"
    workflow.write_text(WORKFLOW, encoding="utf-8")
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "x"], repo)
    env = harness.ActEnv(stub_root=tmp_path / "stubs", modelci_src=tmp_path / "src")
    done = harness.run_act(repo, "push", {}, workflow, env, work=tmp_path / "act", timeout=300)
    assert done.result("plan") == "success", done.explain()
    assert done.annotations("plan") == ["churn: unchanged: nothing to release", "two\nlines"]
    assert done.annotations("plan", "warning") == ["a warning"]
    assert done.annotations("other") == []
    # act takes the commands out of the step's output: a log-line check could not see them
    assert "fraud: released as fraud" in done.output("plan")
    assert "unchanged" not in done.output("plan")
