"""Unit tests of .github/actions/comment/modelci_comment.py, the fork-safe comment's validator.

The artifact it reads was produced by a job that ran a pull request's code, so each test hands it
something a hostile pull request could upload and checks what reaches the comment.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from tests.conftest import REPO_ROOT
from tests.http_support import serve_in_thread
from tests.workflows.fake_github import ASSET_BASE, BOT, FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN, STUBS

pytestmark = pytest.mark.workflows

SCRIPT = REPO_ROOT / ".github" / "actions" / "comment" / "modelci_comment.py"
HEAD = "c0ffee" + "0" * 34
OTHER = "bad" * 13 + "0"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
API_REPO = "https://api.github.com/repos/acme/model"
ZWSP = "\u200b"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("modelci_comment", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("modelci_comment", module)
    spec.loader.exec_module(module)
    return module


mc = _load()


def event(
    number: int | None = 7, head_sha: str = HEAD, kind: str = "pull_request", **run: Any
) -> dict[str, Any]:
    pulls = (
        []
        if number is None
        else [{"number": number, "head": {"sha": head_sha}, "base": {"repo": {"url": API_REPO}}}]
    )
    workflow_run = {
        "id": 4242,
        "event": kind,
        "conclusion": "success",
        "head_sha": head_sha,
        "head_branch": "feature",
        "html_url": "https://github.com/acme/model/actions/runs/4242",
        "head_repository": {"full_name": "fork/model", "owner": {"login": "fork"}},
        "pull_requests": pulls,
        **run,
    }
    return {
        "workflow_run": workflow_run,
        "repository": {"full_name": "acme/model", "url": API_REPO},
    }


def artifact(
    report: str | None = "## report\n\n![ROC](plots/roc.png)\n",
    metadata: Any = None,
    plots: dict[str, bytes] | None = None,
    omit: tuple[str, ...] = (),
    extra: tuple[tuple[zipfile.ZipInfo | str, bytes], ...] = (),
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """The zip a pull request's run uploads (as GitHub serves it), with ``extra`` entries."""
    meta = {"pr_number": 7, "head_sha": HEAD, "run_id": 1} if metadata is None else metadata
    entries: list[tuple[zipfile.ZipInfo | str, bytes]] = []
    if "metadata.json" not in omit:
        text = meta if isinstance(meta, str) else json.dumps(meta)
        entries.append(("metadata.json", text.encode()))
    if report is not None:
        entries.append(("report.md", report.encode()))
    for name, data in ({"roc.png": PNG} if plots is None else plots).items():
        entries.append((f"plots/{name}", data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in [*entries, *extra]:
            archive.writestr(name, data)
    return buffer.getvalue()


def comment_of(tmp_path: Path, report: str, plots: dict[str, bytes] | None = None) -> str:
    number, path = mc.validate(artifact(report=report, plots=plots), tmp_path / "out", event())
    assert number == 7
    return str(path.read_text(encoding="utf-8"))


def refused(tmp_path: Path, match: str, **kwargs: Any) -> None:
    """Refused with ``match`` in the message, and nothing written."""
    evt = kwargs.pop("evt", event())
    max_bytes = kwargs.pop("max_bytes", mc.DEFAULT_MAX_BYTES)
    with pytest.raises(mc.ValidationError, match=match):
        mc.validate(artifact(**kwargs), tmp_path / "out", evt, max_bytes=max_bytes)
    assert not (tmp_path / "out").exists()


# -- the pull-request number ------------------------------------------------------------------


def test_valid_artifact_gives_the_pr_number_and_a_comment_with_the_plot(tmp_path: Path) -> None:
    number, path = mc.validate(artifact(), tmp_path / "out", event())
    assert number == 7
    text = path.read_text(encoding="utf-8")
    assert "## report" in text
    assert "![ROC](plots/roc.png)" in text
    assert (tmp_path / "out" / "plots" / "roc.png").read_bytes() == PNG
    assert "[run 4242](https://github.com/acme/model/actions/runs/4242)" in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("7", "not an integer"),
        (7.0, "not an integer"),
        (True, "not an integer"),
        (None, "not an integer"),
        ([7], "not an integer"),
        (0, "out of range"),
        (-7, "out of range"),
        (2**40, "out of range"),
    ],
)
def test_pr_number_must_be_a_positive_integer(tmp_path: Path, value: Any, message: str) -> None:
    refused(tmp_path, message, metadata={"pr_number": value, "head_sha": HEAD})


