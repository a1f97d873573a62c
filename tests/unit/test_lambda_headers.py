"""The Lambda adapter on header values and names that no Latin-1 encoding holds: a value is
passed on as UTF-8, a name that is not an HTTP token is answered 400, neither raises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelci.deploy import lambda_handler

pytestmark = pytest.mark.unit

V2: dict[str, Any] = {
    "version": "2.0",
    "rawPath": "/ready",
    "rawQueryString": "q=✓",
    "headers": {"host": "a1b2.lambda-url.eu-west-1.on.aws", "x-note": "naïve — ✓"},
    "requestContext": {"http": {"method": "GET", "sourceIp": "198.51.100.7"}},
}
V1: dict[str, Any] = {
    "httpMethod": "GET",
    "path": "/ready",
    "multiValueHeaders": {"X-Note": ["☃"], "Host": ["abc.execute-api.eu-west-1.amazonaws.com"]},
    "requestContext": {"identity": {"sourceIp": "198.51.100.7"}},
}


def test_header_values_outside_latin_1_reach_the_app_as_utf_8() -> None:
    v2 = lambda_handler.scope_of(V2)
    assert (b"x-note", "naïve — ✓".encode()) in v2["headers"]
    assert v2["query_string"] == "q=✓".encode()
    v1 = lambda_handler.scope_of(V1)
    assert (b"x-note", "☃".encode()) in v1["headers"]


@pytest.mark.parametrize("event", [V1, V2])
def test_a_header_name_that_is_not_a_token_is_answered_400(
    event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_app() -> Any:
        raise AssertionError("the app was built for an event that is not HTTP")

    monkeypatch.setattr(lambda_handler, "_app", no_app)
    key = "multiValueHeaders" if "multiValueHeaders" in event else "headers"
    value: Any = ["1"] if key == "multiValueHeaders" else "1"
    bad = {**event, key: {**event[key], "x-✓": value}}
    answer = lambda_handler.handler(bad, None)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"]) == {
        "error_code": "BAD_REQUEST",
        "message": "header name 'x-✓' is not an HTTP token",
    }
