"""The job summaries of the registry and release commands, rendered by the modules that own the
data (``modelci.registry.*``); the CLI only writes them to ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import pytest

from modelci.model_version import Version
from modelci.registry import register, release, rollback
from modelci.tags import TAG_COMMIT, TAG_PR_REPORT, TAG_SHA256

pytestmark = pytest.mark.unit


def _version(number: int, **tags: str) -> Version:
    return Version("m", number, "run", {TAG_COMMIT: "c" * 40, TAG_SHA256: "a" * 64, **tags})


@pytest.mark.parametrize(("created", "word"), [(True, "registered"), (False, "already registered")])
def test_register_summary(created: bool, word: str) -> None:
    done = register.Registered(_version(3, **{TAG_PR_REPORT: "PR #7"}), created, "run")
    assert register.summary_markdown(done) == (
        f"## Registered\n\n- {word} version 3 of commit `{'c' * 40}`\n"
        f"- model sha256 `{'a' * 64}`\n- PR report: PR #7\n"
    )


def test_register_summary_without_a_report() -> None:
    done = register.Registered(_version(3), True, "run")
    assert register.summary_markdown(done).endswith("- PR report: none\n")


def test_rollback_summary() -> None:
    done = rollback.Rollback(_version(4), _version(2), _version(2), None, "ana", "bad latency")
    assert rollback.summary_markdown(done, "champion") == (
        "## Rollback\n\n- @champion: version 4 -> 2\n- by ana\n- reason: bad latency\n"
    )


def test_reviewed_summary_found_missing_and_opted_out() -> None:
    found = {"pr_number": 7, "run_id": 99, "model": {"sha256": "b" * 64}}
    assert release.reviewed_summary(found, "pr.yml", "d" * 40, True) == (
        f"## Reviewed model\n\n- PR #7 (run 99 of `pr.yml`), model sha256 `{'b' * 64}`\n"
    )
    missing = release.missing_report_message("pr.yml", "d" * 40)
    assert missing.endswith(f"merged as {'d' * 12}")
    refused = release.reviewed_summary(None, "pr.yml", "d" * 40, True)
    assert refused == f"## Reviewed model\n\n- refused: {missing}\n"
    opted_out = release.reviewed_summary(None, "pr.yml", "d" * 40, False)
    assert opted_out.startswith(f"## Reviewed model\n\n- {missing}\n\n- **The reviewed-model")
    assert "`require-report: false`" in opted_out


def test_section_summary() -> None:
    assert release.section_summary("Image", "pushed `x`") == "## Image\n\n- pushed `x`\n"