def test_pr_number_must_match_the_triggering_run(tmp_path: Path) -> None:
    refused(
        tmp_path,
        r"names pull request #8, but the triggering run belongs to #7",
        metadata={"pr_number": 8, "head_sha": HEAD},
    )


def test_head_sha_must_be_the_triggering_commit(tmp_path: Path) -> None:
    refused(tmp_path, "head_sha is not the commit", metadata={"pr_number": 7, "head_sha": OTHER})


def test_pull_requests_of_other_commits_or_repositories_do_not_count(tmp_path: Path) -> None:
    evt = event()
    evt["workflow_run"]["pull_requests"] = [
        {"number": 7, "head": {"sha": OTHER}, "base": {"repo": {"url": API_REPO}}},
        {"number": 7, "head": {"sha": HEAD}, "base": {"repo": {"url": API_REPO + "-fork"}}},
    ]
    with pytest.raises(mc.ValidationError, match="no token is available"):
        mc.validate(artifact(), tmp_path / "out", evt)


@pytest.mark.parametrize("metadata", ["{not json", "[]", "x" * 5000])
def test_metadata_must_be_small_json(tmp_path: Path, metadata: str) -> None:
    refused(tmp_path, "metadata.json", metadata=metadata)


def test_missing_metadata_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, r"no metadata\.json", omit=("metadata.json",))


def test_deeply_nested_metadata_is_refused_in_one_line(tmp_path: Path) -> None:
    refused(tmp_path, "metadata.json is nested too deeply", metadata="[" * 2040)


@pytest.mark.parametrize(
    ("evt", "message"),
    [
        ({"pull_request": {}}, "not a workflow_run event"),
        (event(kind="push"), "not by a pull request"),
        (event(head_sha="main"), "no valid head_sha"),
        (event(id="4242"), "no integer id"),
    ],
)
def test_only_pull_request_workflow_runs_are_accepted(
    tmp_path: Path, evt: dict[str, Any], message: str
) -> None:
    refused(tmp_path, message, evt=evt)


class _Pulls(BaseHTTPRequestHandler):
    pulls: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Pulls.seen.append(f"{self.path} {self.headers.get('Authorization')}")
        body = json.dumps(self.pulls).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Pulls)
    thread = serve_in_thread(server)
    thread.start()
    _Pulls.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_fork_pull_request_is_found_through_the_api(tmp_path: Path, fake_api: str) -> None:
    _Pulls.pulls = [
        {"number": 9, "head": {"sha": OTHER, "repo": {"full_name": "fork/model"}}},
        {"number": 7, "head": {"sha": HEAD, "repo": {"full_name": "fork/model"}}},
        {"number": 5, "head": {"sha": HEAD, "repo": {"full_name": "someone/else"}}},
    ]
    api = mc.GitHub("t0ken", fake_api)
    number, _ = mc.validate(artifact(), tmp_path / "out", event(None), api=api)
    assert number == 7
    (request,) = _Pulls.seen
    assert request.startswith("/repos/acme/model/pulls?state=open&per_page=100&head=fork%3Afeature")
    assert request.endswith("Bearer t0ken")


def test_fork_lookup_still_requires_the_number_to_match(tmp_path: Path, fake_api: str) -> None:
    _Pulls.pulls = [{"number": 9, "head": {"sha": HEAD, "repo": {"full_name": "fork/model"}}}]
    api = mc.GitHub("t0ken", fake_api)
    with pytest.raises(mc.ValidationError, match="belongs to #9"):
        mc.validate(artifact(), tmp_path / "out", event(None), api=api)


def test_a_dispatched_run_is_matched_to_its_pull_request_through_the_api(
    tmp_path: Path, fake_api: str
) -> None:
    """retrain.yml dispatches the PR workflow on its branch: the run lists no PR, and the number
    the artifact claims must be an open PR of this repository whose head is the run's commit."""
    ours = {"full_name": "acme/model", "owner": {"login": "acme"}}
    dispatched = event(None, kind="workflow_dispatch", head_branch="modelci/retrain")
    dispatched["workflow_run"]["head_repository"] = ours
    _Pulls.pulls = [{"number": 7, "head": {"sha": HEAD, "repo": {"full_name": "acme/model"}}}]
    api = mc.GitHub("t0ken", fake_api)
    assert mc.validate(artifact(), tmp_path / "out", dispatched, api=api)[0] == 7
    assert _Pulls.seen[0].startswith("/repos/acme/model/pulls?state=open&per_page=100&head=acme")
    _Pulls.pulls = [{"number": 7, "head": {"sha": OTHER, "repo": {"full_name": "acme/model"}}}]
    with pytest.raises(mc.ValidationError, match="belongs to none"):
        mc.validate(artifact(), tmp_path / "out2", dispatched, api=api)


