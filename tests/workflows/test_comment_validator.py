"""Unit tests of .github/actions/comment/modelci_comment.py, the fork-safe comment's validator.

The artifact it reads was produced by a job that ran a pull request's code, so each test hands it
something a hostile pull request could upload and checks what reaches the comment.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from tests.conftest import REPO_ROOT

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
    root: Path,
    report: str | None = "## report\n\n![ROC](plots/roc.png)\n",
    metadata: Any = None,
    plots: dict[str, bytes] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    meta = {"pr_number": 7, "head_sha": HEAD, "run_id": 1} if metadata is None else metadata
    (root / "metadata.json").write_text(
        meta if isinstance(meta, str) else json.dumps(meta), encoding="utf-8"
    )
    if report is not None:
        (root / "report.md").write_text(report, encoding="utf-8")
    for name, data in ({"roc.png": PNG} if plots is None else plots).items():
        (root / "plots").mkdir(exist_ok=True)
        (root / "plots" / name).write_bytes(data)
    return root


def comment_of(tmp_path: Path, report: str, plots: dict[str, bytes] | None = None) -> str:
    number, path = mc.validate(
        artifact(tmp_path / "in", report=report, plots=plots), tmp_path / "out", event()
    )
    assert number == 7
    return str(path.read_text(encoding="utf-8"))


def refused(tmp_path: Path, match: str, **kwargs: Any) -> None:
    evt = kwargs.pop("evt", event())
    with pytest.raises(mc.ValidationError, match=match):
        mc.validate(artifact(tmp_path / "in", **kwargs), tmp_path / "out", evt)


# -- the pull-request number ------------------------------------------------------------------


def test_valid_artifact_gives_the_pr_number_and_a_comment_with_the_plot(tmp_path: Path) -> None:
    number, path = mc.validate(artifact(tmp_path / "in"), tmp_path / "out", event())
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
        mc.validate(artifact(tmp_path / "in"), tmp_path / "out", evt)


@pytest.mark.parametrize("metadata", ["{not json", "[]", "x" * 5000])
def test_metadata_must_be_small_json(tmp_path: Path, metadata: str) -> None:
    refused(tmp_path, "metadata.json", metadata=metadata)


def test_missing_metadata_is_refused(tmp_path: Path) -> None:
    root = artifact(tmp_path / "in")
    (root / "metadata.json").unlink()
    with pytest.raises(mc.ValidationError, match=r"no metadata\.json"):
        mc.validate(root, tmp_path / "out", event())


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
    api = mc.github_api("t0ken", fake_api)
    number, _ = mc.validate(artifact(tmp_path / "in"), tmp_path / "out", event(None), api=api)
    assert number == 7
    (request,) = _Pulls.seen
    assert request.startswith("/repos/acme/model/pulls?state=open&per_page=100&head=fork%3Afeature")
    assert request.endswith("Bearer t0ken")


def test_fork_lookup_still_requires_the_number_to_match(tmp_path: Path, fake_api: str) -> None:
    _Pulls.pulls = [{"number": 9, "head": {"sha": HEAD, "repo": {"full_name": "fork/model"}}}]
    api = mc.github_api("t0ken", fake_api)
    with pytest.raises(mc.ValidationError, match="belongs to #9"):
        mc.validate(artifact(tmp_path / "in"), tmp_path / "out", event(None), api=api)


def test_api_url_must_be_https() -> None:
    with pytest.raises(mc.ValidationError, match="non-https"):
        mc.github_api("t", "http://evil.example")("/repos/x/y/pulls")


# -- the artifact's files ---------------------------------------------------------------------


def test_artifact_size_is_bounded(tmp_path: Path) -> None:
    root = artifact(tmp_path / "in", plots={"big.png": PNG + b"\x00" * 10_000})
    with pytest.raises(mc.ValidationError, match="larger than 5000 bytes"):
        mc.validate(root, tmp_path / "out", event(), max_bytes=5_000)


def test_file_count_is_bounded(tmp_path: Path) -> None:
    plots = {f"p{i}.png": PNG for i in range(mc.MAX_FILES + 1)}
    refused(tmp_path, "more than 64 files", plots=plots)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    root = artifact(tmp_path / "in")
    (root / "plots" / "secret.png").symlink_to("/etc/passwd")
    with pytest.raises(mc.ValidationError, match=r"symbolic link: plots/secret\.png"):
        mc.validate(root, tmp_path / "out", event())


def test_missing_artifact_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(mc.ValidationError, match="artifact directory not found"):
        mc.validate(tmp_path / "nothing", tmp_path / "out", event())


def test_only_real_pngs_with_plain_names_are_shown(tmp_path: Path) -> None:
    plots = {"roc.png": PNG, "fake.png": b"<svg onload=alert(1)>", "huge.png": PNG + b"0" * 2**21}
    report = "![a](plots/roc.png) ![b](plots/fake.png) ![c](plots/huge.png)"
    text = comment_of(tmp_path, report, plots)
    assert "![a](plots/roc.png)" in text
    assert "![b](plots/fake.png)" not in text
    assert "![c](plots/huge.png)" not in text
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == ["roc.png"]


def test_missing_report_gives_a_short_failure_comment(tmp_path: Path) -> None:
    number, path = mc.validate(artifact(tmp_path / "in", report=None), tmp_path / "out", event())
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


def test_cli_writes_github_outputs(tmp_path: Path) -> None:
    root = artifact(tmp_path / "in")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event()), encoding="utf-8")
    outputs = tmp_path / "github_output"
    argv = ["validate", "--artifact", str(root), "--out", str(tmp_path / "out")]
    argv += ["--event", str(event_file), "--github-output", str(outputs)]
    assert mc.main(argv) == 0
    assert outputs.read_text(encoding="utf-8") == (
        f"pr-number=7\ncomment={tmp_path / 'out' / 'comment.md'}\n"
    )


def test_cli_refusal_is_one_error_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = artifact(tmp_path / "in", metadata={"pr_number": "7; rm -rf /"})
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event()), encoding="utf-8")
    argv = ["validate", "--artifact", str(root), "--out", str(tmp_path / "out")]
    argv += ["--event", str(event_file), "--github-output", str(tmp_path / "o")]
    assert mc.main(argv) == 1
    err = capsys.readouterr().err
    assert "error: artifact refused: metadata.json: pr_number is not an integer" in err
    assert not (tmp_path / "o").exists()


def test_cli_without_event_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["validate", "--artifact", str(tmp_path), "--out", str(tmp_path / "out")]
    argv += ["--event", str(tmp_path / "missing.json")]
    assert mc.main(argv) == 1
    assert "cannot read the event payload" in capsys.readouterr().err
