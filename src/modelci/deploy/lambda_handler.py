"""AWS Lambda adapter: API Gateway (REST v1, HTTP API v2) and function-URL events become ASGI
calls on the same app ``modelci serve`` runs.

Point the function's handler at ``modelci.deploy.lambda_handler.handler`` (docs/deploy.md). The
app is built once per execution environment, from the same ``MODELCI_*`` variables as
``modelci serve`` (model, params, sha256, limits), on the first event; every event then runs on
one event loop kept for the environment's lifetime. Responses whose content type is not text or
JSON go back base64-encoded, as API Gateway expects.

Header values and v2's raw query string arrive as JSON strings, which may hold any character:
they are encoded as UTF-8, the bytes a client sending them most likely sent (and what
``modelci serve`` would hand the app). A header name that is not a visible-ASCII token cannot
come from a valid HTTP request: the event is answered 400 without reaching the app.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
from typing import Any
from urllib.parse import urlencode

from modelci.errors import ModelCIError

Event = dict[str, Any]
_TEXT = ("text/", "application/json", "application/problem+json", "application/xml")

_state: dict[str, Any] = {}
# RFC 9110's token: the characters a header name may hold
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class BadEventError(ModelCIError, ValueError):
    """An event no valid HTTP request maps to; answered 400 with this message."""


def _app() -> Any:
    """The serving app of this execution environment, built on first use."""
    if "app" not in _state:
        from modelci.serving.commands import configure_logs, register, serve_config
        from modelci.serving.server import build_app

        parser = argparse.ArgumentParser(prog="modelci")
        register(parser.add_subparsers())
        args = parser.parse_args(["serve"])
        configure_logs(args)
        _state["app"] = build_app(serve_config(args))
        _state["loop"] = asyncio.new_event_loop()
    return _state["app"]


def _headers(event: Event) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[str, str]] = []
    multi = event.get("multiValueHeaders") or {}
    if multi:
        pairs = [(k, v) for k, values in multi.items() for v in values or ()]
    else:
        pairs = list((event.get("headers") or {}).items())
    if event.get("cookies"):  # HTTP API v2 moves Cookie headers here
        pairs.append(("cookie", "; ".join(event["cookies"])))
    for name, _ in pairs:
        if not _TOKEN.fullmatch(str(name)):
            raise BadEventError(f"header name {str(name)[:40]!r} is not an HTTP token")
    return [(str(k).lower().encode("ascii"), str(v).encode("utf-8")) for k, v in pairs]


def scope_of(event: Event) -> dict[str, Any]:
    """The ASGI HTTP scope of one API Gateway or function-URL event."""
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0":  # HTTP API v2 and function URLs
        http = context.get("http") or {}
        method = http.get("method", "GET")
        path = event.get("rawPath") or "/"
        query = (event.get("rawQueryString") or "").encode("utf-8")
        client = http.get("sourceIp", "")
    else:  # REST API (payload format 1.0)
        method = event.get("httpMethod", "GET")
        path = event.get("path") or "/"
        multi = event.get("multiValueQueryStringParameters") or {}
        single = event.get("queryStringParameters") or {}
        items = [(k, v) for k, vs in multi.items() for v in vs] if multi else list(single.items())
        query = urlencode(items).encode("latin-1")
        client = (context.get("identity") or {}).get("sourceIp", "")
    headers = _headers(event)
    host = next((v.decode("utf-8") for k, v in headers if k == b"host"), "lambda")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": (host, 443),
        "client": (client, 0),
    }


def _body(event: Event) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode("utf-8")


async def call(app: Any, event: Event) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run one request through ``app``: its status, headers and body."""
    request = {"type": "http.request", "body": _body(event), "more_body": False}
    sent = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return request

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope_of(event), receive, send)
    return status, headers, b"".join(chunks)


def response_of(
    event: Event, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> dict[str, Any]:
    """The Lambda proxy response in the event's payload format."""
    decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    kind = next((v for k, v in decoded if k.lower() == "content-type"), "")
    text = kind.startswith(_TEXT)
    payload: dict[str, Any] = {
        "statusCode": status,
        "body": body.decode("utf-8") if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }
    if event.get("version") == "2.0":  # v2 returns Set-Cookie headers as a list of its own
        cookies = [v for k, v in decoded if k.lower() == "set-cookie"]
        decoded = [(k, v) for k, v in decoded if k.lower() != "set-cookie"]
        if cookies:
            payload["cookies"] = cookies
    joined: dict[str, str] = {}
    for key, value in decoded:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    payload["headers"] = joined
    if event.get("version") != "2.0":
        multi: dict[str, list[str]] = {}
        for key, value in decoded:
            multi.setdefault(key, []).append(value)
        payload["multiValueHeaders"] = multi
    return payload


def handler(event: Event, context: Any) -> dict[str, Any]:
    """The Lambda entry point."""
    try:
        scope_of(event)
    except BadEventError as error:
        problem = {"error_code": "BAD_REQUEST", "message": str(error)}
        kind = [(b"content-type", b"application/json")]
        return response_of(event, 400, kind, json.dumps(problem).encode())
    app = _app()
    status, headers, body = _state["loop"].run_until_complete(call(app, event))
    return response_of(event, status, headers, body)
