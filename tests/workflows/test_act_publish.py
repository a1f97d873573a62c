"""The publish workflow under act: a release tag builds, stamps and checks the distributions, and
the PyPI job receives exactly them.

The repository is a clone of this checkout's HEAD, tagged ``v<version>``. ``uv`` is the real
pinned uv (``uv build``), ``twine`` the locked one; the upload is ``pypa/gh-action-pypi-publish``'s
stand-in, which records the files (PyPI and its trusted-publishing OIDC exchange only exist on
GitHub).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from modelci import __version__
from tests.conftest import REPO_ROOT, run
from tests.workflows import harness
from tests.workflows.conftest import REMOTE_URL

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

SLUG = "modelci/modelci"


def run_publish(
    modelci_src: Path, work: Path, *, on_main: bool
) -> tuple[harness.ActRun, Path, str]:
    """Tag ``v<version>`` in a clone of this checkout and run publish.yml on the tag's push.

    The clone's ``origin/main`` is its HEAD; with ``on_main=False`` the tag is on a commit made
    after it, on no branch of origin (what anyone who can push a tag could release)."""
    repo = work / "modelci"
    run(["git", "clone", "-q", str(REPO_ROOT), str(repo)], work)
    run(
        ["git", "remote", "set-url", "origin", REMOTE_URL.replace("example-model", "modelci")], repo
    )
    run(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], repo)
    if not on_main:
        run(["git", "commit", "-q", "--allow-empty", "-m", "not reviewed"], repo)
    tag = f"v{__version__}"
    run(["git", "tag", tag], repo)
    sha = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    workflow = work / "publish.act.yml"
    workflow.write_text(
        harness.act_compatible((repo / ".github/workflows/publish.yml").read_text("utf-8")),
        "utf-8",
    )
    stub_root = work / "stubs"
    stub_root.mkdir()
    event = {
        "ref": f"refs/tags/{tag}",
        "after": sha,
        "repository": {
            "full_name": SLUG,
            "name": "modelci",
            "owner": {"login": "modelci"},
            "default_branch": "main",
        },
    }
    act = harness.run_act(
        repo,
        "push",
        event,
        workflow,
        harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, real_uv=True),
        work=work / "act",
        secrets={"GITHUB_TOKEN": harness.FAKE_GITHUB_TOKEN},
    )
    return act, stub_root, sha


@pytest.fixture(scope="module")
def published(
    modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[harness.ActRun, Path, str]:
    return run_publish(modelci_src, tmp_path_factory.mktemp("publish"), on_main=True)


def test_a_release_tag_builds_and_publishes(published: tuple[harness.ActRun, Path, str]) -> None:
    act, _, _ = published
    assert {job: act.result(job) for job in ("build", "pypi")} == {
        "build": "success",
        "pypi": "success",
    }, act.explain()


def test_pypi_receives_the_checked_wheel_and_sdist(
    published: tuple[harness.ActRun, Path, str],
) -> None:
    _, stub_root, _ = published
    (upload,) = harness.read_calls(stub_root, "pypi-publish")
    assert sorted(upload["files"]) == [
        f"modelci-{__version__}-py3-none-any.whl",
        f"modelci-{__version__}.tar.gz",
    ]


def test_the_wheel_is_stamped_with_the_tagged_commit(
    published: tuple[harness.ActRun, Path, str],
) -> None:
    """So `modelci init` from this wheel pins the callers to the commit that was released."""
    _, stub_root, sha = published
    wheel = stub_root / "pypi" / f"modelci-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        stamp = json.loads(archive.read("modelci/scaffold/release.json"))
    assert stamp == {"repository": SLUG, "commit": sha}


def test_the_release_build_restores_no_cache(published: tuple[harness.ActRun, Path, str]) -> None:
    """A tag's run can read caches the default branch saved; the release restores none."""
    _, stub_root, _ = published
    (call,) = harness.read_calls(stub_root, "setup-uv")
    assert call["inputs"]["STUB_ENABLE_CACHE"] == "false", call["inputs"]


def test_a_tag_on_a_commit_not_on_the_default_branch_is_refused(
    modelci_src: Path, tmp_path: Path
) -> None:
    act, stub_root, _ = run_publish(modelci_src, tmp_path, on_main=False)
    assert act.result("build") == "failure", act.explain()
    assert act.result("pypi") != "success"
    # The refusing step is what failed the build (act does not always keep the step's last
    # output line, the ::error:: annotation, in its log when the step exits at once).
    refuse = "Refuse a tag whose commit is not on the default branch"
    assert act.step_result("build", refuse) == "failure", act.explain()
    assert harness.read_calls(stub_root, "pypi-publish") == []
    assert not (stub_root / "pypi").exists()
