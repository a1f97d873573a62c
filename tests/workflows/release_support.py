"""The release workflow's surroundings under act: a fake GitHub API and deployed endpoint on
127.0.0.1, the session's real ``mlflow server`` (PostgreSQL + S3), and the push event. Shared by
the release tests of this repository's model and of an ``init``-generated repository.

Every ``/repos/...`` request and its answer are checked against GitHub's OpenAPI description
(``openapi_check``, as ``fake_github`` is); a violation fails the module's tests at teardown."""

from __future__ import annotations

import io
import json
import os
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.http_support import serve_in_thread
from tests.integration.registry_support import Backend, MlflowServer
from tests.workflows import github_shapes as shapes
from tests.workflows import harness, openapi_check
from tests.workflows.harness import REPO_SLUG

RELEASE_BIN = harness.STUBS / "release-bin"
HEAD = "b" * 40


@dataclass
class Fake:
    """State of the fake GitHub API and deployed endpoint."""

    healthy: bool = True
    sha256: str = ""  # what the deployed endpoint's /model reports
    reports: dict[str, str] = field(default_factory=dict)  # merge commit -> reviewed sha256
    # projects whose model job's artifact (modelci-report-<project>) the PR run also holds
    projects: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def _handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        operation: openapi_check.Operation | None = None

        def _send(
            self,
            code: int,
            body: Any,
            raw: bytes | None = None,
            headers: dict[str, str] | None = None,
        ) -> None:
            data = raw if raw is not None else json.dumps(body).encode()
            if self.operation is not None:
                problems = openapi_check.spec().check_response(self.operation, code, data)
                fake.violations += [f"the fake's response: {p}" for p in problems]
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            base = f"/repos/{REPO_SLUG}"
            if path.startswith("/repos/"):
                checked = openapi_check.spec().check_request(
                    "GET", path, urllib.parse.parse_qs(query), None
                )
                fake.violations += [f"the request: {p}" for p in checked.problems]
                self.operation = checked.operation
            if path == "/ready":
                self._send(200 if fake.healthy else 503, {"ready": fake.healthy})
            elif path == "/model":
                self._send(200, {"sha256": fake.sha256})
            elif path.startswith(f"{base}/commits/") and path.endswith("/pulls"):
                commit = path.split("/")[-2]
                if commit not in fake.reports:
                    self._send(200, [])
                else:
                    self._send(200, [shapes.pull_of_commit(REPO_SLUG, 7, HEAD, commit)])
            elif path == f"{base}/actions/workflows/pr.yml/runs":
                run = shapes.workflow_run(
                    1001, "pull_request", "success", HEAD, ".github/workflows/pr.yml"
                )
                self._send(200, {"total_count": 1, "workflow_runs": [run]})
            elif path == f"{base}/actions/runs/1001/artifacts":
                host = f"http://127.0.0.1:{self.server.server_address[1]}"
                names = ["modelci-report", *(f"modelci-report-{p}" for p in fake.projects)]
                artifacts = [
                    shapes.artifact(REPO_SLUG, 11 + number, name, 1000, host)
                    for number, name in enumerate(names)
                ]
                self._send(200, {"total_count": len(artifacts), "artifacts": artifacts})
            elif path.startswith(f"{base}/actions/artifacts/") and path.endswith("/zip"):
                host = f"http://127.0.0.1:{self.server.server_address[1]}"
                self._send(302, None, b"", {"Location": f"{host}/zip"})
            elif path == "/zip":
                self._send(200, None, self._zip())
            else:
                self._send(404, {"message": "Not Found"})

        def _zip(self) -> bytes:
            sha = next(iter(fake.reports.values())) if len(fake.reports) == 1 else ""
            commit = os.environ.get("MODELCI_TEST_COMMIT", "")
            sha = fake.reports.get(commit, sha)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as zf:
                zf.writestr("report.json", json.dumps({"model": {"sha256": sha}}))
                zf.writestr("metadata.json", json.dumps({"pr_number": 7, "head_sha": HEAD}))
            return buffer.getvalue()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._send(200 if fake.healthy else 500, {"predictions": [1, 0]})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Fake, str]]:
    if not openapi_check.available():
        pytest.skip("GitHub's OpenAPI description is not installed: run `make openapi`")
    state = Fake()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = serve_in_thread(httpd)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not state.violations, "\n".join(state.violations[:10])


@pytest.fixture(scope="module")
def server(mlflow_backend: Backend) -> MlflowServer:
    """The session's MLflow server on PostgreSQL + S3 (each repository has its own model name)."""
    return mlflow_backend.server


def push_event(sha: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "head_commit": {"id": sha, "message": "merge"},
        "repository": {
            "full_name": REPO_SLUG,
            "name": "example-model",
            "owner": {"login": "modelci"},
            "default_branch": "main",
        },
        "pusher": {"name": "alice"},
    }
