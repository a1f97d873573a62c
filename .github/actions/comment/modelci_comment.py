#!/usr/bin/env python3
"""Validate a modelci report artifact, write the pull-request comment, and post it. Stdlib only.

Runs in the comment workflow (``workflow_run``), which holds a token that can write to pull
requests, as ``python3 -I`` (no user site, no ``PYTHON*`` variables: nothing on disk or in the
environment can add code). The artifact was produced by a job that ran the pull request's code, so
everything in it is untrusted input:

- the artifact is fetched through the GitHub API by this script (never by an unzipping action,
  whose extraction a crafted entry name such as ``x/../../f`` can escape) and read with
  ``zipfile`` in memory; every entry is checked before anything is written: no absolute name, no
  ``..``, backslash, drive letter or control character (NUL and newline included, checked on the
  raw name: ``zipfile`` cuts a name at its first NUL), no symlink or special-file mode bits, no
  duplicate, bounded size and count;
- the pull-request number in ``metadata.json`` must be an integer equal to a pull request of the
  run that triggered this workflow (from GitHub's own event payload, or for pull requests from
  forks, whose runs list none, from the API by head repository, branch and commit);
- plots are kept only if their name is plain and their bytes are a PNG of bounded size;
- the Markdown is defused: no link syntax survives except the plot images re-inserted here, raw
  HTML is limited to a few attribute-free formatting tags, @mentions do not notify, and the text is
  cut to fit GitHub's comment limit (before any scan, and every scan is linear);
- a ``mermaid`` block is kept only if each of its lines matches a whitelist of the charts the
  report writes (``mermaid_blocks``); any other is removed with a note.

``post`` posts the comment with ``cml comment create --no-publish``: CML posts the body as written
(with ``--publish`` it would parse and re-serialise it, dropping escapes such as ``\\|``, and
upload every local path a link points to). By default nothing is uploaded and no host but the
GitHub API is contacted: the plot images are dropped from the comment (the report carries its
charts inline). With ``--upload-plots cml`` (CML's public host) or an image endpoint's URL, each
validated plot is uploaded with ``cml asset publish`` and its image kept. Every CML call is given
``--repo``: without it CML reads ``git config --get remote.origin.url`` and fails outside a
checkout (the comment job has none). Then this identity's older modelci comments on the pull
request are deleted, so exactly one remains whatever the pull request's history; no other user's
comment is edited.

Usage:
  ``modelci_comment.py validate --artifact-name NAME --out DIR [--event FILE] [--max-bytes N]``
  (or ``--zip FILE`` instead of fetching), then
  ``modelci_comment.py post --dir DIR --pr N --watermark TITLE [--upload-plots cml|URL]``.
``validate`` writes ``DIR/comment.md`` and ``DIR/plots/*.png`` and, to ``$GITHUB_OUTPUT``,
``pr-number`` and ``comment``. Each exits 1 with one ``error:`` line when it refuses or fails.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 5_000_000
MAX_FILES = 64
# Members are decompressed CHUNK bytes at a time; past RATIO_FLOOR bytes one may not expand more
# than MAX_RATIO times its compressed size (a report or a PNG is far from that).
CHUNK = 64 * 1024
RATIO_FLOOR = 64 * 1024
MAX_RATIO = 100
MAX_METADATA_BYTES = 4_096
MAX_PLOT_BYTES = 2_000_000
# GitHub refuses comments over 65,536 characters; CML appends a watermark and each plot path is
# replaced with a longer URL, so the body keeps a margin.
MAX_COMMENT_CHARS = 60_000
# The report is cut to this many characters before anything scans it (defusing only adds a few
# characters per construct, and the result is cut to MAX_COMMENT_CHARS again).
MAX_INPUT_CHARS = 4 * MAX_COMMENT_CHARS
MAX_PR_NUMBER = 2**31 - 1
# Pages of 100 comments read when looking for this identity's older comments.
MAX_COMMENT_PAGES = 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.png")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
REPOSITORY = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9_.-]{1,100}")
ASSET_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::\d+)?/[A-Za-z0-9._~:/?#@!$&'*+,;=%-]{1,500}")
COMMENT_URL_ID = re.compile(r"#issuecomment-(\d{1,20})\b")
ZWSP = "\u200b"
# `--upload-plots cml`: CML's own public asset host (its default --url, src/utils.js:78).
CML_ASSET_HOST = "https://asset.cml.dev"
UPLOAD_OFF_NOTE = (
    "\n\n_Plot images are not shown: PNG upload is off (the comment action's `upload-plots`"
    " input); they are in the run's report artifact._\n"
)
# Raw HTML allowed through: formatting tags without attributes (nothing that loads a resource).
SAFE_TAGS = "details|summary|br|sub|sup|b|i|em|strong|code|pre|kbd|p|hr|ul|ol|li"
_TAG_OR_LT = re.compile(rf"(</?(?:{SAFE_TAGS})\s*/?>)|<", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# In an entry name no control character is allowed, newline and tab included (C1 controls too).
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLOT_IMAGE = re.compile(r"!\[([^\[\]\n]{0,300})\]\((plots/[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.png)\)")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
# ``www.example`` and ``#123``: links GitHub makes by itself, split by a zero-width space.
_WWW = re.compile(r"(?i)\b(www)\.")
_ISSUE_REF = re.compile(r"#(?=\d)")
_DRIVE = re.compile(r"^[A-Za-z]:")


class ValidationError(Exception):
    """The artifact or the event is refused, or posting failed; the message says why."""


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_trigger(event: Any) -> Trigger:
    """The triggering run's identity; refuses events that are not a pull request's workflow_run
    (a pull_request run, or a workflow_dispatch run on a pull request's head)."""
    run = _get(event, "workflow_run")
    if not isinstance(run, dict):
        raise ValidationError("the event is not a workflow_run event")
    # workflow_dispatch: the run retrain.yml starts for its PR (its own token's events start no
    # pull_request run); it lists no PR, so expected_pr_numbers looks the PR up by head and sha.
    if run.get("event") not in ("pull_request", "workflow_dispatch"):
        raise ValidationError(
            f"the triggering run was started by {run.get('event')!r}, not by a pull request"
        )
    head_sha = run.get("head_sha")
    if not isinstance(head_sha, str) or not COMMIT_SHA.fullmatch(head_sha):
        raise ValidationError("the triggering run has no valid head_sha")
    run_id = run.get("id")
    if not _is_int(run_id):
        raise ValidationError("the triggering run has no integer id")
    html_url = run.get("html_url")
    if not isinstance(html_url, str) or not html_url.startswith("https://"):
        html_url = ""
    repository = _get(event, "repository", "full_name")
    base_url = _get(event, "repository", "url")
    numbers = []
    for entry in run.get("pull_requests") or []:
        number = _get(entry, "number")
        if not _is_int(number):
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


# -- the GitHub REST API ----------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port), as ``modelci._http.origin`` has it (a test holds them equal)."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _DropAuthOnHostChange(urllib.request.HTTPRedirectHandler):
    """Artifact downloads redirect to pre-signed storage URLs: the token goes to the API's
    origin only (the rule of ``modelci._http``, which this script cannot import)."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _allowed_url(url: str) -> bool:
    """https anywhere; plain http only to 127.0.0.1 itself (the tests' API stand-in), not to a
    host whose name merely starts with it (``http://127.0.0.1.example``)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1")


class GitHub:
    """The few REST calls this script makes, with a bounded read of every response."""

    def __init__(self, token: str, api_url: str) -> None:
        if not _allowed_url(api_url):
            raise ValidationError(f"refusing a non-https GitHub API URL: {api_url!r}")
        self.token = token
        self.api_url = api_url.rstrip("/")
        self._opener = urllib.request.build_opener(_DropAuthOnHostChange())

    def request(self, method: str, url: str, limit: int = 5_000_000) -> bytes:
        if not _allowed_url(url):
            raise ValidationError(f"refusing a non-https URL: {url[:80]!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        shown = url.split("?")[0]
        try:
            with self._opener.open(request, timeout=30) as response:
                data: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as error:
            raise ValidationError(f"GitHub API {method} {shown}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # HTTPException: a connection cut mid-body (IncompleteRead) is not an OSError
            raise ValidationError(f"GitHub API {method} {shown}: {error!r}") from None
        if len(data) > limit:
            raise ValidationError(f"GitHub API {method} {shown}: more than {limit} bytes")
        return data

    def get(self, path: str) -> Any:
        data = self.request("GET", self.api_url + path)
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise ValidationError(f"GitHub API GET {path.split('?')[0]}: not JSON") from None

    def delete(self, path: str) -> None:
        self.request("DELETE", self.api_url + path)

    def pages(self, path: str, max_pages: int) -> list[Any]:
        """Every item of a paginated list (100 a page, at most ``max_pages`` pages)."""
        items: list[Any] = []
        joiner = "&" if "?" in path else "?"
        for page in range(1, max_pages + 1):
            batch = self.get(f"{path}{joiner}per_page=100&page={page}")
            if not isinstance(batch, list):
                raise ValidationError(f"GitHub API GET {path}: not a list")
            items += batch
            if len(batch) < 100:
                return items
        raise ValidationError(f"GitHub API GET {path}: more than {max_pages} pages")


def expected_pr_numbers(trigger: Trigger, api: GitHub | None) -> set[int]:
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
    pulls = api.get(f"/repos/{trigger.repository}/pulls?state=open&per_page=100&head={head}")
    numbers = set()
    for pull in pulls if isinstance(pulls, list) else []:
        number = _get(pull, "number")
        if not _is_int(number):
            continue
        if _get(pull, "head", "sha") != trigger.head_sha:
            continue
        if trigger.head_repo and _get(pull, "head", "repo", "full_name") != trigger.head_repo:
            continue
        numbers.add(number)
    return numbers


def fetch_artifact(api: GitHub, trigger: Trigger, name: str, max_bytes: int) -> bytes:
    """The zip of the triggering run's artifact ``name``, as bytes (nothing is written)."""
    if not REPOSITORY.fullmatch(trigger.repository):
        raise ValidationError(f"the event names no valid repository: {trigger.repository!r:.80}")
    query = urllib.parse.urlencode({"name": name, "per_page": 100})
    listing = api.get(
        f"/repos/{trigger.repository}/actions/runs/{trigger.run_id}/artifacts?{query}"
    )
    found = [
        item
        for item in _get(listing, "artifacts") or []
        if _get(item, "name") == name and not _get(item, "expired")
    ]
    if not found:
        raise ValidationError(f"run {trigger.run_id} has no artifact named {name!r}")
    size = _get(found[0], "size_in_bytes")
    if _is_int(size) and size > max_bytes:
        raise ValidationError(f"artifact is larger than {max_bytes} bytes")
    url = _get(found[0], "archive_download_url")
    if not isinstance(url, str):
        raise ValidationError("the artifact has no download URL")
    return api.request("GET", url, limit=max_bytes)


# -- the artifact -----------------------------------------------------------------------------


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an archive entry is refused, or None.

    ``info.orig_filename`` is the name as the central directory holds it: ``info.filename`` is
    cut at the first NUL (``zipfile.ZipInfo``), so a NUL is only visible in the former.
    """
    if _NAME_CONTROL.search(info.orig_filename):
        return "a control character in its name"
    name = info.filename
    if not name or name.startswith("/") or _DRIVE.match(name):
        return "an absolute name"
    if "\\" in name:
        return "a backslash in its name"
    if ".." in name:
        return "'..' in its name"
    if info.flag_bits & 0x1:
        return "encryption"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and lzma decompress a whole compressed chunk at once: 1.8 KB made 4.2 GB
        return f"compression method {info.compress_type} (only stored and deflated are read)"
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        return "symbolic link mode bits"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special-file mode bits"
    return None


def read_archive(data: bytes, max_bytes: int, max_files: int = MAX_FILES) -> dict[str, bytes]:
    """Every file of the artifact zip by name, read in memory; refuses any doubtful entry.

    All entries are checked (names, modes, duplicates, declared sizes) before any is read, and
    each read is bounded by what is left of ``max_bytes``, whatever the headers claim.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise ValidationError("artifact is not a valid zip archive") from None
    with archive:
        entries = archive.infolist()
        seen: set[str] = set()
        files = []
        declared = 0
        for info in entries:
            shown = repr(info.orig_filename[:120])
            problem = _entry_problem(info)
            if problem is not None:
                raise ValidationError(f"artifact entry {shown} has {problem}")
            if info.filename in seen:
                raise ValidationError(f"artifact entry {shown} appears twice")
            seen.add(info.filename)
            if info.is_dir():
                continue
            files.append(info)
            declared += info.file_size
            if len(files) > max_files:
                raise ValidationError(f"artifact holds more than {max_files} files")
            if declared > max_bytes:
                raise ValidationError(f"artifact is larger than {max_bytes} bytes")
        contents: dict[str, bytes] = {}
        left = max_bytes
        for info in files:
            try:
                content = _read_member(archive, info, left, max_bytes)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error):
                raise ValidationError(f"artifact entry {info.filename!r:.120} is corrupt") from None
            left -= len(content)
            contents[info.filename] = content
    return contents


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, left: int, total: int) -> bytes:
    """One member, decompressed in chunks: at most ``left`` bytes, and at most ``MAX_RATIO``
    times its compressed size once past ``RATIO_FLOOR`` (as modelci.safezip, which this
    standard-library-only script cannot import)."""
    parts: list[bytes] = []
    size = 0
    with archive.open(info) as member:
        while chunk := member.read(CHUNK):
            size += len(chunk)
            if size > left:
                raise ValidationError(f"artifact is larger than {total} bytes")
            if size > RATIO_FLOOR and size > MAX_RATIO * max(info.compress_size, 1):
                raise ValidationError(
                    f"artifact entry {info.filename!r:.120} expands more than {MAX_RATIO} times "
                    f"its {info.compress_size} compressed bytes"
                )
            parts.append(chunk)
    return b"".join(parts)


def read_metadata(files: dict[str, bytes], trigger: Trigger) -> int:
    """The pull-request number the artifact claims, type-checked; its commit must be the run's."""
    data = files.get("metadata.json")
    if data is None:
        raise ValidationError("artifact has no metadata.json")
    if len(data) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata.json is larger than {MAX_METADATA_BYTES} bytes")
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("metadata.json is not valid JSON") from None
    except RecursionError:
        raise ValidationError("metadata.json is nested too deeply") from None
    number = _get(metadata, "pr_number")
    if not _is_int(number):
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


def write_plots(files: dict[str, bytes], out: Path) -> set[str]:
    """Write plots/NAME.png files that are real PNGs of bounded size; returns their paths."""
    written = set()
    for relative, data in files.items():
        folder, _, name = relative.rpartition("/")
        if folder != "plots" or not PLOT_NAME.fullmatch(name):
            continue
        if len(data) > MAX_PLOT_BYTES or not data.startswith(PNG_SIGNATURE):
            continue
        target = out / "plots" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.add(f"plots/{name}")
    return written


# -- the Markdown -----------------------------------------------------------------------------


def strip_html_comments(text: str) -> str:
    """``text`` without ``<!-- ... -->`` comments, in one pass (an unclosed one is kept as text).

    A regex such as ``<!--.*?-->`` retries from every ``<!--`` to the end of the text when none
    is closed: quadratic time on ``<!--`` repeated.
    """
    parts = []
    position = 0
    while True:
        start = text.find("<!--", position)
        if start < 0:
            break
        end = text.find("-->", start + 4)
        if end < 0:
            break  # no comment closes after this point: the rest is text
        parts.append(text[position:start])
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


# ``mermaid`` blocks: exactly the charts the report writes (src/modelci/ci/mermaid.py), line by
# line: a title, two numeric axes, at most MERMAID_SERIES lines of at most 101 numbers. Nothing
# else Mermaid parses survives (click, links, HTML labels, %%{init}%% or front-matter config).
_CHART_TEXT = r'"[A-Za-z0-9 .,:()+-]{1,60}"'
_CHART_NUMBER = r"-?[0-9]{1,12}(?:\.[0-9]{1,3})?"
_CHART_AXIS = rf"{_CHART_TEXT} {_CHART_NUMBER} --> {_CHART_NUMBER}"
_CHART_HEAD = (
    re.compile("xychart-beta"),
    re.compile(rf"    title {_CHART_TEXT}"),
    re.compile(rf"    x-axis {_CHART_AXIS}"),
    re.compile(rf"    y-axis {_CHART_AXIS}"),
)
_CHART_SERIES = re.compile(rf"    line \[{_CHART_NUMBER}(?:, {_CHART_NUMBER}){{1,100}}\]")
MERMAID_SERIES = 4
MERMAID_REMOVED = "_A Mermaid block was removed: it is not a chart that modelci's report writes._"
# what may come before a fence on its line: indentation, block quotes, list markers
_FENCE_PREFIX = " \t>*+-0123456789.)"


def _fence(line: str) -> str | None:
    """The rest of ``line`` after its fence (``` or ~~~, any length, after any container
    prefix), or None when the line opens or closes no fenced block. String operations only: a
    regex with a repeated fence would backtrack quadratically on a line of backticks."""
    rest = line.lstrip(_FENCE_PREFIX)
    for char in "`~":
        if rest.startswith(char * 3):
            return rest.lstrip(char)
    return None


def _closes(line: str) -> bool:
    """Whether ``line`` is a bare fence (one that can close a block)."""
    rest = _fence(line)
    return rest is not None and not rest.strip()


def _is_chart(body: list[str]) -> bool:
    heads, series = body[: len(_CHART_HEAD)], body[len(_CHART_HEAD) :]
    return (
        len(heads) == len(_CHART_HEAD)
        and 1 <= len(series) <= MERMAID_SERIES
        and all(rule.fullmatch(line) for rule, line in zip(_CHART_HEAD, heads, strict=True))
        and all(_CHART_SERIES.fullmatch(line) for line in series)
    )


def mermaid_blocks(text: str) -> str:
    """``text`` where each fenced block whose info string names ``mermaid`` (any case, fence,
    indentation or container) is kept only if it is exactly a report chart: a ```` ```mermaid ````
    line, the chart's lines (each matching the whitelist), a ```` ``` ```` line. Any other such
    block is replaced, from its opening line to the next fence line (or the end), by a note.
    One pass over the lines."""
    lines = text.split("\n")
    kept: list[str] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        rest = _fence(line)
        if rest is None or "mermaid" not in rest.lower():
            kept.append(line)
            position += 1
            continue
        end = position + 1
        while end < len(lines) and not _closes(lines[end]):
            end += 1
        body = lines[position + 1 : end]
        closed = end < len(lines) and lines[end] == "```"
        if line == "```mermaid" and closed and _is_chart(body):
            kept += lines[position : end + 1]
        else:
            kept.append(MERMAID_REMOVED)
        position = end + 1
    return "\n".join(kept)


def defuse(text: str) -> str:
    """Markdown that renders the same but forms no link, image, definition, HTML or mention.

    A zero-width space is put where the syntax needs two characters to touch: ``](``, ``]:``,
    ``][`` (inline and reference links, images and definitions), ``<`` followed by anything but
    an allowed formatting tag (autolinks and raw HTML), and ``@name``; and the bare forms GitHub
    links by itself: ``scheme://``, ``www.`` and ``#123`` (which, as ``owner/repo#123``, would post
    a cross-reference on another repository's issue). Code spans render the same, since nothing
    visible is added.
    """
    text = text.replace("](", f"]{ZWSP}(").replace("]:", f"]{ZWSP}:").replace("][", f"]{ZWSP}[")
    text = _TAG_OR_LT.sub(lambda match: match.group(1) or f"<{ZWSP}", text)
    text = text.replace("://", f":{ZWSP}//")
    text = _ISSUE_REF.sub(f"#{ZWSP}", _WWW.sub(lambda match: f"{match.group(1)}{ZWSP}.", text))
    return _MENTION.sub(f"@{ZWSP}", text)


def clean_text(data: bytes, limit: int = MAX_INPUT_CHARS) -> str:
    """Decoded text, cut to ``limit`` characters first, one kind of newline, no controls."""
    text = data[: 4 * limit].decode("utf-8", errors="replace")[:limit]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
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

    text = mermaid_blocks(strip_html_comments(clean_text(text.encode("utf-8"))))
    text = _PLOT_IMAGE.sub(keep, text)
    text = defuse(text)
    text = _PLACEHOLDER.sub(lambda match: images[int(match.group(1))], text)
    return truncate(text, limit)


_FENCE_LINE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n\n_The report was cut to {limit} characters; the full report is in the artifact._\n"
    cut = text[: max(0, limit - len(note))]
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    fences = [match.start() for match in _FENCE_LINE.finditer(cut)]
    if len(fences) % 2:  # the cut fell inside a fenced block (a chart): drop the whole block
        cut = cut[: fences[-1]].rstrip("\n")
    return cut + note


def footer(trigger: Trigger, number: int) -> str:
    run = f"[run {trigger.run_id}]({trigger.html_url})" if trigger.html_url else "the run"
    return (
        f"\n\n<sub>modelci: pull request #{number}, commit {trigger.head_sha[:12]}, from {run}"
        f" (conclusion: {defuse(trigger.conclusion)[:40]}).</sub>\n"
    )


def build_comment(files: dict[str, bytes], trigger: Trigger, number: int, out: Path) -> Path:
    """Write ``out/comment.md`` (and the plots it shows); returns its path."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    plots = write_plots(files, out)
    report = files.get("report.md")
    if report is None:
        body = (
            "### modelci report\n\nThe model job ended before it wrote a report: see the run's"
            " logs for the failing step."
        )
    else:
        body = sanitize_markdown(clean_text(report), plots)
    comment = out / "comment.md"
    comment.write_text(body.rstrip("\n") + footer(trigger, number), encoding="utf-8")
    return comment


def validate(
    archive: bytes,
    out: Path,
    event: Any,
    max_bytes: int = DEFAULT_MAX_BYTES,
    api: GitHub | None = None,
) -> tuple[int, Path]:
    """Check the artifact zip against the triggering run; write the comment. Returns (PR, path)."""
    trigger = read_trigger(event)
    files = read_archive(archive, max_bytes)
    number = read_metadata(files, trigger)
    expected = expected_pr_numbers(trigger, api)
    if number not in expected:
        shown = ", ".join(f"#{n}" for n in sorted(expected)) or "none"
        raise ValidationError(
            f"metadata.json names pull request #{number}, but the triggering run belongs to"
            f" {shown}"
        )
    return number, build_comment(files, trigger, number, out)


# -- posting ----------------------------------------------------------------------------------


def watermark_pattern(label: str) -> re.Pattern[str]:
    """What CML 0.20 appends to a comment made with ``--watermark-title label`` (watermark.js)."""
    title = f"CML watermark {label}".strip()
    for char in "_*[<":
        title = title.replace(char, "\\" + char)
    url = re.escape("https://cml.dev/watermark.png")
    return re.compile(rf'!\[\]\({url}#[0-9a-fA-F]+ "{re.escape(title)}"\)')


def upload_target(value: str) -> str | None:
    """Where ``--upload-plots VALUE`` sends the plot PNGs: None (off, the default), CML's public
    host for ``cml``, or the image endpoint whose URL is given."""
    value = value.strip()
    if not value:
        return None
    if value == "cml":
        return CML_ASSET_HOST
    if _allowed_url(value):
        return value
    raise ValidationError(
        f"upload-plots must be empty (no upload), 'cml' or an https URL, not {value[:80]!r}"
    )


def cml_repo_url(server_url: str, repository: str) -> str:
    """``--repo`` for every CML call: CML reads the git remote without it (src/cml.js:129)."""
    if not REPOSITORY.fullmatch(repository):
        raise ValidationError(f"invalid repository {repository!r:.80} (GITHUB_REPOSITORY)")
    if not _allowed_url(server_url):
        raise ValidationError(f"invalid server URL {server_url!r:.80} (GITHUB_SERVER_URL)")
    return f"{server_url.rstrip('/')}/{repository}"


def run_cml(args: list[str], cwd: Path, repo_url: str) -> str:
    """Run ``cml ARGS --repo REPO_URL`` (telemetry off); returns its output, or raises with its
    last line."""
    cml = shutil.which("cml")
    if cml is None:
        raise ValidationError("cml is not on PATH (iterative/setup-cml installs it)")
    env = {**os.environ, "ITERATIVE_DO_NOT_TRACK": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [cml, *args, "--repo", repo_url],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        raise ValidationError(f"cml {' '.join(args[:2])} did not finish in 300 s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        last = f": {_cml_message(lines[-1])[:300]}" if lines else ""
        raise ValidationError(f"cml {' '.join(args[:2])} exited {done.returncode}{last}")
    return done.stdout


def _cml_message(line: str) -> str:
    """The message of CML's error, a JSON log line with its stack (bin/cml.js:180), or the line."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return line
    message = entry.get("message") if isinstance(entry, dict) else None
    return message if isinstance(message, str) else line


def publish_plots(directory: Path, text: str, upload_url: str, repo_url: str) -> str:
    """Upload each validated plot with ``cml asset publish`` and put its URL in ``text``."""
    for plot in sorted((directory / "plots").glob("*.png")):
        relative = f"plots/{plot.name}"
        if f"]({relative})" not in text:
            continue
        args = ["asset", "publish", relative, "--url", upload_url]
        lines = run_cml(args, directory, repo_url).split()
        url = lines[-1] if lines else ""
        if not ASSET_URL.fullmatch(url):
            raise ValidationError(f"cml asset publish returned no usable URL: {url[:100]!r}")
        text = text.replace(f"]({relative})", f"]({url})")
    return text


def drop_plot_images(text: str) -> str:
    """``text`` without its ``![alt](plots/NAME.png)`` images (nothing is uploaded, so they would
    point at nothing), and a one-line note saying why when there was any."""
    kept, dropped = _PLOT_IMAGE.subn("", text)
    return kept.rstrip("\n") + UPLOAD_OFF_NOTE if dropped else text


def post(
    directory: Path,
    number: int,
    repo_url: str,
    watermark: str,
    upload_url: str | None,
    api: GitHub,
) -> int:
    """Post ``directory/comment.md`` on pull request ``number``; returns the new comment's id.

    ``upload_url`` None uploads nothing (the plot images are dropped). The comment is created
    (never an edit: CML's ``update`` reads only the first 30 comments and edits the last one
    holding the watermark whoever wrote it), then every older comment holding the watermark that
    the same identity wrote is deleted, found through every page of the pull request's comments.
    """
    repository = "/".join(repo_url.split("/")[-2:])
    text = (directory / "comment.md").read_text("utf-8")
    if upload_url is None:
        text = drop_plot_images(text)
    else:
        text = publish_plots(directory, text, upload_url, repo_url)
    posted = directory / "posted.md"
    posted.write_text(text, encoding="utf-8")
    args = ["comment", "create", posted.name, "--no-publish", "--target", f"pr/{number}"]
    output = run_cml([*args, "--watermark-title", watermark], directory, repo_url)
    found = COMMENT_URL_ID.search(output)
    if found is None:
        raise ValidationError(f"cml comment create printed no comment URL: {output[-200:]!r}")
    new_id = int(found.group(1))
    author = _get(api.get(f"/repos/{repository}/issues/comments/{new_id}"), "user", "login")
    if not isinstance(author, str) or not author:
        raise ValidationError(f"comment {new_id} has no author")
    marker = watermark_pattern(watermark)
    comments = api.pages(f"/repos/{repository}/issues/{number}/comments", MAX_COMMENT_PAGES)
    for comment in comments:
        comment_id = _get(comment, "id")
        body = _get(comment, "body")
        if (
            _is_int(comment_id)
            and comment_id != new_id
            and _get(comment, "user", "login") == author
            and isinstance(body, str)
            and marker.search(body)
        ):
            api.delete(f"/repos/{repository}/issues/comments/{comment_id}")
    return new_id


# -- the command line -------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _api_from_env() -> GitHub | None:
    token = os.environ.get("GITHUB_TOKEN", "")
    # MODELCI_GITHUB_API_URL: a test's local GitHub stand-in; GITHUB_API_URL: the runner's.
    api_url = os.environ.get("MODELCI_GITHUB_API_URL") or os.environ.get(
        "GITHUB_API_URL", "https://api.github.com"
    )
    return GitHub(token, api_url) if token else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelci_comment.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="fetch and validate the artifact, write the comment")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--artifact-name", help="fetch this artifact of the triggering run")
    source.add_argument("--zip", type=Path, help="read this artifact zip instead")
    check.add_argument("--out", type=Path, required=True, help="where to write comment.md")
    check.add_argument("--event", type=Path, default=os.environ.get("GITHUB_EVENT_PATH"))
    check.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES)
    check.add_argument("--github-output", type=Path, default=os.environ.get("GITHUB_OUTPUT"))
    send = sub.add_parser("post", help="post the comment, delete this identity's older ones")
    send.add_argument("--dir", type=Path, required=True, help="what validate wrote")
    send.add_argument("--pr", type=_positive, required=True, help="the validated PR number")
    send.add_argument("--watermark", required=True, help="cml --watermark-title")
    send.add_argument(
        "--upload-plots",
        default="",
        help="upload the plot PNGs: 'cml' (CML's public host) or an image endpoint's URL;"
        " empty (the default) uploads nothing",
    )
    send.add_argument("--repo", default=os.environ.get("GITHUB_REPOSITORY", ""))
    send.add_argument("--server-url", default=os.environ.get("GITHUB_SERVER_URL", ""))
    return parser


def _validate_command(args: argparse.Namespace) -> int:
    if args.event is None:
        raise ValidationError("no event payload (GITHUB_EVENT_PATH is not set)")
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValidationError(f"cannot read the event payload: {error}") from None
    api = _api_from_env()
    if args.zip is not None:
        archive = args.zip.read_bytes()
    elif api is None:
        raise ValidationError("no GITHUB_TOKEN to fetch the artifact with")
    else:
        archive = fetch_artifact(api, read_trigger(event), args.artifact_name, args.max_bytes)
    number, comment = validate(archive, args.out, event, args.max_bytes, api)
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as output:
            output.write(f"pr-number={number}\ncomment={comment}\n")
    print(f"comment for pull request #{number}: {comment}")
    return 0


def _post_command(args: argparse.Namespace) -> int:
    api = _api_from_env()
    if api is None:
        raise ValidationError("no GITHUB_TOKEN to post with")
    repo_url = cml_repo_url(args.server_url, args.repo)
    upload_url = upload_target(args.upload_plots)
    comment_id = post(args.dir, args.pr, repo_url, args.watermark, upload_url, api)
    print(f"posted comment {comment_id} on pull request #{args.pr}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler, what = (
        (_validate_command, "artifact refused")
        if args.command == "validate"
        else (_post_command, "comment not posted")
    )
    try:
        return handler(args)
    except (ValidationError, OSError) as error:
        print(f"::error title=modelci comment::{what}: {error}", file=sys.stderr)
        print(f"error: {what}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
