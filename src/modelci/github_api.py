"""The one GitHub REST API client (over ``modelci._http``): the monitor's issue and retraining pull
request, the release's search for the reviewed report, the dispatch of a pull request's CI.

Every call goes to ``{api}/repos/OWNER/NAME/...`` (or to a full URL on the same API, such as a
``Link`` header's next page or an artifact's download URL); the token goes to the API's origin
only (an artifact download redirects to storage that never sees it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from modelci import _http
from modelci.errors import ModelCIError

MAX_RESPONSE = 10_000_000
MAX_PAGES = 20
TIMEOUT_S = 30.0
GET_RETRIES = 2
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
JSON = "application/vnd.github+json"


class GitHubError(ModelCIError):
    """The GitHub API refused a request or could not be reached."""


def api_url() -> str:
    """``MODELCI_GITHUB_API_URL`` (a test's stand-in), else the runner's ``GITHUB_API_URL``."""
    return (
        os.environ.get("MODELCI_GITHUB_API_URL")
        or os.environ.get("GITHUB_API_URL")
        or "https://api.github.com"
    )


@dataclass(frozen=True)
class GitHub:
    """One repository on one API. ``token`` is required unless ``anonymous`` (public reads)."""

    api: str
    repo: str
    token: str
    anonymous: bool = False

    def __post_init__(self) -> None:
        if not REPO_RE.match(self.repo):
            raise GitHubError(f"--repo: expected OWNER/NAME, got {self.repo[:80]!r}")
        if not self.api.startswith(("https://", "http://")):
            raise GitHubError(f"refusing a non-http(s) API URL {self.api[:80]!r}")
        if not self.token and not self.anonymous:
            raise GitHubError("no GitHub token: set GITHUB_TOKEN (the workflow passes its token)")

    def _url(self, path: str) -> str:
        url = path if path.startswith("http") else f"{self.api}/repos/{self.repo}{path}"
        if not url.startswith(self.api):
            raise GitHubError(f"refusing to follow a link off the API: {url[:80]!r}")
        return url

    def call(
        self, method: str, path: str, body: Any = None, accept: str = JSON,
        max_bytes: int = MAX_RESPONSE,
    ) -> _http.Response:  # fmt: skip
        """One call, its answer (2xx) or GitHubError naming the call and GitHub's reason.
        ``path`` is under ``/repos/OWNER/NAME`` (starting with ``/``) or a full URL on the API."""
        url = self._url(path)
        where = f"GitHub API {method} {url.split('?')[0]}"
        try:
            answer = _http.request(
                method,
                url,
                headers={"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"},
                json_body=body,
                authorization=f"Bearer {self.token}" if self.token else "",
                timeout=TIMEOUT_S,
                max_bytes=max_bytes,
                retries=GET_RETRIES if method == "GET" else 0,
            )
        except _http.HttpError as error:
            raise GitHubError(f"{where}: {error}") from None
        if not answer.ok:
            raise GitHubError(f"{where}: HTTP {answer.status}: {answer.text(2000)[:300]}")
        return answer

    def request(self, method: str, path: str, body: Any = None) -> tuple[Any, str]:
        """One JSON call; the parsed answer and its ``Link`` header."""
        answer = self.call(method, path, body)
        try:
            return answer.json(), answer.headers.get("Link", "")
        except (ValueError, RecursionError):
            where = f"GitHub API {method} {self._url(path).split('?')[0]}"
            raise GitHubError(f"{where}: the response is not JSON") from None

    def list_all(self, path: str) -> list[Any]:
        """Every item of a paginated list, following ``rel="next"`` links (bounded)."""
        items: list[Any] = []
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page, link = self.request("GET", url)
            if not isinstance(page, list):
                raise GitHubError(f"GitHub API GET {path}: expected a list")
            items.extend(page)
            found = re.search(r'<([^>]+)>;\s*rel="next"', link)
            url = found.group(1) if found else None
        return items

    def download(self, url: str, max_bytes: int) -> bytes:
        """The bytes at ``url`` on the API (an artifact's archive), at most ``max_bytes``."""
        return self.call("GET", url, accept="application/octet-stream", max_bytes=max_bytes).body
