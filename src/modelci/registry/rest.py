"""Read the MLflow Model Registry of a tracking server through its REST API (``modelci._http``).

Importing MLflow takes seconds (most of ``modelci registry status``'s former 11-14 s); the three
reads the
registry commands make (search versions, get a version, resolve an alias) are three GET endpoints
of the documented REST API (``/api/2.0/mlflow/...``), so a read-only command never imports it.
Credentials follow MLflow's own variables: ``MLFLOW_TRACKING_TOKEN`` (bearer) or
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic).
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from http import HTTPStatus
from typing import Any

from modelci import _http

PAGE_SIZE = 1000


class RestError(Exception):
    """An error answer of the server; ``error_code`` as MLflow's ``MlflowException`` has it."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {error_code}: {message}" if status else message)
        self.status = status
        self.error_code = error_code


def _authorization() -> str:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if token:
        return f"Bearer {token}"
    if user:
        secret = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        return "Basic " + base64.b64encode(secret).decode()
    return ""


def _error(answer: _http.Response) -> RestError:
    try:
        body = answer.json() or {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("error_code") or f"HTTP_{answer.status}")
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "error"
    message = str(body.get("message") or reason).splitlines()[0][:300]
    return RestError(answer.status, code, message)


class RestReader:
    """GET requests against ``{uri}/api/2.0/mlflow``; answers are MLflow's JSON objects."""

    def __init__(self, uri: str, timeout: float = 15.0) -> None:
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self.timeout = timeout

    def get(self, endpoint: str, **params: str) -> dict[str, Any]:
        url = self.base + endpoint + "?" + urllib.parse.urlencode(params)
        try:
            response = _http.request(
                "GET",
                url,
                headers={"Accept": "application/json"},
                authorization=_authorization(),
                timeout=self.timeout,
                retries=1,
            )
        except _http.HttpError as error:
            raise RestError(0, "UNREACHABLE", str(error)) from None
        if not response.ok:
            raise _error(response)
        try:
            answer = response.json()
        except ValueError:
            raise RestError(response.status, "BAD_RESPONSE", f"{endpoint}: not JSON") from None
        if not isinstance(answer, dict):
            raise RestError(200, "BAD_RESPONSE", f"{endpoint}: expected a JSON object")
        return answer

    def search_versions(self, filter_string: str) -> list[dict[str, Any]]:
        """Every model version matching ``filter_string``, following the page tokens."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"filter": filter_string, "max_results": str(PAGE_SIZE)}
            if token:
                params["page_token"] = token
            page = self.get("model-versions/search", **params)
            found += page.get("model_versions", [])
            token = str(page.get("next_page_token") or "")
            if not token:
                return found

    def get_version(self, name: str, version: str) -> dict[str, Any]:
        answer = self.get("model-versions/get", name=name, version=version)
        return dict(answer["model_version"])

    def version_by_alias(self, name: str, alias: str) -> dict[str, Any]:
        answer = self.get("registered-models/alias", name=name, alias=alias)
        return dict(answer["model_version"])


def tags_of(version: dict[str, Any]) -> dict[str, str]:
    """The ``[{key, value}]`` tag list of a REST model version as a mapping."""
    return {str(t["key"]): str(t.get("value", "")) for t in version.get("tags", [])}
