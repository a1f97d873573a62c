"""The resources ``fake_github`` answers with, shaped as GitHub's OpenAPI description says.

Each starts from the description's own example of that resource (so every field GitHub's schema
requires is there) and overrides what the fake knows: ids, numbers, text, users, state, URLs.
``openapi_check`` then validates every response against the schema, so a shape that drifts from
the description fails the test that sent it.
"""

from __future__ import annotations

from typing import Any

from tests.workflows.openapi_check import spec

API = "https://api.github.com"
WEB = "https://github.com"
EXAMPLES = "#/components/examples/"


def _example(name: str) -> dict[str, Any]:
    value = spec().example(EXAMPLES + name)
    assert isinstance(value, dict)
    return value


def user(login: str) -> dict[str, Any]:
    """A ``simple-user`` named ``login`` (a ``[bot]`` login is a Bot)."""
    shaped = _example("simple-user")
    for key, value in list(shaped.items()):
        if isinstance(value, str) and "octocat" in value:
            shaped[key] = value.replace("octocat", login)
    shaped["type"] = "Bot" if login.endswith("[bot]") else "User"
    return shaped


def comment(repo: str, data: dict[str, Any]) -> dict[str, Any]:
    """An ``issue-comment`` from the fake's record (``id``, ``pr``, ``user``, ``body``)."""
    shaped = _example("issue-comment")
    shaped.update(
        id=data["id"],
        body=data["body"],
        user=user(data["user"]),
        url=f"{API}/repos/{repo}/issues/comments/{data['id']}",
        html_url=f"{WEB}/{repo}/pull/{data['pr']}#issuecomment-{data['id']}",
        issue_url=f"{API}/repos/{repo}/issues/{data['pr']}",
    )
    return shaped


def _label(name: str) -> dict[str, Any]:
    shaped = _example("label")
    shaped.update(name=name, description=None, default=False)
    return shaped


def issue(repo: str, data: dict[str, Any]) -> dict[str, Any]:
    """An ``issue`` from the fake's record (``number``, ``title``, ``body``, ``state``,
    ``labels`` as names, ``user``, and ``state_reason`` once closed)."""
    shaped = _example("issue")
    number = data["number"]
    shaped.update(
        {key: data[key] for key in ("number", "title", "body", "state") if key in data},
        id=number,
        labels=[_label(name) for name in data.get("labels", [])],
        user=user(data["user"]),
        state_reason=data.get("state_reason"),
        url=f"{API}/repos/{repo}/issues/{number}",
        html_url=f"{WEB}/{repo}/issues/{number}",
        repository_url=f"{API}/repos/{repo}",
    )
    shaped.pop("pull_request", None)  # an issue, not a pull request
    return shaped


def pull(repo: str, data: dict[str, Any]) -> dict[str, Any]:
    """A ``pull-request`` from the fake's record (``number``, ``title``, ``body``, ``state``,
    ``head`` and ``base`` as branch names, ``user``)."""
    shaped = _example("pull-request")
    number, owner = data["number"], repo.split("/")[0]
    shaped.update(
        {key: data[key] for key in ("number", "title", "body", "state") if key in data},
        id=number,
        user=user(data["user"]),
        requested_teams=[],  # the description's own example lacks a team's required "type"
        url=f"{API}/repos/{repo}/pulls/{number}",
        html_url=f"{WEB}/{repo}/pull/{number}",
    )
    for side in ("head", "base"):
        shaped[side].update(ref=data[side], label=f"{owner}:{data[side]}")
    return shaped


def artifact(repo: str, artifact_id: int, name: str, size: int, api_url: str) -> dict[str, Any]:
    """An ``artifact`` whose ``archive_download_url`` points at the fake (``api_url``)."""
    shaped = _example("artifact-paginated")["artifacts"][0]
    shaped.update(
        id=artifact_id,
        name=name,
        size_in_bytes=size,
        url=f"{api_url}/repos/{repo}/actions/artifacts/{artifact_id}",
        archive_download_url=f"{api_url}/repos/{repo}/actions/artifacts/{artifact_id}/zip",
    )
    return shaped


def public_user(login: str) -> dict[str, Any]:
    """What ``GET /users/{username}`` answers (a ``public-user``)."""
    shaped = _example("public-user-default-response")
    shaped.update({k: v for k, v in user(login).items() if k in shaped})
    return shaped


def authenticated_user(login: str) -> dict[str, Any]:
    """What ``GET /user`` answers a user's token (a ``private-user``)."""
    shaped = _example("private-user-response-with-public-and-private-profile-information")
    shaped.update({k: v for k, v in user(login).items() if k in shaped})
    return shaped


def pull_of_commit(repo: str, number: int, head_sha: str, merge_commit_sha: str) -> dict[str, Any]:
    """A ``pull-request-simple`` (what ``GET /repos/{o}/{r}/commits/{sha}/pulls`` lists)."""
    shaped = spec().example(EXAMPLES + "pull-request-simple-items")[0]
    shaped.update(
        number=number,
        merge_commit_sha=merge_commit_sha,
        requested_teams=[],  # the description's own example lacks a team's required "type"
        url=f"{API}/repos/{repo}/pulls/{number}",
    )
    shaped["head"]["sha"] = head_sha
    return shaped


def workflow_run(
    run_id: int, event: str, conclusion: str, head_sha: str, path: str
) -> dict[str, Any]:
    """A ``workflow-run`` with what the release's lookup checks."""
    shaped = _example("workflow-run")
    shaped.update(id=run_id, event=event, conclusion=conclusion, head_sha=head_sha, path=path)
    shaped["status"] = "completed"
    return shaped
