"""The monitor's GitHub side (``modelci.github_api``): one issue per model, the retrain PR.

``sync_issue`` keeps exactly one open issue per model, found by a hidden marker in its body
(``<!-- modelci-monitor: MODEL -->``), among the open issues carrying the ``LABEL`` label: opened
on the first drifted window, its body replaced by the latest report on later ones, a comment and
closed when a window is clean again. ``open_or_update_pr`` opens the retraining pull request, or
updates the body of the one already open from the same branch.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from modelci.github_api import GitHub

LABEL = "modelci-monitor"
MAX_BODY = 60_000  # GitHub refuses issue and PR bodies over 65,536 characters


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
