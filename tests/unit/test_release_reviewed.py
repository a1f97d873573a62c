"""``modelci release reviewed``: only the successful run of the named pull-request workflow at the
merged head counts, and a missing report fails unless the opt-out is given (and reported).

The GitHub API is a small server on 127.0.0.1 that lists whatever runs a test gives it, for any
filter: the client must check each run itself (a pull request can add a workflow of its own, and
its failed run is listed for the same head commit).
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelci.cli import main
from modelci.registry.release import ReleaseError, find_reviewed_report
from tests.http_support import serve_in_thread

pytestmark = pytest.mark.unit

REPO = "acme/model"
MERGE = "1" * 40
HEAD = "2" * 40
OTHER = "3" * 40
SHA256 = "a" * 64


def run(run_id: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": run_id,
        "event": "pull_request",
        "conclusion": "success",
        "head_sha": HEAD,
        "path": ".github/workflows/pr.yml",
    }
    return {**base, **fields}


@dataclass
class Api:
    runs: list[dict[str, Any]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    url: str = ""
    archive: bytes | None = None  # the artifact every run has, instead of a good report
    # artifacts by name, when a test gives them (a run then has these and no others)
    named: dict[str, bytes] | None = None


def _zip(run_id: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("report.json", json.dumps({"model": {"sha256": SHA256}}))
        archive.writestr("metadata.json", json.dumps({"pr_number": 7, "head_sha": HEAD}))
    return buffer.getvalue()


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(self.path)
            path = self.path.split("?")[0]
            base = f"/repos/{REPO}"
            body: Any
            if path.startswith(f"{base}/commits/") and path.endswith("/pulls"):
                # Whatever the commit, the one pull request that holds it was merged as MERGE.
                body = [{"number": 7, "merge_commit_sha": MERGE, "head": {"sha": HEAD}}]
            elif path.startswith(f"{base}/actions/workflows/") or path == f"{base}/actions/runs":
                body = {"workflow_runs": state.runs}
            elif path.startswith(f"{base}/actions/runs/") and path.endswith("/artifacts"):
                run_id = path.split("/")[-2]
                name = self.path.partition("?name=")[2]
                item = {"name": name, "archive_download_url": f"{state.url}/zip/{run_id}/{name}"}
                absent = state.named is not None and name not in state.named
                body = {"artifacts": [] if absent else [item]}
            elif path.startswith("/zip/"):
                name = path.split("/")[-1]
                if state.named is not None:
                    data = state.named[name]
                else:
                    data = state.archive or _zip(int(path.split("/")[-2]))
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            else:
                body = {"message": "Not Found"}
            data = json.dumps(body).encode()
            self.send_response(200 if body != {"message": "Not Found"} else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = serve_in_thread(httpd)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def find(api: Api) -> dict[str, Any] | None:
    return find_reviewed_report(api.url, REPO, MERGE, "t0ken", "modelci-report", "pr.yml")


def test_the_successful_run_of_the_named_workflow_at_the_head_is_found(api: Api) -> None:
    api.runs = [run(11)]
    assert find(api) == {
        "pr_number": 7,
        "head_sha": HEAD,
        "run_id": 11,
        "model": {"sha256": SHA256},
    }
    (listing,) = [s for s in api.seen if "/runs?" in s]
    assert listing.startswith(f"/repos/{REPO}/actions/workflows/pr.yml/runs?head_sha={HEAD}")
    assert "status=success" in listing


def test_a_dispatched_run_at_the_head_is_found(api: Api) -> None:
    """retrain.yml starts the PR workflow with workflow_dispatch on its PR's head (a PR opened
    with GITHUB_TOKEN starts no pull_request run): that run is the reviewed one."""
    api.runs = [run(12, event="workflow_dispatch")]
    found = find(api)
    assert found is not None
    assert (found["run_id"], found["pr_number"]) == (12, 7)


@pytest.mark.parametrize(
    "refused",
    [
        run(21, conclusion="failure"),
        run(22, conclusion="cancelled"),
        run(23, path=".github/workflows/evil.yml"),
        run(24, head_sha=OTHER),
        run(25, event="push"),
    ],
    ids=["failed", "cancelled", "another-workflow-file", "another-head-commit", "not-a-pr-run"],
)
def test_other_runs_are_refused(api: Api, refused: dict[str, Any]) -> None:
    api.runs = [refused]
    assert find(api) is None
    assert not any(s.startswith("/zip/") for s in api.seen)  # not even downloaded


def test_a_good_run_listed_after_a_bad_one_is_the_one_used(api: Api) -> None:
    api.runs = [run(31, path=".github/workflows/evil.yml"), run(32)]
    found = find(api)
    assert found is not None
    assert found["run_id"] == 32


def test_a_commit_no_pull_request_was_merged_as_has_no_report(api: Api) -> None:
    """The commit is in a pull request, but that pull request was merged as another commit."""
    api.runs = [run(41)]
    assert find_reviewed_report(api.url, REPO, OTHER, "t", "modelci-report", "pr.yml") is None


def test_the_workflow_file_name_is_checked() -> None:
    with pytest.raises(ReleaseError, match="invalid workflow file name"):
        find_reviewed_report("http://127.0.0.1:9", REPO, MERGE, "", "r", "../x.yml")


def _archive(**members: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name.replace("_", "."), json.dumps(content))
    return buffer.getvalue()


def _matrix_artifacts() -> dict[str, bytes]:
    """What ci.yml's matrix leaves: the merged artifact (the comment and which PR it belongs to,
    no report.json with several projects) and one per model job (its report.json)."""
    meta = {"pr_number": 7, "head_sha": HEAD}
    return {
        "modelci-report": _archive(metadata_json=meta, report_md="the comment"),
        "modelci-report-fraud": _archive(report_json={"model": {"sha256": SHA256}}),
        "modelci-report-churn": _archive(report_json={"model": {"sha256": "b" * 64}}),
    }


def test_a_projects_report_is_read_from_its_model_jobs_artifact(api: Api) -> None:
    api.runs = [run(81)]
    api.named = _matrix_artifacts()
    args = (api.url, REPO, MERGE, "t", "modelci-report", "pr.yml")
    found = find_reviewed_report(*args, "fraud")
    assert found is not None
    assert (found["run_id"], found["model"]["sha256"]) == (81, SHA256)
    churn = find_reviewed_report(*args, "churn")
    assert churn is not None
    assert churn["model"]["sha256"] == "b" * 64
    # without a project the merged artifact of several projects holds no report: none found
    assert find_reviewed_report(*args) is None
    # a project that did not run (no artifact of its own) has no reviewed report
    assert find_reviewed_report(*args, "forecast") is None


def test_a_projects_report_needs_the_runs_metadata(api: Api) -> None:
    """The model job's artifact says nothing of the PR: without the merged artifact's
    metadata.json (its PR number and head commit) the report is not the reviewed one."""
    api.runs = [run(82)]
    api.named = _matrix_artifacts()
    api.named["modelci-report"] = _archive(metadata_json={"pr_number": 8, "head_sha": HEAD})
    assert (
        find_reviewed_report(api.url, REPO, MERGE, "t", "modelci-report", "pr.yml", "fraud") is None
    )


def test_the_project_name_is_checked() -> None:
    with pytest.raises(ReleaseError, match=r"invalid project name '\.\./x'"):
        find_reviewed_report("http://127.0.0.1:9", REPO, MERGE, "", "r", "pr.yml", "../x")


def _cli(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv("MODELCI_GITHUB_API_URL", api.url)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    argv = [
        "release",
        "reviewed",
        "--repo",
        REPO,
        "--commit",
        MERGE,
        "--out",
        str(tmp_path / "out"),
    ]
    return main([*argv, *extra])


def test_a_missing_report_fails_by_default(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.runs = [run(51, conclusion="failure")]
    assert _cli(api, tmp_path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "no report of a successful pr.yml pull_request run" in err
    assert "require-report: false" in err
    assert not (tmp_path / "out").exists()
    assert "refused" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_the_opt_out_passes_and_the_summary_says_the_check_is_off(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.runs = [run(61, head_sha=OTHER)]
    assert _cli(api, tmp_path, monkeypatch, "--require", "false") == 0
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "The reviewed-model check is off" in summary


def test_a_found_report_is_written_and_summarised(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.runs = [run(71)]
    assert _cli(api, tmp_path, monkeypatch) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["run_id"] == 71
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "run 71 of `pr.yml`" in summary
    assert "check is off" not in summary


def test_the_cli_takes_the_project(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.runs = [run(91)]
    api.named = _matrix_artifacts()
    assert _cli(api, tmp_path, monkeypatch, "--project", "churn") == 0
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (written["run_id"], written["model"]["sha256"]) == (91, "b" * 64)


def test_an_empty_project_reads_the_merged_artifact(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """release-project.yml passes --project "$REPORT_PROJECT", which the release plan leaves
    empty in a repository with one project: its report is the merged artifact's report.json."""
    api.runs = [run(11)]
    assert _cli(api, tmp_path, monkeypatch, "--project", "") == 0
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (written["run_id"], written["model"]["sha256"]) == (11, SHA256)
    assert not [s for s in api.seen if "modelci-report-" in s]


