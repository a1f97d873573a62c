"""``modelci release plan``: the release takes the pull request's plan again, on the pushed commit
against its first parent. A project nothing affected is skipped with a notice (a docs-only merge
releases nothing and succeeds); each released project gets its own tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelci.ci.release_plan import (
    FIRST_COMMIT,
    UNCHANGED,
    image_tag_prefix,
    release_decisions,
    release_matrix,
    tag_prefix,
)
from modelci.cli import main
from modelci.errors import ModelCIError
from modelci.projects import discover
from modelci.registry.release import release_tag
from tests.unit.test_affected import git, write_project

pytestmark = pytest.mark.unit


def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def _commit(root: Path, message: str, files: dict[str, str] | None = None) -> None:
    for path, text in (files or {}).items():
        _write(root, path, text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def _params(name: str, seed: int) -> str:
    return yaml.safe_dump(
        {
            "data": {"source": "data/raw.csv"},
            "tracking": {"model_name": name},
            "train": {"seed": seed},
        }
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository (branch main) with churn and fraud in folders, committed once."""
    _write(tmp_path, "pyproject.toml", '[project]\nname = "models"\n')
    _write(tmp_path, "README.md", "models\n")
    write_project(tmp_path, "models/churn")
    write_project(tmp_path, "models/fraud")
    git(tmp_path, "init", "-q", "-b", "main")
    _commit(tmp_path, "two projects")
    return tmp_path


def _merge(root: Path, branch: str, message: str, files: dict[str, str]) -> None:
    """Commit ``files`` on ``branch`` (from main) and merge it into main with a merge commit."""
    git(root, "checkout", "-q", "-b", branch, "main")
    _commit(root, message, files)
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)


