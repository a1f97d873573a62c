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


@pytest.fixture(scope="module")
def published(
    modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[harness.ActRun, Path, str]:
    work = tmp_path_factory.mktemp("publish")
    repo = work / "modelci"
    run(["git", "clone", "-q", str(REPO_ROOT), str(repo)], work)
    run(
        ["git", "remote", "set-url", "origin", REMOTE_URL.replace("example-model", "modelci")], repo
    )
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
        "repository": {"full_name": SLUG, "name": "modelci", "owner": {"login": "modelci"}},
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
