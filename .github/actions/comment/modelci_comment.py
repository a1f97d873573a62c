#!/usr/bin/env python3
"""Validate a modelci report artifact and write the pull-request comment to post. Stdlib only.

Runs in the comment workflow (``workflow_run``), which holds a token that can write to pull
requests. The artifact was produced by a job that ran the pull request's code, so everything in
it is untrusted input:

- the pull-request number in ``metadata.json`` must be an integer equal to a pull request of the
  run that triggered this workflow (from GitHub's own event payload, or for pull requests from
  forks, whose runs list none, from the API by head repository, branch and commit);
- the artifact is bounded in size and file count, and symlinks or special files are refused;
- plots are copied only if their name is plain and their bytes are a PNG of bounded size;
- the Markdown is defused before CML sees it: CML uploads every local file that a Markdown link,
  image or link definition points to (``![x](/proc/self/environ)`` would publish the runner's
  environment), so no link syntax survives except the plot images re-inserted here, raw HTML is
  limited to a few attribute-free formatting tags, @mentions do not notify, and the text is cut to
  fit GitHub's comment limit.

Usage: ``modelci_comment.py validate --artifact DIR --out DIR [--event FILE] [--max-bytes N]``.
Writes ``DIR/comment.md`` and ``DIR/plots/*.png`` and, to ``$GITHUB_OUTPUT``, ``pr-number`` and
``comment``. Exits 1 with one ``error:`` line when the artifact is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 5_000_000
MAX_FILES = 64
MAX_METADATA_BYTES = 4_096
MAX_PLOT_BYTES = 2_000_000
# GitHub refuses comments over 65,536 characters; CML appends a watermark and replaces each plot
# path with a longer URL, so the body keeps a margin.
MAX_COMMENT_CHARS = 60_000
MAX_PR_NUMBER = 2**31 - 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.png")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
ZWSP = "\u200b"
# Raw HTML allowed through: formatting tags without attributes (nothing that loads a resource).
SAFE_TAGS = "details|summary|br|sub|sup|b|i|em|strong|code|pre|kbd|p|hr|ul|ol|li"
_TAG_OR_LT = re.compile(rf"(</?(?:{SAFE_TAGS})\s*/?>)|<", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_PLOT_IMAGE = re.compile(r"!\[([^\[\]\n]{0,300})\]\((plots/[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.png)\)")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")

Api = Callable[[str], Any]


class ValidationError(Exception):
    """The artifact or the event is refused; the message says why."""


@dataclass(frozen=True)
class Trigger:
    """The workflow run that triggered the comment workflow, from GitHub's event payload."""

    run_id: int
    head_sha: str
    head_branch: str
    head_owner: str
    head_repo: str
    repository: str
    html_url: str
    conclusion: str
    pull_requests: tuple[int, ...]


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def read_trigger(event: Any) -> Trigger:
    """The triggering run's identity; refuses events that are not a pull request's workflow_run."""
    run = _get(event, "workflow_run")
    if not isinstance(run, dict):
        raise ValidationError("the event is not a workflow_run event")
    if run.get("event") != "pull_request":
        raise ValidationError(
            f"the triggering run was started by {run.get('event')!r}, not by a pull request"
        )
    head_sha = run.get("head_sha")
    if not isinstance(head_sha, str) or not COMMIT_SHA.fullmatch(head_sha):
        raise ValidationError("the triggering run has no valid head_sha")
    run_id = run.get("id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        raise ValidationError("the triggering run has no integer id")
    html_url = run.get("html_url")
    if not isinstance(html_url, str) or not html_url.startswith("https://"):
        html_url = ""
    repository = _get(event, "repository", "full_name")
    base_url = _get(event, "repository", "url")
    numbers = []
    for entry in run.get("pull_requests") or []:
        number = _get(entry, "number")
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        entry_sha = _get(entry, "head", "sha")
        if entry_sha is not None and entry_sha != head_sha:
            continue
        entry_base = _get(entry, "base", "repo", "url")
        if base_url and entry_base and entry_base != base_url:
            continue
        numbers.append(number)
    return Trigger(
        run_id=run_id,
        head_sha=head_sha,
        head_branch=str(run.get("head_branch") or ""),
        head_owner=str(_get(run, "head_repository", "owner", "login") or ""),
        head_repo=str(_get(run, "head_repository", "full_name") or ""),
        repository=str(repository or ""),
        html_url=html_url,
        conclusion=str(run.get("conclusion") or "unknown"),
        pull_requests=tuple(numbers),
    )


def github_api(token: str, api_url: str) -> Api:
    """A GET helper for the GitHub REST API (used only for runs of pull requests from forks)."""

    def get(path: str) -> Any:
        if not api_url.startswith("https://") and not api_url.startswith("http://127.0.0.1"):
            raise ValidationError(f"refusing a non-https GitHub API URL: {api_url!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            api_url.rstrip("/") + path,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return json.loads(response.read(5_000_000))

    return get


def expected_pr_numbers(trigger: Trigger, api: Api | None) -> set[int]:
    """Pull requests whose head is the triggering run's commit, in this repository."""
    if trigger.pull_requests:
        return set(trigger.pull_requests)
    # GitHub lists no pull requests on runs from forks: look them up by head owner:branch.
    if api is None:
        raise ValidationError(
            "the triggering run lists no pull request and no token is available to look it up"
        )
    if not trigger.repository or not trigger.head_owner or not trigger.head_branch:
        raise ValidationError("the triggering run lists no pull request and no head branch")
    head = urllib.parse.quote(f"{trigger.head_owner}:{trigger.head_branch}", safe="")
    pulls = api(f"/repos/{trigger.repository}/pulls?state=open&per_page=100&head={head}")
    numbers = set()
    for pull in pulls if isinstance(pulls, list) else []:
        number = _get(pull, "number")
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        if _get(pull, "head", "sha") != trigger.head_sha:
            continue
        if trigger.head_repo and _get(pull, "head", "repo", "full_name") != trigger.head_repo:
            continue
        numbers.add(number)
    return numbers


def scan_artifact(root: Path, max_bytes: int, max_files: int = MAX_FILES) -> dict[str, Path]:
    """Every regular file under ``root`` by relative POSIX path; refuses links and oversize."""
    if not root.is_dir() or root.is_symlink():
        raise ValidationError(f"artifact directory not found: {root}")
    files: dict[str, Path] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            raise ValidationError(f"artifact holds a symbolic link: {relative}")
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError(f"artifact holds a special file: {relative}")
        total += info.st_size
        files[relative] = path
        if len(files) > max_files:
            raise ValidationError(f"artifact holds more than {max_files} files")
        if total > max_bytes:
            raise ValidationError(f"artifact is larger than {max_bytes} bytes")
    return files


def read_metadata(files: dict[str, Path], trigger: Trigger) -> int:
    """The pull-request number the artifact claims, type-checked; its commit must be the run's."""
    path = files.get("metadata.json")
    if path is None:
        raise ValidationError("artifact has no metadata.json")
    data = path.read_bytes()
    if len(data) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata.json is larger than {MAX_METADATA_BYTES} bytes")
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("metadata.json is not valid JSON") from None
    number = _get(metadata, "pr_number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise ValidationError(f"metadata.json: pr_number is not an integer: {number!r:.40}")
    if not 1 <= number <= MAX_PR_NUMBER:
        raise ValidationError(f"metadata.json: pr_number out of range: {number}")
    head_sha = _get(metadata, "head_sha")
    if head_sha is not None and head_sha != trigger.head_sha:
        raise ValidationError(
            "metadata.json: head_sha is not the commit of the triggering run"
            f" ({str(head_sha)[:40]!r} != {trigger.head_sha})"
        )
    return number


def copy_plots(files: dict[str, Path], out: Path) -> set[str]:
    """Copy plots/NAME.png files that are real PNGs of bounded size; returns the copied paths."""
    copied = set()
    for relative, path in files.items():
        folder, _, name = relative.rpartition("/")
        if folder != "plots" or not PLOT_NAME.fullmatch(name):
            continue
        data = path.read_bytes()
        if len(data) > MAX_PLOT_BYTES or not data.startswith(PNG_SIGNATURE):
            continue
        target = out / "plots" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        copied.add(f"plots/{name}")
    return copied


def defuse(text: str) -> str:
    """Markdown that renders the same but forms no link, image, definition, HTML or mention.

    A zero-width space is put where the syntax needs two characters to touch: ``](``, ``]:``,
    ``][`` (inline and reference links, images and definitions), ``<`` followed by anything but
    an allowed formatting tag (autolinks and raw HTML), and ``@name``. Code spans render the same,
    since nothing visible is added.
    """
    text = text.replace("](", f"]{ZWSP}(").replace("]:", f"]{ZWSP}:").replace("][", f"]{ZWSP}[")
    text = _TAG_OR_LT.sub(lambda match: match.group(1) or f"<{ZWSP}", text)
    return _MENTION.sub(f"@{ZWSP}", text)


def clean_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def sanitize_markdown(text: str, plots: set[str], limit: int = MAX_COMMENT_CHARS) -> str:
    """Defuse untrusted Markdown, keeping ``![alt](plots/NAME.png)`` for the validated plots."""
    images: list[str] = []

    def keep(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        if target not in plots:
            return match.group(0)
        images.append(f"![{defuse(alt)}]({target})")
        return f"\x00{len(images) - 1}\x00"

    text = _HTML_COMMENT.sub("", clean_text(text.encode("utf-8")))
    text = _PLOT_IMAGE.sub(keep, text)
    text = defuse(text)
    text = _PLACEHOLDER.sub(lambda match: images[int(match.group(1))], text)
    return truncate(text, limit)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n\n_The report was cut to {limit} characters; the full report is in the artifact._\n"
    cut = text[: max(0, limit - len(note))]
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    return cut + note


def footer(trigger: Trigger, number: int) -> str:
    run = f"[run {trigger.run_id}]({trigger.html_url})" if trigger.html_url else "the run"
    return (
        f"\n\n<sub>modelci: pull request #{number}, commit {trigger.head_sha[:12]}, from {run}"
        f" (conclusion: {defuse(trigger.conclusion)[:40]}).</sub>\n"
    )


def build_comment(files: dict[str, Path], trigger: Trigger, number: int, out: Path) -> Path:
    """Write ``out/comment.md`` (and the plots it shows); returns its path."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    plots = copy_plots(files, out)
    report = files.get("report.md")
    if report is None:
        body = (
            "### modelci report\n\nThe model job ended before it wrote a report: see the run's"
            " logs for the failing step."
        )
    else:
        body = sanitize_markdown(clean_text(report.read_bytes()), plots)
    comment = out / "comment.md"
    comment.write_text(body.rstrip("\n") + footer(trigger, number), encoding="utf-8")
    return comment


def validate(
    artifact: Path,
    out: Path,
    event: Any,
    max_bytes: int = DEFAULT_MAX_BYTES,
    api: Api | None = None,
) -> tuple[int, Path]:
    """Check the artifact against the triggering run; write the comment. Returns (PR, path)."""
    trigger = read_trigger(event)
    files = scan_artifact(artifact, max_bytes)
    number = read_metadata(files, trigger)
    expected = expected_pr_numbers(trigger, api)
    if number not in expected:
        shown = ", ".join(f"#{n}" for n in sorted(expected)) or "none"
        raise ValidationError(
            f"metadata.json names pull request #{number}, but the triggering run belongs to"
            f" {shown}"
        )
    return number, build_comment(files, trigger, number, out)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelci_comment.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="validate the artifact and write the comment")
    check.add_argument("--artifact", type=Path, required=True, help="downloaded artifact dir")
    check.add_argument("--out", type=Path, required=True, help="where to write comment.md")
    check.add_argument("--event", type=Path, default=os.environ.get("GITHUB_EVENT_PATH"))
    check.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES)
    check.add_argument("--github-output", type=Path, default=os.environ.get("GITHUB_OUTPUT"))
    args = parser.parse_args(argv)
    try:
        if args.event is None:
            raise ValidationError("no event payload (GITHUB_EVENT_PATH is not set)")
        try:
            event = json.loads(args.event.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValidationError(f"cannot read the event payload: {error}") from None
        token = os.environ.get("GITHUB_TOKEN", "")
        api_url = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        api = github_api(token, api_url) if token else None
        number, comment = validate(args.artifact, args.out, event, args.max_bytes, api)
    except (ValidationError, OSError) as error:
        print(f"::error title=modelci comment::artifact refused: {error}", file=sys.stderr)
        print(f"error: artifact refused: {error}", file=sys.stderr)
        return 1
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as output:
            output.write(f"pr-number={number}\ncomment={comment}\n")
    print(f"comment for pull request #{number}: {comment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