def test_api_url_must_be_https() -> None:
    with pytest.raises(mc.ValidationError, match="non-https"):
        mc.GitHub("t", "http://evil.example")


# -- the artifact's files ---------------------------------------------------------------------


def test_artifact_size_is_bounded(tmp_path: Path) -> None:
    refused(
        tmp_path,
        "larger than 5000 bytes",
        plots={"big.png": PNG + b"\x00" * 10_000},
        max_bytes=5_000,
    )


def test_file_count_is_bounded(tmp_path: Path) -> None:
    plots = {f"p{i}.png": PNG for i in range(mc.MAX_FILES + 1)}
    refused(tmp_path, "more than 64 files", plots=plots)


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("x/../../.local/lib/python3.11/site-packages/usercustomize.py", r"'\.\.' in its name"),
        ("plots/../../../../etc/cron.d/x", r"'\.\.' in its name"),
        ("../report.md", r"'\.\.' in its name"),
        ("/home/runner/.bashrc", "an absolute name"),
        ("C:/Windows/x.png", "an absolute name"),
        ("c:report.md", "an absolute name"),
        ("plots\\..\\..\\x.png", "a backslash in its name"),
        ("plots/a\x1b[31m.png", "a control character"),
        (_entry("plots/secret.png", stat.S_IFLNK | 0o777), "symbolic link mode bits"),
        (_entry("plots/fifo.png", stat.S_IFIFO | 0o644), "special-file mode bits"),
        (_entry("plots/dev.png", stat.S_IFCHR | 0o644), "special-file mode bits"),
        (_entry("plots/blk.png", stat.S_IFBLK | 0o644), "special-file mode bits"),
        ("report.md", "appears twice"),
    ],
    ids=lambda value: value.filename if isinstance(value, zipfile.ZipInfo) else str(value)[:30],
)
def test_hostile_zip_entries_are_refused_before_anything_is_written(
    tmp_path: Path, entry: zipfile.ZipInfo | str, message: str
) -> None:
    refused(tmp_path, message, extra=((entry, PNG),))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plots/roc\n.png", r"'plots/roc\n.png'"),
        (b"report\n.md", r"'report\n.md'"),
        (b"plots/a\tb.png", r"'plots/a\tb.png'"),
        # zipfile cuts this one at the NUL: its ZipInfo.filename is 'report.md'
        (b"report.md\x00.sh", r"'report.md\x00.sh'"),
        (b"plots/\x00", r"'plots/\x00'"),
    ],
    ids=["newline-png", "newline-md", "tab", "nul-after-a-real-name", "nul-only"],
)
def test_control_characters_in_raw_entry_names_are_refused_naming_the_entry(
    tmp_path: Path, raw: bytes, shown: str
) -> None:
    """The name is read as the central directory holds it (NUL included), not as ``zipfile``
    cuts it; the message shows it escaped."""
    placeholder = b"Q" * len(raw)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"pr_number": 7, "head_sha": HEAD}))
        archive.writestr(placeholder.decode(), PNG)
    data = buffer.getvalue()
    assert data.count(placeholder) == 2  # the local header and the central directory
    with pytest.raises(mc.ValidationError) as refusal:
        mc.validate(data.replace(placeholder, raw), tmp_path / "out", event())
    assert str(refusal.value) == f"artifact entry {shown} has a control character in its name"
    assert not (tmp_path / "out").exists()


def test_an_oversized_member_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "larger than", extra=(("plots/huge.png", PNG + b"\x00" * 6_000_000),))


def test_an_encrypted_member_is_refused(tmp_path: Path) -> None:
    data = bytearray(artifact())
    central = data.index(b"PK\x01\x02")  # the first entry's central-directory record
    data[central + 8] |= 0x1  # general-purpose flag bit 0: encrypted
    with pytest.raises(mc.ValidationError, match="has encryption"):
        mc.validate(bytes(data), tmp_path / "out", event())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not a zip", b"x" * 1000])
def test_bytes_that_are_not_a_zip_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(mc.ValidationError, match="not a valid zip archive"):
        mc.validate(data, tmp_path / "out", event())
    assert not (tmp_path / "out").exists()


def test_a_corrupt_member_is_refused(tmp_path: Path) -> None:
    data = bytearray(artifact(report="x" * 5000))
    start = data.index(b"report.md") + len("report.md")
    data[start + 10 : start + 40] = b"\xff" * 30  # inside the deflated bytes
    with pytest.raises(mc.ValidationError, match=r"corrupt|not a valid zip"):
        mc.validate(bytes(data), tmp_path / "out", event())
    assert not (tmp_path / "out").exists()


