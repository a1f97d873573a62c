"""The release workflow's surroundings under act: a fake GitHub API and deployed endpoint on
127.0.0.1, the session's real ``mlflow server`` (PostgreSQL + S3), and the push event. Shared by
the release tests of this repository's model and of an ``init``-generated repository."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.registry_support import Backend, MlflowServer
from tests.workflows import harness
from tests.workflows.harness import REPO_SLUG

RELEASE_BIN = harness.STUBS / "release-bin"
HEAD = "b" * 40


@dataclass
class Fake:
    """State of the fake GitHub API and deployed endpoint."""

    healthy: bool = True
    sha256: str = ""  # what the deployed endpoint's /model reports
    reports: dict[str, str] = field(default_factory=dict)  # merge commit -> reviewed sha256


def _handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: Any, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            base = f"/repos/{REPO_SLUG}"
            if path == "/ready":
                self._send(200 if fake.healthy else 503, {"ready": fake.healthy})
            elif path == "/model":
                self._send(200, {"sha256": fake.sha256})
            elif path.startswith(f"{base}/commits/") and path.endswith("/pulls"):
                commit = path.split("/")[-2]
                if commit not in fake.reports:
                    self._send(200, [])
                else:
                    pr = {"number": 7, "merge_commit_sha": commit, "head": {"sha": HEAD}}
                    self._send(200, [pr])
            elif path == f"{base}/actions/workflows/pr.yml/runs":
                run = {
                    "id": 1001,
                    "event": "pull_request",
                    "conclusion": "success",
                    "head_sha": HEAD,
                    "path": ".github/workflows/pr.yml",
                }
                self._send(200, {"workflow_runs": [run]})
            elif path == f"{base}/actions/runs/1001/artifacts":
                host = f"http://127.0.0.1:{self.server.server_address[1]}"
                self._send(
                    200, {"artifacts": [{"archive_download_url": f"{host}/zip", "expired": False}]}
                )
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
    state = Fake()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


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