def _plan(root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the CLI as the release's plan step does; returns (stdout lines, outputs, summary)."""
    outputs, summary = root.parent / "out.txt", root.parent / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    before = git(root, "rev-parse", "HEAD~1").strip()
    assert main(["release", "plan", "--root", str(root), "--base", before]) == 0
    pairs = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return capsys.readouterr().out.splitlines(), pairs, summary.read_text()


def test_a_docs_only_merge_releases_nothing_and_succeeds_with_a_notice_per_project(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _merge(repo, "docs", "docs", {"README.md": "models, documented\n"})
    lines, outputs, summary = _plan(repo, capsys, monkeypatch)
    assert outputs == {"matrix": '{"include":[]}', "count": "0"}
    assert lines == [
        f"::notice::churn: {UNCHANGED} (no dependency changed)",
        f"::notice::fraud: {UNCHANGED} (no dependency changed)",
    ]
    assert f"| churn | churn-model | {UNCHANGED} | no dependency changed |" in summary


def test_a_merge_releases_only_the_project_it_changed_with_its_own_tags(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _merge(repo, "fraud", "fraud seed", {"models/fraud/params.yaml": _params("fraud-model", 2)})
    lines, outputs, _ = _plan(repo, capsys, monkeypatch)
    assert json.loads(outputs["matrix"]) == {
        "include": [
            {
                "path": "models/fraud",
                "name": "fraud",
                "registered_model": "fraud-model",
                "report_project": "fraud",
                "tag_prefix": "fraud/v",
                "image_tag_prefix": "fraud-v",
            }
        ]
    }
    assert outputs["count"] == "1"
    assert lines[0] == f"::notice::churn: {UNCHANGED} (no dependency changed)"
    assert lines[1].startswith("fraud: released as fraud-model (models/fraud/params.yaml changed")


def test_the_first_parent_is_the_base_not_what_main_gained_meanwhile(repo: Path) -> None:
    """The branch started before main changed churn: merging it releases fraud only."""
    git(repo, "checkout", "-q", "-b", "fraud", "main")
    _commit(repo, "fraud seed", {"models/fraud/params.yaml": _params("fraud-model", 2)})
    git(repo, "checkout", "-q", "main")
    _commit(repo, "churn seed", {"models/churn/params.yaml": _params("churn-model", 3)})
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge fraud", "fraud")
    affected = [d.project.name for d in release_decisions(repo) if d.affected]
    assert affected == ["fraud"]
    # the commit before the merge released churn, on its own push
    assert [d.project.name for d in release_decisions(repo, "HEAD~1") if d.affected] == ["churn"]


def test_a_squash_merge_or_a_direct_push_is_compared_with_the_commit_before(repo: Path) -> None:
    _commit(repo, "uv.lock", {"uv.lock": "version = 1\n"})
    decisions = release_decisions(repo)
    assert [d.affected for d in decisions] == [True, True]
    assert decisions[0].reason.startswith("uv.lock changed")


def test_every_commit_of_the_push_counts_when_the_push_names_its_previous_tip(repo: Path) -> None:
    """A rebase-merge pushes two commits: fraud's change in the first, docs in the second."""
    before = git(repo, "rev-parse", "HEAD").strip()
    _commit(repo, "fraud seed", {"models/fraud/params.yaml": _params("fraud-model", 2)})
    _commit(repo, "docs", {"README.md": "models, documented\n"})
    assert [d.affected for d in release_decisions(repo)] == [False, False]  # the first parent
    assert [d.affected for d in release_decisions(repo, "HEAD", before)] == [False, True]


@pytest.mark.parametrize("before", ["", "0" * 40, "1" * 40])
def test_without_a_known_previous_tip_the_first_parent_is_the_base(repo: Path, before: str) -> None:
    """A new branch (all zeros), a dispatched run (none), a force push whose old tip the
    checkout lacks: compared with the first parent."""
    _commit(repo, "fraud seed", {"models/fraud/params.yaml": _params("fraud-model", 2)})
    decisions = release_decisions(repo, "HEAD", before)
    assert [d.project.name for d in decisions if d.affected] == ["fraud"]


def test_the_first_commit_releases_every_project(repo: Path) -> None:
    decisions = release_decisions(repo)
    assert [(d.project.name, d.affected, d.reason) for d in decisions] == [
        ("churn", True, FIRST_COMMIT),
        ("fraud", True, FIRST_COMMIT),
    ]


def test_an_unknown_commit_is_one_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "plan", "--root", str(repo), "--head", "no-such-ref"]) != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "git rev-list no-such-ref failed" in line


def test_a_single_root_project_keeps_model_v_and_the_merged_report(tmp_path: Path) -> None:
    _write(tmp_path, "pyproject.toml", '[project]\nname = "churn"\n')
    write_project(tmp_path, ".")
    git(tmp_path, "init", "-q", "-b", "main")
    _commit(tmp_path, "one project")
    _commit(tmp_path, "params", {"params.yaml": _params("root-model", 5)})
    [entry] = release_matrix(release_decisions(tmp_path))["include"]
    assert entry["tag_prefix"] == entry["image_tag_prefix"] == "model-v"
    # one project: release reviewed reads the merged artifact's report.json, as before the plan
    assert entry["report_project"] == ""
    _commit(tmp_path, "docs", {"README.md": "docs\n"})
    assert release_matrix(release_decisions(tmp_path)) == {"include": []}


def test_tag_names(repo: Path) -> None:
    write_project(repo, ".")
    root, churn, _ = discover(repo)
    assert (tag_prefix(root), image_tag_prefix(root)) == ("model-v", "model-v")
    assert (tag_prefix(churn), image_tag_prefix(churn)) == ("churn/v", "churn-v")
    assert release_tag(3) == "model-v3"
    assert release_tag(3, tag_prefix(churn)) == "churn/v3"
    assert release_tag(12, "fraud.v2/v") == "fraud.v2/v12"


@pytest.mark.parametrize("prefix", ["v", "a/b/v", "../v", "x..y/v", "a.lock/v", "a./v", "-a/v"])
def test_a_tag_prefix_git_would_refuse_or_that_names_no_project_is_refused(prefix: str) -> None:
    with pytest.raises(ModelCIError, match="invalid tag prefix"):
        release_tag(1, prefix)


def test_publish_takes_the_tag_prefix() -> None:
    from modelci.cli import build_parser

    args = build_parser().parse_args(
        ["release", "publish", "--version", "3", "--tag-prefix", "fraud/v"]
    )
    assert args.tag_prefix == "fraud/v"
