"""The registry's REST reads against a recording stand-in for an MLflow server (127.0.0.1):
pagination, not-found answers, error answers, credentials; and a read that must not create a
store. The real server's answers are exercised by ``test_registry.py``."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelci.errors import TrackingError
from modelci.registry.core import Registry, RegistryError
from tests.http_support import serve_in_thread

pytestmark = pytest.mark.unit


def _version(number: int) -> dict[str, Any]:
    return {
        "name": "m",
        "version": str(number),
        "run_id": f"run{number}",
        "creation_timestamp": 1000 + number,
        "tags": [{"key": "modelci.gate", "value": "passed"}],
    }


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], str]]] = []

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.seen.append((url.path, query, self.headers.get("Authorization", "")))
        if url.path == "/health":
            self._send(200, {})
        elif url.path.endswith("/model-versions/search"):
            if query.get("filter", "").startswith("name='denied'"):
                self._send(403, {"error_code": "PERMISSION_DENIED", "message": "not yours"})
            elif query.get("page_token") == "p2":
                self._send(200, {"model_versions": [_version(2)]})
            else:
                self._send(200, {"model_versions": [_version(1)], "next_page_token": "p2"})
        elif url.path.endswith("/registered-models/alias"):
            self._send(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias"})
        else:
            self._send(500, {"message": "unexpected"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Handler]]:
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = serve_in_thread(httpd)
    thread.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    try:
        yield handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_reads_follow_pages_and_send_the_token(server: type[_Handler]) -> None:
    reg = Registry("m", "champion", "previous")
    assert [(v.version, v.run_id, v.gate) for v in reg.versions()] == [
        (1, "run1", "passed"),
        (2, "run2", "passed"),
    ]
    assert reg.alias("champion") is None  # RESOURCE_DOES_NOT_EXIST: no such alias
    searches = [s for s in server.seen if s[0].endswith("/model-versions/search")]
    assert [s[1].get("page_token") for s in searches] == [None, "p2"]
    assert {s[2] for s in server.seen if s[0] != "/health"} == {"Bearer t0ken"}


def test_an_error_answer_names_the_server_and_the_step(server: type[_Handler]) -> None:
    reg = Registry("denied", "champion", "previous")
    with pytest.raises(TrackingError, match=r"at http://127\.0\.0\.1:\d+: listing versions of "):
        reg.versions()
    with pytest.raises(TrackingError, match="PERMISSION_DENIED: not yours"):
        reg.versions()


def test_a_read_only_registry_never_creates_a_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(RegistryError, match=r"MLFLOW_TRACKING_URI is unset and .*mlflow\.db"):
        Registry("m", "champion", "previous", read_only=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(RegistryError, match=r"other\.db does not exist"):
        Registry("m", "champion", "previous", read_only=True)
    assert list(tmp_path.iterdir()) == []
