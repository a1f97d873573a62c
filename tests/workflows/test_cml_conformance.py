"""The ``cml`` stand-in held to the real CML 0.20.6: the same scenarios against both.

Each scenario runs the comment action's post step (``python3 -I modelci_comment.py post``, in a
folder that is no git checkout, as the comment job runs it) or a bare ``cml`` call, once with the
stand-in (``stubs/cml-bin/cml``) and, when ``MODELCI_REAL_CML`` names a CML checkout built from its
source (the folder holding ``bin/cml.js``: ``git archive`` of the pinned tag, ``npm ci
--omit=dev``), once with the real CML under ``node --no-experimental-fetch``. Without it the real
runs skip, saying so. Each scenario checks what modelci needs; ``test_the_stand_in_answers_as_the_
real_cml_does`` fails when the two differ in exit code, error message, requests or comments.

How the real CML reaches the local API: for any host but github.com it calls
``https://HOST/api/v3`` (src/drivers/github.js:75-80) and ignores GITHUB_API_URL, so the recording
``fake_github`` serves https on 127.0.0.1 (also under ``/api/v3``, as GitHub Enterprise Server
does) with a certificate made here, ``GITHUB_SERVER_URL`` is that server (the post step builds
``--repo`` from it), and node and Python trust the certificate through ``NODE_EXTRA_CA_CERTS`` and
``SSL_CERT_FILE``. ``HTTPS_PROXY`` is a second recording server, which logs and refuses every
``CONNECT`` (CML's API and telemetry clients go through ``proxy-agent``, src/drivers/github.js:66,
src/analytics.js:222), and ``NO_PROXY`` exempts 127.0.0.1: a connection to any other host shows
in the log. The telemetry scenario proves the recorder sees one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.workflows.fake_github import ASSET_BASE, BOT, FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN, STUBS

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

SCRIPT = REPO_ROOT / ".github" / "actions" / "comment" / "modelci_comment.py"
HOST_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")
REPO = "acme/model"
WATERMARK = "modelci report"
SHA = "c0ffee" + "0" * 34
# A PNG signature and header, so libmagic (real CML's MIME guess) names it image/png.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 16
COPIED = f'![](https://cml.dev/watermark.png#{SHA} "CML watermark {WATERMARK}")'
GIT_FALLBACK = "Command failed: git config --get remote.origin.url"
REAL_CML = os.environ.get("MODELCI_REAL_CML", "")
BACKENDS = ["stand-in", "real"]


def _real_cml_problem() -> str | None:
    if not REAL_CML:
        return "MODELCI_REAL_CML is not set (a CML checkout built from source: its bin/cml.js)"
    if not (Path(REAL_CML) / "bin" / "cml.js").is_file():
        return f"MODELCI_REAL_CML={REAL_CML} holds no bin/cml.js"
    if shutil.which("node") is None:
        return "node is not on PATH (the real CML runs on it)"
    return None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 and a server context holding it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (make system-deps installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


@dataclass
class World:
    """One scenario's servers, folders and ``cml``; ``post`` and ``cml`` record what they did."""

    github: FakeGitHub
    proxy: FakeGitHub
    folder: Path
    bin: Path
    cert: Path
    results: list[tuple[int, str]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """What the comment job's post step has, pointed at the local servers; nothing else."""
        home = self.folder / "home"  # CML adds safe.directory entries to ~/.gitconfig
        home.mkdir(exist_ok=True)
        node = shutil.which("node")
        paths = [str(self.bin), *([str(Path(node).parent)] if node else []), "/usr/bin", "/bin"]
        env = {
            "PATH": os.pathsep.join(paths),
            "HOME": str(home),
            "GITHUB_SERVER_URL": self.github.url,
            "GITHUB_API_URL": f"{self.github.url}/api/v3",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_REPOSITORY_OWNER": REPO.split("/")[0],
            "GITHUB_ACTOR": BOT,
            "GITHUB_EVENT_NAME": "workflow_run",
            "GITHUB_SHA": SHA,
            "GITHUB_WORKFLOW": "pr-comment",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_TOKEN": FAKE_GITHUB_TOKEN,
            "REPO_TOKEN": FAKE_GITHUB_TOKEN,
            "ITERATIVE_DO_NOT_TRACK": "1",
            "NODE_EXTRA_CA_CERTS": str(self.cert),
            "SSL_CERT_FILE": str(self.cert),
            "HTTPS_PROXY": self.proxy.url,
            "HTTP_PROXY": self.proxy.url,
            "NO_PROXY": "127.0.0.1",
            "MODELCI_STUBS": str(STUBS),
            "MODELCI_STUB_ROOT": str(self.folder / "stub-root"),
            "MODELCI_TEST_VENV": sys.prefix,
            "MODELCI_REAL_CML": REAL_CML,
        }
        env.update(extra)
        return {key: value for key, value in env.items() if value}

    def post(self, tag: str, upload: str = "", number: int = 7) -> None:
        """The post step on a report tagged ``tag`` (with one plot image)."""
        out = self.folder / f"comment-{len(self.results)}"
        (out / "plots").mkdir(parents=True)
        (out / "plots" / "roc.png").write_bytes(PNG)
        report = f"## modelci report {tag}\n\n| model | accuracy |\n|---|---|\n| a | 0.8 |\n\n"
        (out / "comment.md").write_text(report + "![ROC](plots/roc.png)\n", encoding="utf-8")
        args = ["post", "--dir", ".", "--pr", str(number), "--watermark", WATERMARK]
        self._run([HOST_PYTHON, "-I", str(SCRIPT), *args, "--upload-plots", upload], out)

    def cml(self, *args: str, **env: str) -> None:
        """``cml ARGS`` on a one-line report, in a folder that is no git checkout."""
        out = self.folder / f"cml-{len(self.results)}"
        out.mkdir()
        (out / "c.md").write_text("a report\n", encoding="utf-8")
        self._run([str(self.bin / "cml"), *args], out, **env)

    def _run(self, argv: list[str], cwd: Path, **env: str) -> None:
        done = subprocess.run(
            argv, cwd=cwd, env=self.env(**env), capture_output=True, text=True, timeout=180
        )
        self.results.append((done.returncode, done.stderr))


@dataclass(frozen=True)
class Outcome:
    """What a scenario did, normalised so that the two backends can be compared."""

    exits: tuple[int, ...]
    errors: tuple[str, ...]
    requests: tuple[tuple[str, str, str, str], ...]
    comments: tuple[tuple[str, str], ...]
    raw_requests: tuple[dict[str, Any], ...]
    raw_comments: tuple[dict[str, Any], ...]
    stderr: str


_COMMENT_ID = re.compile(r"/comments/\d+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _error(stderr: str) -> str:
    """The message of CML's error line (a JSON log line), or modelci's ``error:`` line."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("error: "):
            return line
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            return str(entry.get("message"))
    return ""


def _outcome(world: World) -> Outcome:
    log = world.github.state.root / "github" / "requests.jsonl"
    raw = [json.loads(line) for line in log.read_text("utf-8").splitlines()] if log.exists() else []
    requests = tuple(
        (
            r["method"],
            _COMMENT_ID.sub("/comments/ID", urllib.parse.unquote(r["path"])),
            r.get("query", ""),
            str(r.get("sha256") or r.get("content_type") or ""),
        )
        for r in raw
    )
    comments = world.github.state.comments
    return Outcome(
        exits=tuple(code for code, _ in world.results),
        # the real CML's HTTP errors carry a documentation URL after " - "
        errors=tuple(_error(stderr).split(" - ")[0] for _, stderr in world.results),
        requests=requests,
        comments=tuple((c["user"], _UUID.sub("UUID", c["body"])) for c in comments),
        raw_requests=tuple(raw),
        raw_comments=tuple(dict(c) for c in comments),
        stderr="\n".join(stderr[-1500:] for _, stderr in world.results),
    )


def one_comment(world: World) -> None:
    world.post("first")


def second_post(world: World) -> None:
    world.post("first")
    world.post("second")


def others_untouched(world: World) -> None:
    world.github.add_comment(7, "alice", "looks good")
    world.github.add_comment(7, "mallory", f"I copied it: {COPIED}")
    world.post("first")
    world.post("second")


def over_60_comments(world: World) -> None:
    for i in range(120):
        world.github.add_comment(7, "alice", f"review comment {i}")
    world.post("first")  # comment 121: on page 5 of 30, page 2 of 100
    for i in range(120, 125):
        world.github.add_comment(7, "alice", f"review comment {i}")
    world.post("second")


def upload_opt_in(world: World) -> None:
    world.post("first", upload=f"{world.github.url}/assets")


def no_repo_outside_a_checkout(world: World) -> None:
    world.cml("comment", "create", "c.md", "--target", "pr/7")
    world.cml("asset", "publish", "c.md", "--url", f"{world.github.url}/assets")


def update_reads_the_first_page_only(world: World) -> None:
    for i in range(31):
        world.github.add_comment(7, "alice", f"review comment {i}")
    world.github.add_comment(7, BOT, f"the earlier report\n\n{COPIED}")
    repo = f"{world.github.url}/{REPO}"
    world.cml("comment", "update", "c.md", "--target", "pr/7", "--watermark-title", WATERMARK,
              "--repo", repo)  # fmt: skip


def update_edits_a_copied_watermark(world: World) -> None:
    world.github.add_comment(7, "mallory", f"I copied it: {COPIED}")
    repo = f"{world.github.url}/{REPO}"
    world.cml("comment", "update", "c.md", "--target", "pr/7", "--watermark-title", WATERMARK,
              "--repo", repo)  # fmt: skip


def telemetry_is_seen_by_the_recorder(world: World) -> None:
    """The positive control: without ITERATIVE_DO_NOT_TRACK, CML contacts its telemetry host."""
    repo = f"{world.github.url}/{REPO}"
    world.cml("comment", "create", "c.md", "--target", "pr/7", "--repo", repo,
              ITERATIVE_DO_NOT_TRACK="")  # fmt: skip


SCENARIOS: dict[str, Callable[[World], None]] = {
    fn.__name__: fn
    for fn in (
        one_comment,
        second_post,
        others_untouched,
        over_60_comments,
        upload_opt_in,
        no_repo_outside_a_checkout,
        update_reads_the_first_page_only,
        update_edits_a_copied_watermark,
        telemetry_is_seen_by_the_recorder,
    )
}


def _bin(backend: str, folder: Path) -> Path:
    if backend == "stand-in":
        return STUBS / "cml-bin"
    problem = _real_cml_problem()
    if problem is not None:
        pytest.skip(f"real CML: {problem}")
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "cml"
    shim.write_text(
        '#!/bin/sh\nexec node --no-experimental-fetch "$MODELCI_REAL_CML/bin/cml.js" "$@"\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def outcomes(
    certificate: tuple[Path, ssl.SSLContext], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Outcome]:
    """``outcomes(backend, scenario)``: each scenario run once per backend, on first use."""
    cert, context = certificate
    done: dict[tuple[str, str], Outcome] = {}

    def get(backend: str, scenario: str) -> Outcome:
        if (backend, scenario) not in done:
            folder = tmp_path_factory.mktemp(f"{backend}-{scenario}")
            bin_dir = _bin(backend, folder / "bin")
            root = folder / "fake"
            with FakeGitHub(root, REPO, tls=context) as github, FakeGitHub(root, REPO) as proxy:
                world = World(github, proxy, folder, bin_dir, cert)
                SCENARIOS[scenario](world)
                done[backend, scenario] = _outcome(world)
        return done[backend, scenario]

    return get


def _ours(outcome: Outcome) -> list[dict[str, Any]]:
    return [c for c in outcome.raw_comments if c["user"] == BOT]


def _only_the_api(outcome: Outcome) -> None:
    """No connection to another host (CONNECT) and no upload: every request is an API call."""
    assert [r for r in outcome.raw_requests if r["method"] == "CONNECT"] == []
    assert [r for r in outcome.raw_requests if r["path"] == "/assets"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_comment_is_posted_and_nothing_is_uploaded(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "one_comment")
    assert outcome.exits == (0,), outcome.stderr
    (ours,) = _ours(outcome)
    assert "modelci report first" in ours["body"]
    assert f'#{SHA} "CML watermark {WATERMARK}")' in ours["body"]
    assert "plots/roc.png" not in ours["body"]
    assert "PNG upload is off" in ours["body"]
    _only_the_api(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_post_replaces_the_comment(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "second_post")
    assert outcome.exits == (0, 0), outcome.stderr
    (ours,) = _ours(outcome)
    assert "modelci report second" in ours["body"]
    _only_the_api(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_users_comments_are_left_alone_even_with_the_watermark(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "others_untouched")
    assert outcome.exits == (0, 0), outcome.stderr
    theirs = [c for c in outcome.raw_comments if c["user"] != BOT]
    assert [(c["user"], c["updates"]) for c in theirs] == [("alice", 0), ("mallory", 0)]
    assert COPIED in theirs[1]["body"]
    touched = {r["path"] for r in outcome.raw_requests if r["method"] in ("PATCH", "DELETE")}
    assert not touched & {f"/api/v3/repos/{REPO}/issues/comments/{c['id']}" for c in theirs}
    assert len(_ours(outcome)) == 1
    _only_the_api(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pr_with_more_than_60_comments_keeps_one_modelci_comment(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "over_60_comments")
    assert outcome.exits == (0, 0), outcome.stderr
    (ours,) = _ours(outcome)
    assert "modelci report second" in ours["body"]
    assert len([c for c in outcome.raw_comments if c["user"] == "alice"]) == 125
    # the first one (comment 121) was found on the second page of 100 and deleted
    deleted = [r for r in outcome.raw_requests if r["method"] == "DELETE"]
    assert len(deleted) == 1
    pages = [r["query"] for r in outcome.raw_requests if r["path"].endswith("/7/comments")]
    assert pages.count("per_page=100&page=2") == 2
    _only_the_api(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_the_opt_in_only_the_plot_is_uploaded_to_the_given_endpoint(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "upload_opt_in")
    assert outcome.exits == (0,), outcome.stderr
    uploads = [r for r in outcome.raw_requests if r["path"] == "/assets"]
    assert [(u["content_type"], u["has_token"]) for u in uploads] == [("image/png", False)]
    (ours,) = _ours(outcome)
    assert f"![ROC]({ASSET_BASE}/{uploads[0]['sha256']}?cml=png&cache-bypass=" in ours["body"]
    assert [r for r in outcome.raw_requests if r["method"] == "CONNECT"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_a_repository_cml_reads_the_git_remote_and_fails_outside_a_checkout(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "no_repo_outside_a_checkout")
    assert outcome.exits == (1, 1)
    assert outcome.errors == (GIT_FALLBACK, GIT_FALLBACK)
    assert outcome.raw_requests == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cml_update_reads_only_the_first_30_comments(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    """Why the post step never uses ``cml comment update``: a second modelci comment appears."""
    outcome = outcomes(backend, "update_reads_the_first_page_only")
    assert outcome.exits == (0,), outcome.stderr
    assert len(_ours(outcome)) == 2
    listed = [r for r in outcome.raw_requests if r["path"].endswith("/7/comments")]
    assert [(r["method"], r["query"]) for r in listed] == [("GET", ""), ("POST", "")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cml_update_edits_another_users_copied_watermark(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "update_edits_a_copied_watermark")
    assert outcome.exits == (1,)
    assert outcome.errors == ("Resource not accessible by integration",)
    assert [r["method"] for r in outcome.raw_requests if "/comments/" in r["path"]] == ["PATCH"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_recorder_sees_a_connection_to_another_host(
    outcomes: Callable[[str, str], Outcome], backend: str
) -> None:
    outcome = outcomes(backend, "telemetry_is_seen_by_the_recorder")
    assert outcome.exits == (0,), outcome.stderr
    connects = [r["path"] for r in outcome.raw_requests if r["method"] == "CONNECT"]
    assert connects == ["telemetry.cml.dev:443"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_stand_in_answers_as_the_real_cml_does(
    outcomes: Callable[[str, str], Outcome], scenario: str
) -> None:
    real = outcomes("real", scenario)
    standin = outcomes("stand-in", scenario)
    assert standin.exits == real.exits, real.stderr
    assert standin.errors == real.errors
    assert standin.requests == real.requests
    assert standin.comments == real.comments
