"""A recording stand-in for the GitHub REST API on 127.0.0.1, for the comment workflow under act.

It serves what the comment job and the ``cml`` stand-in call, with GitHub's rules where they
matter: a token is a user (``USERS``); pull-request comments are listed 30 a page by default (at
most 100) with ``Link`` headers; only a comment's author may edit or delete it (403 otherwise);
artifacts are listed per run and downloaded through a redirect to another path without the token.
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


@dataclass
class State:
    root: Path
    repo: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1000
    next_number: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

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
        def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
            url = f"https://github.com/{state.repo}/pull/{comment['pr']}"
            return {
                "id": comment["id"],
                "body": comment["body"],
                "user": {"login": comment["user"]},
                "html_url": f"{url}#issuecomment-{comment['id']}",
            }

        def _handle(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
            path = path.removeprefix("/api/v3") if path.startswith("/api/v3/") else path
            if path.startswith("/storage/"):  # pre-signed: no token needed
                return self._artifact(path, has_token="Authorization" in self.headers)
            if method == "POST" and path == "/assets":
                return self._asset()
            user = self._user()
            state.log({"method": method, "path": path, "query": parsed.query, "user": user})
            if user is None:
                return self._send(401, {"message": "Bad credentials"})
            parts = path[len(base) :].strip("/").split("/") if path.startswith(base) else []
            if method == "GET" and path.startswith("/users/") and path.count("/") == 2:
                login = urllib.parse.unquote(path[len("/users/") :])
                return self._send(
                    200, {"login": login, "id": 1 + sum(map(ord, login)), "name": None}
                )
            with state.lock:
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
            return self._send(404, {"message": "Not Found"})

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
            labels = [{"name": name} for name in issue["labels"]]
            return {**issue, "labels": labels, "user": {"login": issue["user"]}}

        def _issues(
            self, method: str, rest: list[str], user: str, query: dict[str, list[str]]
        ) -> None:
            if not rest and method == "GET":
                wanted = query.get("state", ["open"])[0]
                labels = set(query.get("labels", [""])[0].split(",")) - {""}
                found = [
                    {
                        **i,
                        "labels": [{"name": n} for n in i["labels"]],
                        "user": {"login": i["user"]},
                    }
                    for i in state.issues
                    if wanted in ("all", i["state"]) and labels <= set(i["labels"])
                ]
                return self._send(200, found)
            if not rest and method == "POST":
                body = self._body()
                if not isinstance(body.get("title"), str):
                    return self._send(422, {"message": "title is missing"})
                fields = {
                    k: body.get(k, d) for k, d in (("title", ""), ("body", ""), ("labels", []))
                }
                issue = self._numbered("issue", user, fields)
                state.save()
                return self._send(201, self._issue_json(issue))
            found = [i for i in state.issues if rest and str(i["number"]) == rest[0]]
            if not found:
                return self._send(404, {"message": "Not Found"})
            if method == "PATCH":
                self._edit(found[0], ("title", "body", "state", "state_reason"))
                return self._send(200, found[0])
            return self._send(200, found[0]) if method == "GET" else self._send(405, {})

        def _pulls(
            self, method: str, rest: list[str], user: str, query: dict[str, list[str]]
        ) -> None:
            if not rest and method == "GET":
                head = query.get("head", [""])[0].partition(":")[2]
                wanted = query.get("state", ["open"])[0]
                found = [
                    {**p, "head": {"ref": p["head"]}, "base": {"ref": p["base"]}}
                    for p in state.pulls
                    if wanted in ("all", p["state"]) and head in ("", p["head"])
                ]
                return self._send(200, found)
            if not rest and method == "POST":
                body = self._body()
                if not all(isinstance(body.get(k), str) for k in ("title", "head", "base")):
                    return self._send(422, {"message": "title, head and base are required"})
                fields = {k: body.get(k, "") for k in ("title", "body", "head", "base")}
                fields["opened_with"] = token_kind(self._token())
                pull = self._numbered("pull", user, fields)
                state.save()
                return self._send(201, pull)
            found = [p for p in state.pulls if rest and str(p["number"]) == rest[0]]
            if not found:
                return self._send(404, {"message": "Not Found"})
            if method == "PATCH":
                self._edit(found[0], ("title", "body", "state"))
                return self._send(200, found[0])
            return self._send(405, {"message": "Method Not Allowed"})

        def _token(self) -> str:
            return self.headers.get("Authorization", "").partition(" ")[2]

        def _dispatch(self, method: str, workflow: str, user: str) -> None:
            """POST .../actions/workflows/{file}/dispatches: 204, recorded for ``started_runs``."""
            body = self._body()
            inputs = body.get("inputs", {})
            if method != "POST":
                return self._send(405, {"message": "Method Not Allowed"})
            if not isinstance(body.get("ref"), str) or not isinstance(inputs, dict):
                return self._send(422, {"message": "ref is required; inputs is an object"})
            if not all(isinstance(value, str) for value in inputs.values()):
                return self._send(422, {"message": "inputs values must be strings"})
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
            download = f"{self._url()}{base}/actions/artifacts/{run}"
            listing = [
                {"name": name, "expired": False, "archive_download_url": f"{download}/{name}/zip"}
                for name in names
                if wanted is None or name == wanted
            ]
            self._send(200, {"total_count": len(listing), "artifacts": listing})

        def _artifact(self, path: str, has_token: bool) -> None:
            run, name = path.split("/")[2:4]
            folder = state.root / "artifacts" / "runs" / run
            raw = folder / f"{name}.zip"
            data = raw.read_bytes() if raw.is_file() else zip_folder(folder / name)
            state.log({"method": "GET", "path": path, "storage_saw_token": has_token})
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _pr_comments(
            self, method: str, number: int, user: str, query: dict[str, list[str]]
        ) -> None:
            if method == "POST":
                body = self._body().get("body")
                if not isinstance(body, str):
                    return self._send(422, {"message": "body is missing"})
                return self._send(201, self._comment_json(state.add_comment(number, user, body)))
            per_page = min(int(query.get("per_page", [DEFAULT_PER_PAGE])[0]), 100)
            page = int(query.get("page", ["1"])[0])
            on_pr = [c for c in state.comments if c["pr"] == number]
            chunk = on_pr[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(on_pr):
                link = f"{self._url()}{base}/issues/{number}/comments?per_page={per_page}"
                headers["Link"] = f'<{link}&page={page + 1}>; rel="next"'
            self._send(200, [self._comment_json(c) for c in chunk], headers)

        def _comment(self, method: str, comment_id: int, user: str) -> None:
            found = [c for c in state.comments if c["id"] == comment_id]
            if not found:
                return self._send(404, {"message": "Not Found"})
            comment = found[0]
            if method == "GET":
                return self._send(200, self._comment_json(comment))
            if comment["user"] != user:
                return self._send(403, {"message": "Resource not accessible by integration"})
            if method == "PATCH":
                comment["body"] = self._body().get("body", comment["body"])
                comment["updates"] += 1
                state.save()
                return self._send(200, self._comment_json(comment))
            if method == "DELETE":
                state.comments.remove(comment)
                state.save()
                return self._send(204)
            return self._send(405, {"message": "Method Not Allowed"})

        def _body(self) -> dict[str, Any]:
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY)
            try:
                data = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        def do_GET(self) -> None:
            if "/actions/artifacts/" in self.path and self.path.endswith("/zip"):
                if self._user() is None:
                    return self._send(401, {"message": "Bad credentials"})
                run, name = self.path.split("/actions/artifacts/")[1].split("/")[:2]
                return self._send(
                    302, None, {"Location": f"{self._storage()}/storage/{run}/{name}"}
                )
            self._handle("GET")

        def _storage(self) -> str:
            # "another host" for the redirect: the same server by its other loopback name.
            return f"http://localhost:{self.server.server_address[1]}"

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


class FakeGitHub:
    """``with FakeGitHub(stub_root, repo) as github:`` serves on ``github.url`` until the end."""

    def __init__(self, root: Path, repo: str, tls: ssl.SSLContext | None = None) -> None:
        self.state = State(root=root, repo=repo)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "http" if tls is None else "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def add_comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        with self.state.lock:
            return self.state.add_comment(number, user, body)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