def test_only_real_pngs_with_plain_names_are_shown(tmp_path: Path) -> None:
    # (incompressible padding: a highly compressible member is refused by the ratio bound)
    huge = PNG + random.Random(0).randbytes(2**21)  # noqa: S311 - padding, not a secret
    plots = {"roc.png": PNG, "fake.png": b"<svg onload=alert(1)>", "huge.png": huge}
    report = "![a](plots/roc.png) ![b](plots/fake.png) ![c](plots/huge.png)"
    text = comment_of(tmp_path, report, plots)
    assert "![a](plots/roc.png)" in text
    assert "![b](plots/fake.png)" not in text
    assert "![c](plots/huge.png)" not in text
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == ["roc.png"]


def test_missing_report_gives_a_short_failure_comment(tmp_path: Path) -> None:
    number, path = mc.validate(artifact(report=None), tmp_path / "out", event())
    text = path.read_text(encoding="utf-8")
    assert number == 7
    assert "ended before it wrote a report" in text


# -- the Markdown -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        "![x](/proc/self/environ)",
        "[x](../../../../etc/passwd)",
        "[x]: /home/runner/.ssh/id_rsa",
        "  [x]:</etc/shadow>",
        "[x][ref]\n\n[ref]: /etc/passwd",
        "![x](<plots/../../etc/passwd>)",
        "<img src=/etc/passwd>",
        "<https://example.com>",
        '<a href="/etc/passwd">x</a>',
    ],
)
def test_no_link_image_definition_or_html_survives(tmp_path: Path, hostile: str) -> None:
    text = comment_of(tmp_path, f"before\n\n{hostile}\n\nafter")
    body = text.split("<sub>modelci")[0]
    for syntax in ("](", "]:", "][", "<img", "<a ", "<https"):
        assert syntax not in body
    assert hostile.replace(ZWSP, "") == hostile  # the test input itself is plain
    assert hostile in body.replace(ZWSP, "")  # and shows, as text, unchanged


def test_plot_images_keep_their_syntax_but_nothing_else_does(tmp_path: Path) -> None:
    text = comment_of(tmp_path, "![ROC curve](plots/roc.png) and ![x](plots/roc.png)(/etc/passwd)")
    assert text.count("](plots/roc.png)") == 2
    assert "(/etc/passwd)" in text  # left as text after the image


def test_safe_formatting_tags_and_tables_are_kept(tmp_path: Path) -> None:
    report = (
        "<!-- modelci-report -->\n<details><summary>Data</summary>\n\n| a | b \\| c |\n|---|---|\n"
        "| 1 < 2 | `x` |\n\n</details>"
    )
    text = comment_of(tmp_path, report)
    assert "<details><summary>Data</summary>" in text
    assert "</details>" in text
    assert "| a | b \\| c |" in text
    assert "modelci-report" not in text  # HTML comments are dropped
    assert f"1 <{ZWSP} 2" in text


def test_mentions_do_not_notify(tmp_path: Path) -> None:
    text = comment_of(tmp_path, "cc @octocat and @github/security, mail a@b.c")
    assert "@octocat" not in text
    assert f"@{ZWSP}octocat" in text
    assert f"@{ZWSP}github/security" in text


def test_control_characters_and_nul_placeholders_are_removed(tmp_path: Path) -> None:
    text = comment_of(tmp_path, "a\x00 0\x00 b\x1b[31m c\r\nd")
    assert "\x00" not in text
    assert "\x1b" not in text
    assert "\r" not in text
    assert "a 0 b[31m c\nd" in text


def test_huge_report_is_cut_to_the_comment_limit(tmp_path: Path) -> None:
    report = "\n".join(f"| row {i} | {'x' * 80} |" for i in range(5_000))
    text = comment_of(tmp_path, report)
    assert len(text) < 65_536
    assert "The report was cut to 60000 characters" in text
    assert text.split("\n\n_The report")[0].endswith("|")  # cut at a line boundary


def _cli_files(tmp_path: Path, data: bytes) -> list[str]:
    (tmp_path / "artifact.zip").write_bytes(data)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event()), encoding="utf-8")
    argv = ["validate", "--zip", str(tmp_path / "artifact.zip"), "--out", str(tmp_path / "out")]
    return [*argv, "--event", str(event_file)]