def _bomb(method: int, pad: int) -> bytes:
    """A report artifact whose report.json is padded with ``pad`` zero bytes, with ``method``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        archive.writestr("report.json", b"{}" + b" " * pad)
        archive.writestr("metadata.json", json.dumps({"pr_number": 7, "head_sha": HEAD}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("method", "pad", "reason"),
    [
        # 20 MB of spaces in a few hundred bytes: bzip2 is refused before anything is read
        (zipfile.ZIP_BZIP2, 20_000_000, "compression method 12"),
        (zipfile.ZIP_LZMA, 20_000_000, "compression method 14"),
        # deflated: the header's honest size is over the cap; 900 KB of spaces is under the cap
        # but expands about a thousand times
        (zipfile.ZIP_DEFLATED, 20_000_000, "20000002 bytes, more than 1048576"),
        (zipfile.ZIP_DEFLATED, 900_000, "expands more than 100 times"),
    ],
)
def test_a_compressed_bomb_is_refused_without_being_expanded(
    api: Api, method: int, pad: int, reason: str
) -> None:
    api.runs = [run(11)]
    api.archive = _bomb(method, pad)
    assert len(api.archive) < 40_000
    tracemalloc.start()
    try:
        with pytest.raises(ReleaseError, match=f"report artifact of run 11 refused: .*{reason}"):
            find(api)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000


def test_a_lying_size_header_reads_no_more_than_it_claims(api: Api) -> None:
    """The central directory says 2 bytes; zipfile stops there and the CRC refuses the rest."""
    data = bytearray(_bomb(zipfile.ZIP_DEFLATED, 50_000))
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"report.json"))
    data[central + 24 : central + 28] = (2).to_bytes(4, "little")
    api.runs = [run(11)]
    api.archive = bytes(data)
    with pytest.raises(ReleaseError, match="not a readable zip"):
        find(api)
