"""The release smoke test: the endpoint is ready, serves the deployed model's bytes and predicts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelci import _http
from modelci.config import ReleaseParams
from modelci.deploy.errors import DeployError
from modelci.model_version import Version

SmokeCheck = Callable[[str], list[str]]
"""Runs the smoke test against a base URL: its notes, or DeployError."""


def request(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET (or POST ``body`` as JSON); the status and body, status 0 when nothing answered."""
    if not url.startswith(("http://", "https://")):
        raise DeployError(f"smoke URL must be http(s): {url[:80]!r}")
    try:
        answer = _http.request(
            "POST" if body is not None else "GET",
            url,
            headers={"Content-Type": "application/json"} if body is not None else {},
            body=body,
            timeout=timeout,
            max_bytes=1 << 20,
        )
    except _http.HttpError as error:
        return 0, str(error).rsplit(": ", 1)[-1].encode()
    return answer.status, answer.body


def smoke_test(
    base_url: str,
    version: Version,
    example: list[dict[str, Any]],
    attempts: int = 10,
    delay: float = 2.0,
) -> list[str]:
    """Raise DeployError unless the endpoint is ready, serves this model and predicts.

    Readiness and the served model are retried (``attempts`` x ``delay``): a server that follows
    the alias by polling may still serve the previous champion for a poll interval, and a new
    container needs a moment to start.
    """
    base = base_url.rstrip("/")
    problem = "not tried"
    notes: list[str] = []
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(delay)
        status, _body = request(f"{base}/ready")
        if status != 200:
            problem = f"{base}/ready did not answer 200 (last status {status})"
            continue
        status, body = request(f"{base}/model")
        if status == 200 and version.sha256:
            if version.sha256 not in body.decode("utf-8", "replace"):
                problem = (
                    f"{base}/model does not report the deployed model sha256 "
                    f"{version.sha256[:12]} (an old or a different model is being served)"
                )
                continue
            notes = [f"{base}/ready: 200", f"{base}/model: serves sha256 {version.sha256[:12]}"]
        else:
            notes = [f"{base}/ready: 200"]
        break
    else:
        raise DeployError(f"smoke test: {problem}")
    payload = json.dumps({"dataframe_records": example}).encode()
    status, body = request(f"{base}/invocations", payload)
    if status != 200:
        text = body.decode("utf-8", "replace")[:200]
        raise DeployError(f"smoke test: POST {base}/invocations answered {status}: {text}")
    notes.append(f"{base}/invocations: 200 on {len(example)} row(s)")
    return notes


def example_rows(params: ReleaseParams, test_path: Path, rows: int = 2) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(test_path)[params.data.features].head(rows)
    except (OSError, ValueError, KeyError) as error:
        raise DeployError(
            f"{test_path}: cannot read example rows for the smoke test ({error})"
        ) from None
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records
