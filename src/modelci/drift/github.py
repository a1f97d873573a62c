"""The monitor's GitHub side over the REST API (stdlib HTTP): one issue per model, the retrain PR.

``sync_issue`` keeps exactly one open issue per model, found by a hidden marker in its body
(``<!-- modelci-monitor: MODEL -->``), among the open issues carrying the ``LABEL`` label: opened
on the first drifted window, its body replaced by the latest report on later ones, a comment and
closed when a window is clean again. ``open_or_update_pr`` opens the retraining pull request, or
updates the body of the one already open from the same branch.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from modelci.errors import ModelCIError

LABEL = "modelci-monitor"
MAX_BODY = 60_000  # GitHub refuses issue and PR bodies over 65,536 characters
MAX_RESPONSE = 10_000_000
MAX_PAGES = 20
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


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
    api: str
    repo: str
    token: str

    def __post_init__(self) -> None:
        if not REPO_RE.match(self.repo):
            raise GitHubError(f"--repo: expected OWNER/NAME, got {self.repo[:80]!r}")
        if not self.api.startswith(("https://", "http://")):
            raise GitHubError(f"refusing a non-http(s) API URL {self.api[:80]!r}")
        if not self.token:
            raise GitHubError("no GitHub token: set GITHUB_TOKEN (the workflow passes its token)")

    def request(self, method: str, path: str, body: Any = None) -> tuple[Any, str]:
        """One call; returns the parsed JSON and the ``Link`` header. ``path`` is either under
        ``/repos/OWNER/NAME`` (starting with ``/``) or a full URL from a ``Link`` header."""
        url = path if path.startswith("http") else f"{self.api}/repos/{self.repo}{path}"
        if not url.startswith(self.api):
            raise GitHubError(f"refusing to follow a link off the API: {url[:80]!r}")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __post_init__
            url,
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        where = f"GitHub API {method} {url.split('?')[0]}"
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read(MAX_RESPONSE + 1)
                link = response.headers.get("Link", "")
        except urllib.error.HTTPError as error:
            detail = error.read(2000).decode("utf-8", "replace")
            raise GitHubError(f"{where}: HTTP {error.code}: {detail[:300]}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            raise GitHubError(f"{where}: {error}") from None
        if len(raw) > MAX_RESPONSE:
            raise GitHubError(f"{where}: response over {MAX_RESPONSE} bytes")
        try:
            return (json.loads(raw) if raw else None), link
        except ValueError:
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


def marker(model: str) -> str:
    return f"<!-- modelci-monitor: {model} -->"


def _body(report: str, model: str, run_url: str) -> str:
    footer = f"\n\n---\nLatest check: {run_url}\n" if run_url else "\n"
    room = MAX_BODY - len(footer) - 200
    text = report if len(report) <= room else report[:room] + "\n\n… (truncated)"
    return f"{marker(model)}\n{text}{footer}"


def find_issue(github: GitHub, model: str) -> dict[str, Any] | None:
    """The open monitoring issue of ``model`` (pull requests, which the API lists too, excluded)."""
    query = urllib.parse.urlencode({"state": "open", "labels": LABEL, "per_page": 100})
    for issue in github.list_all(f"/issues?{query}"):
        body = issue.get("body") or ""
        if "pull_request" not in issue and marker(model) in body:
            return dict(issue)
    return None


def sync_issue(
    github: GitHub, model: str, alert: bool, title: str, report: str, run_url: str
) -> tuple[str, int | None]:
    """Open, update or close the model's issue; returns (action, issue number)."""
    issue = find_issue(github, model)
    if alert:
        body = _body(report, model, run_url)
        if issue is None:
            created, _ = github.request(
                "POST", "/issues", {"title": title, "body": body, "labels": [LABEL]}
            )
            return "opened", int(created["number"])
        github.request("PATCH", f"/issues/{issue['number']}", {"title": title, "body": body})
        return "updated", int(issue["number"])
    if issue is None:
        return "none", None
    number = int(issue["number"])
    comment = "The latest window is within the thresholds: closing." + (
        f" ({run_url})" if run_url else ""
    )
    github.request("POST", f"/issues/{number}/comments", {"body": comment})
    github.request("PATCH", f"/issues/{number}", {"state": "closed", "state_reason": "completed"})
    return "closed", number


def open_or_update_pr(
    github: GitHub, head: str, base: str, title: str, body: str
) -> tuple[str, int]:
    """Open a PR from branch ``head`` into ``base``, or update the one already open."""
    owner = github.repo.split("/")[0]
    query = urllib.parse.urlencode({"state": "open", "head": f"{owner}:{head}", "base": base})
    existing = [pr for pr in github.list_all(f"/pulls?{query}") if pr["head"]["ref"] == head]
    text = body if len(body) <= MAX_BODY else body[:MAX_BODY] + "\n\n… (truncated)"
    if existing:
        number = int(existing[0]["number"])
        github.request("PATCH", f"/pulls/{number}", {"title": title, "body": text})
        return "updated", number
    created, _ = github.request(
        "POST", "/pulls", {"title": title, "body": text, "head": head, "base": base}
    )
    return "opened", int(created["number"])