def test_cli_writes_github_outputs(tmp_path: Path) -> None:
    outputs = tmp_path / "github_output"
    assert mc.main([*_cli_files(tmp_path, artifact()), "--github-output", str(outputs)]) == 0
    assert outputs.read_text(encoding="utf-8") == (
        f"pr-number=7\ncomment={tmp_path / 'out' / 'comment.md'}\n"
    )


def test_cli_refusal_is_one_error_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _cli_files(tmp_path, artifact(metadata={"pr_number": "7; rm -rf /"}))
    assert mc.main([*argv, "--github-output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "error: artifact refused: metadata.json: pr_number is not an integer" in err
    assert not (tmp_path / "o").exists()


def test_cli_without_event_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["validate", "--zip", str(tmp_path / "a.zip"), "--out", str(tmp_path / "out")]
    argv += ["--event", str(tmp_path / "missing.json")]
    assert mc.main(argv) == 1
    assert "cannot read the event payload" in capsys.readouterr().err


# -- as the workflow runs it: python3 -I, hostile input, bounded time ----------------------------

# The interpreter outside the test environment (a venv never reads the user site), as the
# action's `python3` on the runner.
HOST_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")
# A bound on each run, not a speed target: the quadratic HTML-comment scan this replaced took
# 109 s on the first payload.
BOUND_SECONDS = 30
HOSTILE_REPORTS = {
    "unclosed-html-comments": "<!--" * 1_200_000,
    "html-comment-openers-then-one-close": "<!--" * 200_000 + "-->",
    "link-openers": "](" * 1_000_000,
    "image-openers": "![" * 1_000_000 + "](plots/roc.png)",
    "angle-brackets": "<" * 2_000_000,
    "mentions": "@a" * 1_000_000,
}


def run_isolated(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    """The validator as the action runs it, with a fresh HOME and a cwd of its own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    argv = _cli_files(tmp_path, data)
    return subprocess.run(
        [HOST_PYTHON, "-I", str(SCRIPT), *argv],
        cwd=home,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(HOSTILE_REPORTS))
def test_hostile_reports_finish_within_the_bound(tmp_path: Path, name: str) -> None:
    # stored: deflated, such repetitive text is refused by the ratio bound before any scan
    data = artifact(report=HOSTILE_REPORTS[name], compression=zipfile.ZIP_STORED)
    done = run_isolated(tmp_path, data)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "comment.md").read_text(encoding="utf-8")
    assert len(text) < 65_536


@pytest.mark.parametrize(
    ("extra", "metadata", "message"),
    [
        (
            (("x/../../.local/lib/python3.11/site-packages/usercustomize.py", b"import os"),),
            None,
            "'..'",
        ),
        ((("/home/runner/escaped", b"x"),), None, "an absolute name"),
        ((), "[" * 2040, "nested too deeply"),
    ],
    ids=["dot-dot", "absolute", "deep-metadata"],
)
def test_hostile_artifacts_are_refused_in_one_line_writing_nothing(
    tmp_path: Path, extra: Any, metadata: Any, message: str
) -> None:
    done = run_isolated(tmp_path, artifact(metadata=metadata, extra=extra))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr  # the ::error annotation, and the same as one line
    assert lines[1].startswith("error: artifact refused: ")
    assert message in lines[1]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["artifact.zip", "event.json", "home"]


# -- fetching the artifact and posting, against the GitHub API stand-in -----------------------

REPO = "acme/model"
WATERMARK = "modelci report"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github-root", REPO) as fake:
        yield fake


def _store(github: FakeGitHub, run: int, data: bytes) -> None:
    folder = github.state.root / "artifacts" / "runs" / str(run)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelci-report.zip").write_bytes(data)


def test_the_artifact_is_fetched_through_the_api_without_leaking_the_token(
    github: FakeGitHub,
) -> None:
    stored = artifact()  # built once: a zip's entries carry the time they were written
    _store(github, 4242, stored)
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    data = mc.fetch_artifact(api, mc.read_trigger(event()), "modelci-report", 10_000)
    assert data == stored
    storage = [r for r in requests_of(github) if r["path"].startswith("/storage/")]
    assert storage == [
        {"method": "GET", "path": "/storage/4242/modelci-report", "storage_saw_token": False}
    ]


def test_a_missing_or_oversized_artifact_is_refused(github: FakeGitHub) -> None:
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    trigger = mc.read_trigger(event())
    with pytest.raises(mc.ValidationError, match="run 4242 has no artifact named 'modelci-report'"):
        mc.fetch_artifact(api, trigger, "modelci-report", 10_000)
    noise = random.Random(0).randbytes(20_000)  # noqa: S311 - bytes that do not compress
    _store(github, 4242, artifact(plots={"big.png": PNG + noise}))
    with pytest.raises(mc.ValidationError, match="larger than 1000 bytes"):  # its listed size
        mc.fetch_artifact(api, trigger, "modelci-report", 1_000)


def requests_of(github: FakeGitHub) -> list[dict[str, Any]]:
    path = github.state.root / "github" / "requests.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def cml_on_path(tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ``cml`` stand-in on PATH, talking to ``github``; returns its state folder."""
    root = tmp_path / "stub-root"
    monkeypatch.setenv("PATH", f"{STUBS / 'cml-bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("MODELCI_STUBS", str(STUBS))
    monkeypatch.setenv("MODELCI_STUB_ROOT", str(root))
    monkeypatch.setenv("MODELCI_TEST_VENV", sys.prefix)
    monkeypatch.setenv("MODELCI_GITHUB_API_URL", github.url)
    monkeypatch.setenv("REPO_TOKEN", FAKE_GITHUB_TOKEN)
    monkeypatch.setenv("GITHUB_SHA", HEAD)
    return root


REPO_URL = f"https://github.com/{REPO}"


def _posted(tmp_path: Path, github: FakeGitHub, number: int = 7) -> int:
    _, comment = mc.validate(artifact(), tmp_path / "out", event())
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    return int(mc.post(comment.parent, number, REPO_URL, WATERMARK, None, api))


def _copied_watermark() -> str:
    return f'![](https://cml.dev/watermark.png#{HEAD} "CML watermark {WATERMARK}")'


def test_one_comment_remains_whatever_the_history(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    for i in range(35):
        github.add_comment(7, "alice", f"comment {i}")
    first = _posted(tmp_path, github)
    # The older modelci comment is on the second page: CML's `update` (first 30) would miss it.
    for i in range(35, 70):
        github.add_comment(7, "alice", f"comment {i}")
    second = _posted(tmp_path, github)
    ours = [c for c in github.state.comments if c["user"] == BOT]
    assert [c["id"] for c in ours] == [second]
    assert first != second
    assert mc.watermark_pattern(WATERMARK).search(ours[0]["body"])
    assert len([c for c in github.state.comments if c["user"] == "alice"]) == 70


def test_a_copied_watermark_in_another_users_comment_is_never_touched(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    theirs = github.add_comment(7, "mallory", f"look: {_copied_watermark()}")
    before = dict(theirs)
    _posted(tmp_path, github)
    _posted(tmp_path, github)
    assert theirs == before  # no edit
    assert theirs in github.state.comments  # no delete
    assert len([c for c in github.state.comments if c["user"] == BOT]) == 1
    touched = [r for r in requests_of(github) if r["method"] in ("PATCH", "DELETE")]
    assert all(r["path"] != f"/repos/{REPO}/issues/comments/{theirs['id']}" for r in touched)


def test_cml_update_is_what_fails_on_a_copied_watermark(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    """The stand-in does what CML does: it PATCHes another user's comment and gets a 403."""
    github.add_comment(7, "mallory", f"look: {_copied_watermark()}")
    (tmp_path / "c.md").write_text("report", encoding="utf-8")
    done = subprocess.run(
        [
            *("cml", "comment", "update", "c.md", "--target", "pr/7"),
            *("--watermark-title", WATERMARK, "--repo", f"https://github.com/{REPO}"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Resource not accessible by integration" in done.stderr


TABLE_REPORT = (
    "| model | name |\n|---|---|\n| a | titanic\\|v2 \\~x\\~ |\n\n![ROC](plots/roc.png)\n"
)


def test_with_upload_on_only_the_validated_plots_are_uploaded_and_the_body_is_as_written(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    _, comment = mc.validate(artifact(report=TABLE_REPORT), tmp_path / "out", event())
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    mc.post(comment.parent, 7, REPO_URL, WATERMARK, f"{github.url}/assets", api)
    calls = [json.loads(line) for line in (cml_on_path / "calls.jsonl").read_text().splitlines()]
    uploads = [p for c in calls for p in c["published"]]
    assert [(Path(u["path"]).name, u["inside"], u["png"]) for u in uploads] == [
        ("roc.png", True, True)
    ]
    assert [r["sha256"] for r in requests_of(github) if r["path"] == "/assets"] == [
        uploads[0]["sha256"]
    ]
    (posted,) = [c for c in github.state.comments if c["user"] == BOT]
    assert "| a | titanic\\|v2 \\~x\\~ |" in posted["body"]
    assert f"![ROC]({ASSET_BASE}/{uploads[0]['sha256']}?cml=png&" in posted["body"]


def test_by_default_nothing_is_uploaded_and_the_plot_images_are_dropped(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    _, comment = mc.validate(artifact(report=TABLE_REPORT), tmp_path / "out", event())
    assert "![ROC](plots/roc.png)" in comment.read_text("utf-8")
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    mc.post(comment.parent, 7, REPO_URL, WATERMARK, None, api)
    calls = [json.loads(line) for line in (cml_on_path / "calls.jsonl").read_text().splitlines()]
    assert [c["args"][:2] for c in calls] == [["comment", "create"]]
    assert "--no-publish" in calls[0]["args"]
    assert [r for r in requests_of(github) if r["path"] == "/assets"] == []
    (posted,) = [c for c in github.state.comments if c["user"] == BOT]
    assert "plots/roc.png" not in posted["body"]
    assert "![ROC]" not in posted["body"]
    assert "PNG upload is off" in posted["body"]
    assert "| a | titanic\\|v2 \\~x\\~ |" in posted["body"]


def test_a_report_without_plot_images_gets_no_upload_note() -> None:
    assert mc.drop_plot_images("## report\n\nno plots\n") == "## report\n\nno plots\n"


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("", None),
        ("  ", None),
        ("cml", "https://asset.cml.dev"),
        ("https://images.acme.example/upload", "https://images.acme.example/upload"),
    ],
)
def test_upload_plots_is_off_unless_asked(value: str, target: str | None) -> None:
    assert mc.upload_target(value) == target


@pytest.mark.parametrize("value", ["yes", "true", "http://images.acme.example", "asset.cml.dev"])
def test_an_unclear_upload_plots_value_is_refused(value: str) -> None:
    with pytest.raises(mc.ValidationError, match="upload-plots must be empty"):
        mc.upload_target(value)


def test_every_cml_call_names_the_repository_outside_a_checkout(
    tmp_path: Path, github: FakeGitHub, cml_on_path: Path
) -> None:
    """The folder is no git checkout: CML without --repo would read the git remote and fail."""
    _, comment = mc.validate(artifact(report=TABLE_REPORT), tmp_path / "out", event())
    api = mc.GitHub(FAKE_GITHUB_TOKEN, github.url)
    mc.post(comment.parent, 7, REPO_URL, WATERMARK, f"{github.url}/assets", api)
    calls = [json.loads(line) for line in (cml_on_path / "calls.jsonl").read_text().splitlines()]
    assert [c["args"][:2] for c in calls] == [["asset", "publish"], ["comment", "create"]]
    for call in calls:
        assert call["args"][-2:] == ["--repo", REPO_URL]
        assert call["in_checkout"] is False


def test_the_stand_in_fails_like_cml_without_a_repository_outside_a_checkout(
    tmp_path: Path, cml_on_path: Path
) -> None:
    (tmp_path / "c.md").write_text("report", encoding="utf-8")
    done = subprocess.run(
        ["cml", "comment", "create", "c.md", "--target", "pr/7"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Command failed: git config --get remote.origin.url" in done.stderr


@pytest.mark.parametrize(
    ("server", "repository", "message"),
    [
        ("", REPO, "invalid server URL"),
        ("http://github.example", REPO, "invalid server URL"),
        ("https://github.com", "acme/model/x", "invalid repository"),
    ],
)
def test_the_repository_url_is_checked(server: str, repository: str, message: str) -> None:
    with pytest.raises(mc.ValidationError, match=message):
        mc.cml_repo_url(server, repository)


@pytest.mark.parametrize("isolated", [True, False], ids=["python3 -I", "plain python3"])
def test_isolated_mode_ignores_a_planted_usercustomize(tmp_path: Path, isolated: bool) -> None:
    """What the climbing zip entry planted: ``-I`` (as the action runs it) never imports it."""
    home = tmp_path / "home"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = home / ".local" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    canary = tmp_path / "ran"
    (site / "usercustomize.py").write_text(f"open({str(canary)!r}, 'w').close()\n", "utf-8")
    flags = ["-I"] if isolated else []
    done = subprocess.run(
        [HOST_PYTHON, *flags, str(SCRIPT), *_cli_files(tmp_path, artifact())],
        cwd=home,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert canary.exists() is not isolated


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.github.com", True),
        ("http://127.0.0.1:8080/api", True),
        ("http://127.0.0.1.attacker.example/api", False),
        ("http://api.github.com", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_https_or_loopback_http_urls_are_called(url: str, allowed: bool) -> None:
    assert mc._allowed_url(url) is allowed


@pytest.mark.parametrize(
    "text",
    [
        "see https://evil.example/x",
        "see WWW.evil.example",
        "fixes #12 and owner/repo#45",
    ],
)
def test_bare_links_github_would_make_are_split(text: str) -> None:
    out = mc.defuse(text)
    assert out.replace(mc.ZWSP, "") == text  # renders the same
    for linked in ("://", "www.", "WWW.", "#1", "#4"):
        assert linked not in out


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ('{"level":"error","message":"Command failed: git config","stack":"Error: ..."}',
         "Command failed: git config"),
        ("plain text", "plain text"),
        ('["not", "an", "entry"]', '["not", "an", "entry"]'),
    ],
)  # fmt: skip
def test_cml_errors_are_shown_by_their_message(line: str, shown: str) -> None:
    assert mc._cml_message(line) == shown


@pytest.mark.parametrize(
    ("redirect_to", "kept"),
    [
        (lambda server, other: "/final", True),  # same origin
        (lambda server, other: server.url("/final", host="localhost"), False),  # another host
        (lambda server, other: other.url("/final"), False),  # another port
    ],
    ids=["same-origin", "other-host", "other-port"],
)
def test_the_validators_client_sends_the_token_where_modelcis_http_module_does(
    redirect_to: Any, kept: bool
) -> None:
    """The validator runs isolated with its own stdlib client; on redirects it must send the
    Authorization header exactly where the shared ``modelci._http`` does (its origin only)."""
    from modelci.github_api import GitHub as SharedGitHub
    from tests.http_support import Answer, Loopback, redirect

    seen = {}
    with Loopback({"/final": Answer()}) as other:
        routes = {"/start": redirect(lambda s: redirect_to(s, other)), "/final": Answer()}
        with Loopback(routes) as server:
            for name, fetch in (
                ("validator", lambda: mc.GitHub(FAKE_GITHUB_TOKEN, server.url("")).request(
                    "GET", server.url("/start"))),
                ("shared", lambda: SharedGitHub(server.url(""), "o/r", FAKE_GITHUB_TOKEN).download(
                    server.url("/start"), 100)),
            ):  # fmt: skip
                assert fetch() == b"ok"
                seen[name] = [(s.path, s.authorization) for s in server.seen + other.seen]
                server.seen.clear()
                other.seen.clear()
    assert seen["validator"] == seen["shared"]
    token = f"Bearer {FAKE_GITHUB_TOKEN}"
    assert seen["shared"] == [("/start", token), ("/final", token if kept else None)]


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_compressed_bomb_is_refused_by_its_method_without_being_expanded(
    tmp_path: Path, method: int
) -> None:
    """Issue 19.5: a 1.8 KB bzip2 artifact drove the validator to 4.2 GB before it was refused
    as corrupt. Only stored and deflated members are read; nothing else is decompressed."""
    import tracemalloc

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"pr_number": 7, "head_sha": HEAD}))
        archive.writestr("report.md", b"\n" * 20_000_000, compress_type=method)
    data = _understated(buffer.getvalue(), "report.md", 100)
    assert len(data) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(mc.ValidationError, match="compression method"):
            mc.validate(data, tmp_path / "out", event())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert not (tmp_path / "out").exists()


def test_a_member_expanding_beyond_the_ratio_is_refused_reading_in_bounded_chunks(
    tmp_path: Path,
) -> None:
    """A deflated member of 4 MB of padding (under the 5 MB total) expands about a thousand
    times its compressed size: refused once past the ratio floor, never held whole."""
    import tracemalloc

    data = artifact(extra=(("notes.txt", b" " * 4_000_000),))
    tracemalloc.start()
    try:
        with pytest.raises(mc.ValidationError, match="expands more than"):
            mc.validate(data, tmp_path / "out", event())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_500_000
    assert not (tmp_path / "out").exists()


def _understated(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the central directory claiming ``name`` holds ``size`` bytes."""
    import struct

    out = bytearray(data)
    start = 0
    while (start := out.find(b"PK\x01\x02", start + 1)) != -1:
        length = struct.unpack_from("<H", out, start + 28)[0]
        if out[start + 46 : start + 46 + length] == name.encode():
            struct.pack_into("<I", out, start + 24, size)
    return bytes(out)


def test_the_validator_defuses_links_as_modelci_judge_markdown_does() -> None:
    """One set of link rules: the validator's standard-library copy and
    ``modelci.judge.markdown.defuse_links`` give the same text on every category of issue 19.6."""
    from modelci.judge.markdown import defuse_links
    from tests.unit.test_markdown_defuse import HOSTILE

    for text in HOSTILE.values():
        assert mc.defuse(text) == defuse_links(text), text
