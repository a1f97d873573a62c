"""A recording stand-in for the GitHub REST API on 127.0.0.1, for the comment workflow under act.

It serves what the comment job and the ``cml`` stand-in call, with GitHub's rules where they
matter: a token is a user (``USERS``; ``GET /user`` answers 403 to the installation token, as
GitHub does to ``GITHUB_TOKEN``); lists are 30 a page by default (at most 100) with ``Link``
headers; only a comment's author may edit or delete it (403 otherwise); artifacts are listed per
run and downloaded through a 302 to a separate storage listener on 127.0.0.1, which refuses a
request that carries the token. Every request and response is checked against GitHub's OpenAPI
description (``openapi_check``): a request it does not allow answers 404/422 as GitHub would, and
every such request, or response of the fake's own that breaks the description, is a violation
that fails the test when the ``FakeGitHub`` block ends.
Issues (list by state and label, create, edit, close) and pull requests (list by head and state,
create, edit) are kept for the monitor and retrain workflows, in ``issues.json`` and ``pulls.json``.
An artifact is ``<root>/artifacts/runs/<run>/<name>`` (a folder, zipped on request, as
``conftest.keep_artifact`` files it) or ``<root>/artifacts/runs/<run>/<name>.zip`` (served as is,
for hostile archives). Comments and every request are written under ``<root>/github/`` after each
change, so ``harness.comments`` and ``requests`` read them. ``POST /assets`` is an image endpoint
(what ``cml asset publish --url`` posts to): it records the upload and answers the asset's URL.
Given an ``ssl.SSLContext`` it serves https, and also under ``/api/v3`` (GitHub Enterprise
Server's API path, where CML sends the calls for any host but github.com). Set as a client's
``HTTPS_PROXY``, it records each ``CONNECT`` (a connection to another host) and refuses it.

Which workflow runs GitHub would start follows GitHub's rule for the workflow's own token: a pull
request records the kind of token that opened it (``token_kind``), a ``workflow_dispatch`` through
the API is recorded in ``dispatches.json``, and ``started_runs`` lists the runs a real GitHub starts
from them: none for a pull request opened with ``GITHUB_TOKEN``, a ``pull_request`` run for one
opened by an App installation (or a user), a ``workflow_dispatch`` run for each dispatch.
"""

from __future__ import annotations

import hashlib
import io
import json
import ssl
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.http_support import serve_in_thread
from tests.workflows import github_shapes as shapes
from tests.workflows import openapi_check
from tests.workflows.harness import FAKE_GITHUB_TOKEN

BOT = "github-actions[bot]"
# An installation token of the adopter's GitHub App (what actions/create-github-app-token makes).
APP_TOKEN = "ghs_fake_app_installation_token"  # noqa: S105 - not a secret
APP_BOT = "modelci-retrain[bot]"
USERS = {
    FAKE_GITHUB_TOKEN: BOT,
    APP_TOKEN: APP_BOT,
    "alice-token": "alice",
    "mallory-token": "mallory",
}
DEFAULT_PER_PAGE = 30
MAX_BODY = 1_000_000
# Where ``POST /assets`` says an uploaded image is served (a name that resolves nowhere).
ASSET_BASE = "https://assets.modelci.invalid"


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def artifact_data(folder: Path, name: str) -> bytes:
    """The zip of artifact ``name`` of a run's ``folder`` (a hostile ``.zip`` as is)."""
    raw = folder / f"{name}.zip"
    return raw.read_bytes() if raw.is_file() else zip_folder(folder / name)


