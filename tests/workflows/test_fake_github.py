"""The fake GitHub API answers to GitHub's OpenAPI description (``openapi_check``): a request the
description does not allow is refused as GitHub would refuse it and fails the test, and so does a
response of the fake's own that breaks it; pagination, ``GET /user`` with an installation token
and artifact downloads behave as GitHub documents them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workflows import github_shapes
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN

pytestmark = pytest.mark.workflows

REPO = "acme/model"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def call(
    github: FakeGitHub, method: str, path: str, body: Any = None, token: str = FAKE_GITHUB_TOKEN
) -> tuple[int, Any, dict[str, str]]:
    """``method path`` on the fake, without following redirects: (status, JSON, headers)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the test's own 127.0.0.1 server
        github.url + path, data=data, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(NoRedirect())
    try:
        with opener.open(request, timeout=30) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    return status, json.loads(raw) if raw else None, headers


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path, REPO) as fake:
        yield fake


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "problem"),
    [
        ("POST", f"/repos/{REPO}/issues/7/comments", {"text": "hi"}, 422, "'body' is a required"),
        ("GET", f"/repos/{REPO}/issues/7/comments?per_page=all", None, 422, "'per_page'"),
        ("GET", f"/repos/{REPO}/issues/seven/comments", None, 422, "'issue_number'"),
        ("GET", f"/repos/{REPO}/issues/7/comments?sort=created", None, 422, "undocumented query"),
        ("PATCH", f"/repos/{REPO}/issues/7", {"state": "done"}, 422, "'done' is not one of"),
        ("DELETE", f"/repos/{REPO}/issues/7/comments", None, 404, "no such operation"),
        ("GET", f"/repos/{REPO}/issue/7", None, 404, "no such operation"),
    ],
)
def test_a_request_the_description_does_not_allow_is_refused_and_recorded(
    github: FakeGitHub, method: str, path: str, body: Any, status: int, problem: str
) -> None:
    got, answer, _ = call(github, method, path, body)
    assert got == status
    assert answer["message"] in ("Invalid request.", "Not Found")
    violations = github.take_violations()
    assert violations
    assert all(v.startswith("the request: ") for v in violations)
    assert any(problem in v for v in violations), violations
    assert github.state.comments == []
    assert github.state.issues == []


def test_a_violation_left_in_the_fake_fails_the_test(tmp_path: Path) -> None:
    fails = pytest.raises(AssertionError, match=r"1 exchange\(s\) .* broke GitHub's OpenAPI")
    with fails, FakeGitHub(tmp_path, REPO) as github:
        call(github, "POST", f"/repos/{REPO}/issues/7/comments", {"text": "hi"})


def test_a_response_of_the_fake_that_breaks_the_description_is_a_violation(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    shaped = github_shapes.comment

    def without_node_id(repo: str, data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in shaped(repo, data).items() if k != "node_id"}

    monkeypatch.setattr(github_shapes, "comment", without_node_id)
    status, _, _ = call(github, "POST", f"/repos/{REPO}/issues/7/comments", {"body": "hi"})
    assert status == 201
    (violation,) = github.take_violations()
    assert violation.startswith("the fake's response: POST /repos/{owner}/{repo}/issues/")
    assert "'node_id' is a required property" in violation


def test_lists_are_paginated_as_github_documents(github: FakeGitHub) -> None:
    for i in range(65):
        github.add_comment(7, "alice", f"comment {i}")
    path = f"/repos/{REPO}/issues/7/comments"
    status, first, headers = call(github, "GET", path)
    assert status == 200
    assert len(first) == 30
    assert f'<{github.url}{path}?per_page=30&page=2>; rel="next"' in headers["Link"]
    assert f'<{github.url}{path}?per_page=30&page=3>; rel="last"' in headers["Link"]
    _, last, headers = call(github, "GET", f"{path}?page=3")
    assert [c["body"] for c in last] == [f"comment {i}" for i in range(60, 65)]
    assert 'rel="next"' not in headers["Link"]
    assert 'rel="prev"' in headers["Link"]
    for i in range(65, 130):
        github.add_comment(7, "alice", f"comment {i}")
    _, most, headers = call(github, "GET", f"{path}?per_page=500")
    assert len(most) == 100  # at most 100 a page, whatever is asked
    assert f'<{github.url}{path}?per_page=100&page=2>; rel="next"' in headers["Link"]


def test_get_user_answers_403_to_an_installation_token(github: FakeGitHub) -> None:
    status, answer, _ = call(github, "GET", "/user")
    assert (status, answer["message"]) == (403, "Resource not accessible by integration")
    status, answer, _ = call(github, "GET", "/user", token="alice-token")  # noqa: S106
    assert (status, answer["login"]) == (200, "alice")


def test_an_artifact_download_redirects_to_a_storage_host_that_refuses_the_token(
    github: FakeGitHub,
) -> None:
    folder = github.state.root / "artifacts" / "runs" / "42" / "report"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("hi", encoding="utf-8")
    _, listing, _ = call(github, "GET", f"/repos/{REPO}/actions/runs/42/artifacts?name=report")
    (artifact,) = listing["artifacts"]
    status, _, headers = call(github, "GET", artifact["archive_download_url"][len(github.url) :])
    location = headers["Location"]
    assert status == 302
    assert location.startswith("http://127.0.0.1:")
    assert not location.startswith(github.url)  # another host: the client must drop the token
    with urllib.request.urlopen(location, timeout=30) as response:  # noqa: S310 - 127.0.0.1
        assert response.read()[:2] == b"PK"
    leaked = urllib.request.Request(location, headers={"Authorization": "Bearer x"})  # noqa: S310
    with pytest.raises(urllib.error.HTTPError, match="400"):
        urllib.request.urlopen(leaked, timeout=30)  # noqa: S310 - 127.0.0.1
    (violation,) = github.take_violations()
    assert "token was sent to the storage host" in violation
