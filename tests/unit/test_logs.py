"""The server's log records: plain text lines as before by default, JSON lines on request, the
access log only when asked; no print calls left in the serving package."""

from __future__ import annotations

import argparse
import ast
import io
import json
import logging

import pytest

from modelci import logs
from modelci.serving.commands import register
from tests.sources import PACKAGE, package_trees

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_loggers(server_logs: None) -> None:
    """configure() changes process-wide loggers: ``server_logs`` puts them back."""


def test_text_lines_read_as_before() -> None:
    out = io.StringIO()
    logs.configure("modelci serve", "text", stream=out)
    logging.getLogger("modelci.serving.server").info("draining in-flight requests")
    logging.getLogger("modelci.serving.app").debug("not shown below INFO")
    assert out.getvalue() == "modelci serve: draining in-flight requests\n"


def test_json_lines_carry_level_logger_and_message() -> None:
    out = io.StringIO()
    logs.configure("modelci serve", "json", stream=out)
    logging.getLogger("modelci.serving.app").warning("reload (%s) failed: %s", "admin", "busy")
    entry = json.loads(out.getvalue())
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "modelci.serving.app"
    assert entry["message"] == "reload (admin) failed: busy"
    assert entry["time"].endswith("+00:00")


def test_a_json_access_record_has_the_request_s_fields() -> None:
    out = io.StringIO()
    logs.configure("modelci serve", "json", stream=out)
    # uvicorn's access logger calls it so: format and (client, method, path, version, status)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/predict", "1.1", 200
    )
    entry = json.loads(out.getvalue())
    assert entry["message"] == '127.0.0.1:5000 - "POST /predict HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/predict", 200)


def test_the_environment_chooses_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    assert logs.log_format() == "json"
    assert logs.log_format("text") == "text"
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    with pytest.raises(ValueError, match="'xml': expected text or json"):
        logs.log_format()


def test_configuring_twice_keeps_one_handler() -> None:
    first = logs.configure("modelci serve", "text", stream=io.StringIO())
    second = logs.configure("modelci serve", "json", stream=io.StringIO())
    handlers = logging.getLogger("modelci").handlers
    assert second in handlers
    assert first not in handlers


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modelci")
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_serve_options_and_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _serve_args()
    assert (args.log_format, args.access_log) == ("text", False)
    args = _serve_args("--log-format", "json", "--access-log")
    assert (args.log_format, args.access_log) == ("json", True)
    monkeypatch.setenv("MODELCI_LOG_FORMAT", "json")
    monkeypatch.setenv("MODELCI_ACCESS_LOG", "1")
    args = _serve_args()
    assert (args.log_format, args.access_log) == ("json", True)


def test_the_serving_package_prints_nothing() -> None:
    """Its messages are log records (stdout/stderr belong to the handler)."""
    printing = []
    serving = PACKAGE / "serving"
    for path, tree in package_trees().items():
        if not (path.is_relative_to(serving) or path == PACKAGE / "deploy/lambda_handler.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "print":
                printing.append(f"{path.name}:{node.lineno}")
    assert printing == []