@dataclass
class State:
    root: Path
    repo: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1000
    next_number: int = 1
    storage_url: str = ""
    violations: list[str] = field(default_factory=list)
    artifact_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violation(self, problem: str) -> None:
        self.violations.append(problem)
        self.log({"violation": problem})

    def save(self) -> None:
        folder = self.root / "github"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "comments.json").write_text(json.dumps(self.comments, indent=2), "utf-8")
        (folder / "issues.json").write_text(json.dumps(self.issues, indent=2), "utf-8")
        (folder / "pulls.json").write_text(json.dumps(self.pulls, indent=2), "utf-8")

    def log(self, entry: dict[str, Any]) -> None:
        folder = self.root / "github"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "requests.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")

    def add_comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "pr": number,
            "target": f"pr/{number}",
            "user": user,
            "body": body,
            "updates": 0,
        }
        self.comments.append(comment)
        self.save()
        return comment


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    base = f"/repos/{state.repo}"

    class Handler(BaseHTTPRequestHandler):
        operation: openapi_check.Operation | None = None
        raw_body: bytes = b""

        def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            if self.operation is not None:
                for problem in openapi_check.spec().check_response(self.operation, code, data):
                    state.violation(f"the fake's response: {problem}")
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str) -> None:
            """An error body as GitHub sends it (``basic-error``, ``validation-failed``)."""
            docs = "https://docs.github.com/rest"
            self._send(code, {"message": message, "documentation_url": docs, "status": f"{code}"})

        def _user(self) -> str | None:
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            return USERS.get(token) if scheme.lower() in ("bearer", "token") else None

        def _url(self) -> str:
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

        def _asset(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY)
            data = self.rfile.read(length)
            digest = hashlib.sha256(data).hexdigest()
            state.log(
                {
                    "method": "POST",
                    "path": "/assets",
                    "sha256": digest,
                    "content_type": self.headers.get("Content-Type"),
                    "has_token": "Authorization" in self.headers,
                }
            )
            body = f"{ASSET_BASE}/{digest}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _comment_json(self, comment: dict[str, Any]) -> dict[str, Any]:
            return shapes.comment(state.repo, comment)

        def _page(self, items: list[Any], query: dict[str, list[str]]) -> None:
            """One page of ``items`` as GitHub lists them, with its ``Link`` header."""
            per_page = min(int(query.get("per_page", [DEFAULT_PER_PAGE])[0]), 100)
            page = int(query.get("page", ["1"])[0])
            last = max(1, -(-len(items) // per_page))
            links = [("next", page + 1)] if page < last else []
            links += [("last", last)] if page < last else [("first", 1), ("prev", page - 1)]
            kept = {k: v[-1] for k, v in query.items() if k not in ("page", "per_page")}
            path = urllib.parse.urlsplit(self.path).path

            def url(number: int) -> str:
                pages = {"per_page": per_page, "page": number}
                return f"{self._url()}{path}?{urllib.parse.urlencode({**kept, **pages})}"

            link = ", ".join(f'<{url(n)}>; rel="{rel}"' for rel, n in links if n >= 1)
            chunk = items[(page - 1) * per_page : page * per_page]
            self._send(200, chunk, {"Link": link} if last > 1 else {})

        def _handle(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
            path = path.removeprefix("/api/v3") if path.startswith("/api/v3/") else path
            if method == "POST" and path == "/assets":  # an image endpoint, not the API
                return self._asset()
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY)
            self.raw_body = self.rfile.read(length) if length else b""
            user = self._user()
            state.log({"method": method, "path": path, "query": parsed.query, "user": user})
            checked = openapi_check.spec().check_request(method, path, query, self.raw_body)
            self.operation = checked.operation
            if checked.problems:
                for problem in checked.problems:
                    state.violation(f"the request: {problem}")
                message = "Not Found" if checked.status == 404 else "Invalid request."
                return self._error(checked.status, message)
            if user is None:
                return self._error(401, "Bad credentials")
            if path == "/user":
                return self._authenticated(user)
            parts = path[len(base) :].strip("/").split("/") if path.startswith(base) else []
            if method == "GET" and path.startswith("/users/") and path.count("/") == 2:
                login = urllib.parse.unquote(path[len("/users/") :])
                return self._send(200, shapes.public_user(login))
            with state.lock:
                if parts[:2] == ["actions", "artifacts"] and parts[3:] == ["zip"]:
                    return self._download(int(parts[2]))
                if parts[:2] == ["actions", "runs"] and parts[3:] == ["artifacts"]:
                    return self._artifacts(parts[2], query)
                if parts[:1] == ["pulls"]:
                    return self._pulls(method, parts[1:], user, query)
                if parts[:2] == ["actions", "workflows"] and parts[3:] == ["dispatches"]:
                    return self._dispatch(method, parts[2], user)
                if parts[:1] == ["issues"] and len(parts) <= 2 and parts[1:2] != ["comments"]:
                    return self._issues(method, parts[1:], user, query)
                if parts[:1] == ["issues"] and parts[2:] == ["comments"] and parts[1].isdigit():
                    return self._pr_comments(method, int(parts[1]), user, query)
                if parts[:2] == ["issues", "comments"] and parts[2:3] and parts[2].isdigit():
                    return self._comment(method, int(parts[2]), user)
            if parts:  # a documented call on this repository that the fake does not serve
                state.violation(f"not modelled by the fake: {method} {path}")
            return self._error(404, "Not Found")

        def _numbered(self, kind: str, user: str, fields: dict[str, Any]) -> dict[str, Any]:
            item = {"number": state.next_number, "user": user, "state": "open", "updates": 0}
            state.next_number += 1
            item.update(fields)
            (state.issues if kind == "issue" else state.pulls).append(item)
            return item

        def _edit(self, item: dict[str, Any], allowed: tuple[str, ...]) -> None:
            body = self._body()
            item.update({key: body[key] for key in allowed if key in body})
            item["updates"] += 1
            state.save()

        def _issue_json(self, issue: dict[str, Any]) -> dict[str, Any]:
            return shapes.issue(state.repo, issue)

        def _issues(
            self, method: str, rest: list[str], user: str, query: dict[str, list[str]]
        ) -> None:
            if not rest and method == "GET":
                wanted = query.get("state", ["open"])[0]
                labels = set(query.get("labels", [""])[0].split(",")) - {""}
                found = [
                    self._issue_json(i)
                    for i in state.issues
                    if wanted in ("all", i["state"]) and labels <= set(i["labels"])
                ]
                return self._page(found, query)
            if not rest and method == "POST":
                body = self._body()
                if not isinstance(body.get("title"), str):
                    return self._error(422, "title is missing")
                fields = {
                    k: body.get(k, d) for k, d in (("title", ""), ("body", ""), ("labels", []))
                }
                issue = self._numbered("issue", user, fields)
                state.save()
                return self._send(201, self._issue_json(issue))
            found = [i for i in state.issues if rest and str(i["number"]) == rest[0]]
            if not found:
                return self._error(404, "Not Found")
            if method == "PATCH":
                self._edit(found[0], ("title", "body", "state", "state_reason"))
            return self._send(200, self._issue_json(found[0]))

        def _pulls(
            self, method: str, rest: list[str], user: str, query: dict[str, list[str]]
        ) -> None:
            if not rest and method == "GET":
                head = query.get("head", [""])[0].partition(":")[2]
                wanted = query.get("state", ["open"])[0]
                found = [
                    shapes.pull(state.repo, p)
                    for p in state.pulls
                    if wanted in ("all", p["state"]) and head in ("", p["head"])
                ]
                return self._page(found, query)
            if not rest and method == "POST":
                body = self._body()
                if not all(isinstance(body.get(k), str) for k in ("title", "head", "base")):
                    return self._error(422, "title, head and base are required")
                fields = {k: body.get(k, "") for k in ("title", "body", "head", "base")}
                fields["opened_with"] = token_kind(self._token())
                pull = self._numbered("pull", user, fields)
                state.save()
                return self._send(201, shapes.pull(state.repo, pull))
            found = [p for p in state.pulls if rest and str(p["number"]) == rest[0]]
            if not found:
                return self._error(404, "Not Found")
            if method == "PATCH":
                self._edit(found[0], ("title", "body", "state"))
            return self._send(200, shapes.pull(state.repo, found[0]))

        def _token(self) -> str:
            return self.headers.get("Authorization", "").partition(" ")[2]

        def _dispatch(self, method: str, workflow: str, user: str) -> None:
            """POST .../actions/workflows/{file}/dispatches: 204, recorded for ``started_runs``."""
            body = self._body()
            inputs = body.get("inputs", {})
            if method != "POST":
                return self._error(405, "Method Not Allowed")
            if not isinstance(body.get("ref"), str) or not isinstance(inputs, dict):
                return self._error(422, "ref is required; inputs is an object")
            if not all(isinstance(value, str) for value in inputs.values()):
                return self._error(422, "inputs values must be strings")
            entry = {"workflow": workflow, "ref": body["ref"], "inputs": inputs, "user": user}
            record_dispatch(state.root, entry | {"token": token_kind(self._token())})
            return self._send(204)

        def _artifacts(self, run: str, query: dict[str, list[str]]) -> None:
            folder = state.root / "artifacts" / "runs" / run
            names = (
                sorted(p.name.removesuffix(".zip") for p in folder.iterdir())
                if folder.is_dir()
                else []
            )
            wanted = query.get("name", [None])[0]
            listing = []
            for name in names:
                if wanted is None or name == wanted:
                    artifact_id = state.artifact_ids.setdefault(
                        (run, name), len(state.artifact_ids) + 1
                    )
                    size = len(artifact_data(folder, name))
                    listing.append(
                        shapes.artifact(state.repo, artifact_id, name, size, self._url())
                    )
            self._send(200, {"total_count": len(listing), "artifacts": listing})

        def _download(self, artifact_id: int) -> None:
            """GitHub answers with a short-lived storage URL on another host (no token)."""
            found = [key for key, value in state.artifact_ids.items() if value == artifact_id]
            if not found:
                return self._error(404, "Not Found")
            run, name = found[0]
            self._send(302, None, {"Location": f"{state.storage_url}/storage/{run}/{name}"})

        def _authenticated(self, user: str) -> None:
            if token_kind(self._token()) != "user":  # an installation token is no user
                message = "Resource not accessible by integration"
                return self._error(403, message)
            self._send(200, shapes.authenticated_user(user))

        def _pr_comments(
            self, method: str, number: int, user: str, query: dict[str, list[str]]
        ) -> None:
            if method == "POST":
                body = self._body().get("body")
                if not isinstance(body, str):
                    return self._error(422, "body is missing")
                return self._send(201, self._comment_json(state.add_comment(number, user, body)))
            on_pr = [self._comment_json(c) for c in state.comments if c["pr"] == number]
            self._page(on_pr, query)

        def _comment(self, method: str, comment_id: int, user: str) -> None:
            found = [c for c in state.comments if c["id"] == comment_id]
            if not found:
                return self._error(404, "Not Found")
            comment = found[0]
            if method == "GET":
                return self._send(200, self._comment_json(comment))
            if comment["user"] != user:
                return self._error(403, "Resource not accessible by integration")
            if method == "PATCH":
                comment["body"] = self._body().get("body", comment["body"])
                comment["updates"] += 1
                state.save()
                return self._send(200, self._comment_json(comment))
            if method == "DELETE":
                state.comments.remove(comment)
                state.save()
                return self._send(204)
            return self._error(405, "Method Not Allowed")

        def _body(self) -> dict[str, Any]:
            try:
                data = json.loads(self.raw_body or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        def do_GET(self) -> None:
            self._handle("GET")

        def do_CONNECT(self) -> None:
            state.log({"method": "CONNECT", "path": self.path})
            self._send(403, {"message": "no host but the API is reachable"})
            self.close_connection = True

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def token_kind(token: str) -> str:
    """``workflow`` for the run's GITHUB_TOKEN, ``installation`` for an App's, else ``user``."""
    if token == FAKE_GITHUB_TOKEN:
        return "workflow"
    return "installation" if token == APP_TOKEN else "user"


def record_dispatch(root: Path, entry: dict[str, Any]) -> None:
    path = root / "github" / "dispatches.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(path.read_text("utf-8")) if path.is_file() else []
    path.write_text(json.dumps([*done, entry], indent=2), "utf-8")


@dataclass(frozen=True)
class StartedRun:
    """A workflow run GitHub starts: ``pull_request`` (every such workflow) or a dispatch."""

    event: str
    ref: str
    pr_number: int | None = None
    workflow: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)


def started_runs(root: Path) -> list[StartedRun]:
    """The runs a real GitHub starts for the pull requests and dispatches recorded under ``root``:
    events caused by the workflow's ``GITHUB_TOKEN`` start none, except ``workflow_dispatch``."""
    folder = root / "github"
    pulls_file, dispatches_file = folder / "pulls.json", folder / "dispatches.json"
    pulls = json.loads(pulls_file.read_text("utf-8")) if pulls_file.is_file() else []
    dispatches = json.loads(dispatches_file.read_text("utf-8")) if dispatches_file.is_file() else []
    runs = [
        StartedRun("pull_request", pull["head"], pr_number=pull["number"])
        for pull in pulls
        if pull.get("opened_with", "user") != "workflow"
    ]
    runs += [
        StartedRun("workflow_dispatch", d["ref"], workflow=d["workflow"], inputs=d["inputs"])
        for d in dispatches
    ]
    return runs


def _storage_handler(state: State) -> type[BaseHTTPRequestHandler]:
    """The artifact storage host: a pre-signed URL needs no token, and one sent is refused (as
    Azure's blob storage refuses a request carrying two kinds of credentials)."""

    class Storage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            has_token = "Authorization" in self.headers
            state.log({"method": "GET", "path": self.path, "storage_saw_token": has_token})
            run, name = self.path.split("/")[2:4]
            if has_token:
                state.violation(f"the GitHub token was sent to the storage host: {self.path}")
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = artifact_data(state.root / "artifacts" / "runs" / run, name)
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Storage


class FakeGitHub:
    """``with FakeGitHub(stub_root, repo) as github:`` serves on ``github.url`` until the end,
    then fails the test if any request or response broke GitHub's OpenAPI description (a test
    that sends such a request on purpose takes them with ``take_violations``)."""

    def __init__(self, root: Path, repo: str, tls: ssl.SSLContext | None = None) -> None:
        if not openapi_check.available():
            pytest.skip("GitHub's OpenAPI description is not installed: run `make openapi`")
        openapi_check.spec()  # loaded once per session, before the first request
        self.state = State(root=root, repo=repo)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "http" if tls is None else "https"
        self._storage = ThreadingHTTPServer(("127.0.0.1", 0), _storage_handler(self.state))
        self.state.storage_url = f"http://127.0.0.1:{self._storage.server_address[1]}"
        self._threads = [serve_in_thread(server) for server in (self._server, self._storage)]

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def add_comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        with self.state.lock:
            return self.state.add_comment(number, user, body)

    def take_violations(self) -> list[str]:
        """The violations so far, which then no longer fail the test."""
        with self.state.lock:
            taken, self.state.violations[:] = list(self.state.violations), []
        return taken

    def __enter__(self) -> FakeGitHub:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for server, thread in zip((self._server, self._storage), self._threads, strict=True):
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
        if kind is None and self.state.violations:
            shown = "\n  ".join(self.state.violations[:10])
            raise AssertionError(
                f"{len(self.state.violations)} exchange(s) with the fake GitHub API broke GitHub's "
                f"OpenAPI description {openapi_check.spec().version}:\n  {shown}"
            )
