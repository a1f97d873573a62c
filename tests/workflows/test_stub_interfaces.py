"""The act stubs of third-party actions (``tests/workflows/stubs/*/action.yml``) against the real
actions' published interface.

``stubs/action-inputs.json`` records, for each pinned action, the ``inputs`` of its real
``action.yml`` read at the pinned commit (``git show COMMIT:action.yml`` in a clone of the
action's repository; only the names are kept, never the action's code). A pin bump changes the
commit in ``.github/action-pins.tsv`` and fails the first test until the names are read again at
the new commit. The stubs cannot run the real actions here (they need GitHub's artifact, cache and
PyPI services), so what is held to the real thing is the interface: every input our workflows pass
is one the real action has, and one its stub declares (a stub that ignored it would pass whatever
the input said).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.workflows.harness import STUB_FOR, STUBS, USES

pytestmark = pytest.mark.workflows

WHOLE_LINE_PLACEHOLDER = re.compile(r"^<<\w+>>$\n?", re.MULTILINE)
RECORDED: dict[str, Any] = json.loads((STUBS / "action-inputs.json").read_text("utf-8"))
WORKFLOW_FILES = sorted(
    [
        *(REPO_ROOT / ".github").rglob("*.yml"),
        *(REPO_ROOT / "src/modelci/scaffold/templates/dot-github").rglob("*.yml"),
    ]
)


def pins() -> dict[str, str]:
    lines = (REPO_ROOT / ".github/action-pins.tsv").read_text("utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")][1:]
    return {action: commit for action, _tag, commit in rows}


def steps_using(action: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every step (of a job or a composite action) that uses ``action``."""
    found = []
    for path in WORKFLOW_FILES:
        # a template's whole-line placeholder (``<<cluster_secrets>>``: lines init writes, or
        # none) is not YAML; its steps are the same without it
        text = WHOLE_LINE_PLACEHOLDER.sub("", path.read_text("utf-8"))
        document = yaml.safe_load(text) or {}
        jobs = document.get("jobs") or {}
        step_lists = [job.get("steps") or [] for job in jobs.values() if isinstance(job, dict)]
        step_lists.append((document.get("runs") or {}).get("steps") or [])
        for steps in step_lists:
            for step in steps:
                match = USES.search(f"uses: {step.get('uses', '')}")
                if match and match.group(1) == action:
                    found.append((path, step))
    return found


def stub_inputs(action: str) -> set[str]:
    stub = yaml.safe_load((STUBS / STUB_FOR[action] / "action.yml").read_text("utf-8"))
    return set((stub.get("inputs") or {}).keys())


def test_every_stubbed_action_has_its_inputs_recorded_at_the_pinned_commit() -> None:
    pinned = pins()
    assert set(RECORDED) == set(STUB_FOR)
    for action, entry in RECORDED.items():
        if "note" in entry:  # read elsewhere than the pin, and says why
            continue
        assert entry["read_at"] == pinned[action], f"{action}: re-read its inputs at the new pin"


@pytest.mark.parametrize("action", sorted(STUB_FOR))
def test_the_stub_declares_only_inputs_the_real_action_has(action: str) -> None:
    unknown = stub_inputs(action) - set(RECORDED[action]["inputs"])
    assert not unknown, f"stubs/{STUB_FOR[action]} declares inputs {action} does not: {unknown}"


@pytest.mark.parametrize("action", sorted(STUB_FOR))
def test_every_input_our_workflows_pass_is_real_and_modelled_by_the_stub(action: str) -> None:
    real, stubbed = set(RECORDED[action]["inputs"]), stub_inputs(action)
    for path, step in steps_using(action):
        given = set((step.get("with") or {}).keys())
        where = f"{path.relative_to(REPO_ROOT)}: {action}"
        assert given <= real, f"{where} is given inputs it does not have: {given - real}"
        assert given <= stubbed, f"{where}: its stub ignores {given - stubbed}"
