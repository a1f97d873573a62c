"""The one HTTP client: every request modelci makes (MLflow's REST API, GitHub's API, Prometheus,
the smoke test) goes through ``request``, over ``requests`` (already installed with MLflow and
DVC; docs/development.md has the measured comparison with httpx).

- a timeout on every connect and read;
- bounded retries, only of idempotent requests, only when nothing answered or a gateway did
  (502, 503, 504);
- a cap on the bytes read from an answer, checked while reading;
- redirects followed here (at most ``MAX_REDIRECTS``), to http(s) only, and the
  ``Authorization`` header sent only to the origin (scheme, host and port) it was given for;
- no credentials from ``~/.netrc``: a request carries exactly the authorization it was given.

An answer of any status is returned: what a status means is the caller's business.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelci.errors import ModelCIError

if TYPE_CHECKING:
    import requests

MAX_BYTES = 10_000_000
MAX_REDIRECTS = 5
RETRY_STATUSES = (502, 503, 504)
IDEMPOTENT = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
USER_AGENT = "modelci"


class HttpError(ModelCIError):
    """Nothing answered, the answer broke a bound, or the URL is refused."""


@dataclass(frozen=True)
class Response:
    """One answer: its status, headers (case-insensitive), body and final URL."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self, limit: int | None = None) -> str:
        return self.body[:limit].decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        return json.loads(self.body) if self.body else None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def shown(url: str) -> str:
    """A URL as an error line shows it: no query (it may carry a token), no user info."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_session: requests.Session | None = None


def _client() -> requests.Session:
    """One pooled session per process (imported on first use: ``requests`` costs ~0.1 s)."""
    global _session
    if _session is None:
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        _session = session
    return _session


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that changes nothing: given one, ``requests`` consults no ``~/.netrc``."""
    return request


def _read(answer: requests.Response, max_bytes: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_content(65536):
        size += len(chunk)
        if size > max_bytes:
            raise HttpError(f"{shown(url)}: answer larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _redirect(method: str, status: int, body: bytes | None) -> tuple[str, bytes | None]:
    """The method and body of the request that follows a redirect (as browsers and urllib do)."""
    if status == 303 or (status in (301, 302) and method == "POST"):
        return ("HEAD" if method == "HEAD" else "GET"), None
    return method, body


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    json_body: Any = None,
    authorization: str = "",
    timeout: float = 30.0,
    max_bytes: int = MAX_BYTES,
    retries: int = 0,
    backoff: float = 0.5,
) -> Response:
    """One HTTP exchange, redirects followed; raises HttpError when nothing usable answered.

    ``authorization`` is the ``Authorization`` header's value, sent to ``url``'s origin only;
    ``json_body`` is sent as JSON. ``retries`` more attempts are made (idempotent methods only)
    when the connection fails or a gateway answers 502/503/504, ``backoff`` doubling between them.
    """
    import requests

    method = method.upper()
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    trusted = origin(url)
    attempts = 1 + (max(0, retries) if method in IDEMPOTENT else 0)
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        current, verb, data = url, method, body
        for _ in range(MAX_REDIRECTS + 1):
            if urllib.parse.urlsplit(current).scheme not in ("http", "https"):
                raise HttpError(f"refusing a non-http(s) URL {shown(current)[:80]!r}")
            sent = dict(headers or {})
            if authorization and origin(current) == trusted:
                sent["Authorization"] = authorization
            try:
                answer = _client().request(
                    verb,
                    current,
                    headers=sent,
                    data=data,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    auth=_no_netrc,
                )
                with answer:
                    location = answer.headers.get("Location")
                    if answer.is_redirect and location:
                        current = urllib.parse.urljoin(current, location)
                        verb, data = _redirect(verb, answer.status_code, data)
                        continue
                    result = Response(
                        answer.status_code, answer.headers, _read(answer, max_bytes, current),
                        current,
                    )  # fmt: skip
            except requests.RequestException as error:
                problem = f"{shown(current)}: {_reason(error)}"
                break
            if result.status in RETRY_STATUSES and attempt + 1 < attempts:
                problem = f"{shown(current)}: HTTP {result.status}"
                break
            return result
        else:
            raise HttpError(f"{shown(url)}: more than {MAX_REDIRECTS} redirects")
    raise HttpError(problem)


def _reason(error: Exception) -> str:
    """Why nothing answered, on one line: the OS's words when it gave some (``Connection
    refused``), else ``requests``' own first line."""
    import re

    import requests

    if isinstance(error, requests.Timeout):
        return "timed out"
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return (found.group(1) if found else text.splitlines()[0] if text else repr(error))[:300]
