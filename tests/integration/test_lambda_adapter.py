"""The AWS Lambda adapter, in process, on the serving app of the pipeline's model: events shaped
as the AWS documentation shows them (API Gateway REST v1, HTTP API v2, a function URL)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelci.config import load_service_params
from modelci.deploy import lambda_handler
from modelci.modelfile import load_model

pytestmark = pytest.mark.integration

# https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
REST_V1: dict[str, Any] = {
    "resource": "/{proxy+}",
    "path": "/predict",
    "httpMethod": "POST",
    "headers": {
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
    },
    "multiValueHeaders": {
        "Content-Type": ["application/json"],
        "Host": ["abc123.execute-api.eu-west-1.amazonaws.com"],
    },
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": "predict"},
    "stageVariables": None,
    "requestContext": {
        "resourceId": "2gxmpl",
        "resourcePath": "/{proxy+}",
        "httpMethod": "POST",
        "path": "/prod/predict",
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": "prod",
        "identity": {"sourceIp": "198.51.100.7", "userAgent": "curl/8.5.0"},
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "apiId": "abc123",
    },
    "body": "",
    "isBase64Encoded": False,
}
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
HTTP_V2: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/ready",
    "rawQueryString": "",
    "cookies": ["session=1"],
    "headers": {"host": "abc123.execute-api.eu-west-1.amazonaws.com", "user-agent": "curl/8.5.0"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {
            "method": "GET",
            "path": "/ready",
            "protocol": "HTTP/1.1",
            "sourceIp": "198.51.100.7",
            "userAgent": "curl/8.5.0",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "$default",
        "stage": "$default",
        "time": "10/Mar/2026:00:03:59 +0000",
        "timeEpoch": 1773101039000,
    },
    "isBase64Encoded": False,
}
# https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html (payload format 2.0)
FUNCTION_URL: dict[str, Any] = {
    **copy.deepcopy(HTTP_V2),
    "rawPath": "/invocations",
    "headers": {"content-type": "application/json", "host": "a1b2.lambda-url.eu-west-1.on.aws"},
    "requestContext": {
        **copy.deepcopy(HTTP_V2["requestContext"]),
        "domainName": "a1b2.lambda-url.eu-west-1.on.aws",
        "http": {
            **HTTP_V2["requestContext"]["http"],
            "method": "POST",
            "path": "/invocations",
        },
    },
    "isBase64Encoded": True,
}


@pytest.fixture
def handler(pipeline_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler with a fresh execution environment (the app is built on the first event)."""
    monkeypatch.setenv("MODELCI_MODEL_URI", str(pipeline_repo / "models/model.skops"))
    monkeypatch.setenv("MODELCI_PARAMS", str(pipeline_repo / "params.yaml"))
    state: dict[str, Any] = {}
    monkeypatch.setattr(lambda_handler, "_state", state)
    yield lambda_handler.handler
    if "loop" in state:
        state["loop"].close()


def _rows(repo: Path) -> list[dict[str, Any]]:
    params = load_service_params(repo / "params.yaml")
    frame = pd.read_parquet(repo / "data/prepared/test.parquet")[params.data.features].head(5)
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows


def test_rest_v1_and_function_url_events_predict_what_the_model_predicts(
    handler: Any, pipeline_repo: Path
) -> None:
    rows = _rows(pipeline_repo)
    params = load_service_params(pipeline_repo / "params.yaml")
    expected = load_model(pipeline_repo / "models/model.skops", params.trusted_types).predict(
        pd.DataFrame(rows)
    )
    rest = handler({**REST_V1, "body": json.dumps(rows)}, None)
    assert rest["statusCode"] == 200
    assert not rest["isBase64Encoded"]
    assert rest["multiValueHeaders"]["content-type"] == [rest["headers"]["content-type"]]
    assert json.loads(rest["body"])["predictions"] == expected.tolist()

    body = base64.b64encode(json.dumps({"dataframe_records": rows}).encode()).decode()
    url = handler({**FUNCTION_URL, "body": body}, None)
    assert url["statusCode"] == 200
    assert "multiValueHeaders" not in url
    assert json.loads(url["body"])["predictions"] == expected.tolist()


def test_http_api_v2_get_endpoints_and_errors(handler: Any) -> None:
    ready = handler(HTTP_V2, None)
    assert ready["statusCode"] == 200
    metrics = handler({**HTTP_V2, "rawPath": "/metrics"}, None)
    assert metrics["statusCode"] == 200
    assert 'path="/ready"' in metrics["body"]  # the same app served both events
    missing = handler({**HTTP_V2, "rawPath": "/nope"}, None)
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error_code"] == "NOT_FOUND"
    wrong = handler({**REST_V1, "httpMethod": "GET"}, None)
    assert wrong["statusCode"] == 405
    bad = handler({**REST_V1, "body": "{not json"}, None)
    assert bad["statusCode"] == 400


def test_scope_carries_query_headers_cookies_and_client() -> None:
    rest = lambda_handler.scope_of(
        {**REST_V1, "multiValueQueryStringParameters": {"a": ["1", "2"], "b": ["x y"]}}
    )
    assert rest["query_string"] == b"a=1&a=2&b=x+y"
    assert rest["client"] == ("198.51.100.7", 0)
    assert (b"content-type", b"application/json") in rest["headers"]
    v2 = lambda_handler.scope_of({**HTTP_V2, "rawQueryString": "limit=3"})
    assert v2["method"] == "GET"
    assert v2["path"] == "/ready"
    assert v2["query_string"] == b"limit=3"
    assert (b"cookie", b"session=1") in v2["headers"]
    assert v2["server"] == ("abc123.execute-api.eu-west-1.amazonaws.com", 443)
