"""Run this repository's workflow files under act, on the host, offline.

What runs is the real YAML of ``.github/`` with two mechanical rewrites that act 0.2.89 needs, and
third-party actions mapped to the small stubs in ``tests/workflows/stubs`` (see ``stubtool.py``):

- ``uses: $/PATH`` (GitHub's self-repository syntax, 2026-07: this repository at the running
  commit) becomes ``uses: modelci/modelci/PATH@<ACT_REF>``, and ``modelci/modelci@<ACT_REF>`` is
  mapped with ``--local-repository`` to a copy of this checkout's ``.github``: the same resolution
  GitHub does, spelled in a form act knows;
- ``cache-mode:`` lines (2026-09) are dropped from the copies act parses (act's schema rejects the
  key); the model repositories' own ``.github``, which their lint job checks with actionlint and
  zizmor, keeps them.

``stubs/summary-bin/bash`` is first on PATH: it runs the real bash and keeps what each step writes
to ``$GITHUB_STEP_SUMMARY`` (act empties that file before each step), for ``ActRun.summaries``.

act runs with ``-P ubuntu-latest=-self-hosted`` (jobs run on this host, no Docker),
``--no-cache-server`` and the artifact server bound to 127.0.0.1. ``actions/checkout`` is handled
by act itself (it copies the working tree, honouring .gitignore).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.adoption_support import NOT_THE_ADOPTERS

REPO_ROOT = Path(__file__).resolve().parents[2]
GITHUB_DIR = REPO_ROOT / ".github"
STUBS = Path(__file__).resolve().parent / "stubs"
VENV = Path(sys.prefix)
ACT = Path(sys.executable).parent / "act"
OWNER_REPO = "modelci/modelci"
# The model repository the workflow tests pretend to be on GitHub.
REMOTE_URL = "https://github.com/modelci/example-model.git"
REPO_SLUG = "modelci/example-model"
API_REPO = f"https://api.github.com/repos/{REPO_SLUG}"
# Stand-in for "the commit that is running" in rewritten $/ references: 40 hex digits, so the
# rewritten files still satisfy zizmor's hash-pin policy in the lint job of the model repository.
ACT_REF = "a" * 40
# Third-party action (owner/name) -> stub directory. actions/checkout is act's own.
STUB_FOR = {
    "actions/cache": "cache",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "pypa/gh-action-pypi-publish": "pypi-publish",
    "actions/setup-python": "setup-python",
    "astral-sh/setup-uv": "setup-uv",
    "iterative/setup-cml": "setup-cml",
    "actions/create-github-app-token": "create-github-app-token",
}
NATIVE = {"actions/checkout"}
USES = re.compile(r"uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(/[^@\s]*)?@([^\s#]+)")
SELF_USES = re.compile(r"uses:\s*\$/(?:\./)?([^\s#]+)")
CACHE_MODE = re.compile(r"^[ \t]*cache-mode:.*\n", re.MULTILINE)

# The GITHUB_TOKEN act hands to workflows in these tests; tests assert it is never printed.
FAKE_GITHUB_TOKEN = "ghs_fake_token_for_the_tests"  # noqa: S105 - not a secret


def third_party_refs(github_dir: Path = GITHUB_DIR) -> dict[str, str]:
    """``owner/name@ref`` of every remote action used under ``github_dir`` -> owner/name."""
    refs = {}
    for path in sorted(github_dir.rglob("*.yml")):
        for match in USES.finditer(path.read_text(encoding="utf-8")):
            name, ref = match.group(1), match.group(3)
            if name != OWNER_REPO:
                refs[f"{name}@{ref}"] = name
    return refs


def rewrite_self_refs(text: str) -> str:
    """``uses: $/PATH`` -> ``uses: modelci/modelci/PATH@ACT_REF``."""
    return SELF_USES.sub(lambda m: f"uses: {OWNER_REPO}/{m.group(1)}@{ACT_REF}", text)


def act_compatible(text: str) -> str:
    """What act 0.2.89 can parse: self references rewritten, cache-mode lines dropped."""
    return CACHE_MODE.sub("", rewrite_self_refs(text))


def copy_github(destination: Path, *, for_act: bool, source: Path = GITHUB_DIR) -> Path:
    """Copy ``.github`` with the self references rewritten (and, for act, cache-mode dropped)."""
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
    for path in destination.rglob("*.yml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(act_compatible(text) if for_act else rewrite_self_refs(text), "utf-8")
    return destination


def modelci_source(destination: Path) -> Path:
    """The directory ``modelci/modelci@ACT_REF`` is mapped to: this checkout's .github for act."""
    copy_github(destination / ".github", for_act=True)
    return destination


def only_jobs(source: Path, destination: Path, workflow: str, keep: Sequence[str]) -> Path:
    """A copy of the act-compatible ``source`` (as ``modelci_source`` makes it) whose reusable
    ``workflow`` keeps only the jobs ``keep``: act's ``-j JOB`` selects the caller's jobs, not
    the jobs of a workflow it calls, so this is its equivalent for a reusable workflow."""
    import yaml

    shutil.copytree(source, destination)
    path = destination / ".github" / "workflows" / workflow
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True
    document = {("on" if key is True else key): value for key, value in loaded.items()}
    missing = set(keep) - set(document["jobs"])
    assert not missing, f"{workflow} has no job {sorted(missing)}"
    document["jobs"] = {name: job for name, job in document["jobs"].items() if name in keep}
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=1000), encoding="utf-8")
    return destination


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_path() -> str:
    """PATH without this virtual environment: the workflow's setup step must provide it."""
    venv_bin = str(VENV / "bin")
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    return os.pathsep.join(parts)


@dataclass
class Job:
    name: str
    result: str | None = None
    started: float | None = None
    finished: float | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass
class ActRun:
    """The outcome of one act invocation, parsed from its --json log."""

    returncode: int
    seconds: float
    entries: list[dict[str, Any]]
    jobs: dict[str, Job]
    log: str
    cache_dir: Path
    log_file: Path

    def result(self, job: str) -> str | None:
        return self.jobs[job].result if job in self.jobs else None

    def results(self) -> dict[str, str | None]:
        return {name: job.result for name, job in self.jobs.items()}

    def output(self, job: str | None = None) -> str:
        """The raw output of the steps (of one job)."""
        return "".join(
            str(entry.get("msg", ""))
            for entry in self.entries
            if entry.get("raw_output") and (job is None or entry.get("jobID") == job)
        )

    def annotations(self, job: str | None = None, command: str = "notice") -> list[str]:
        """The messages of the ``::notice::`` (or ``::warning::``, ``::error::``) workflow
        commands the steps (of one job) printed, decoded (``%0A`` is a newline).

        GitHub shows these as annotations, not as log lines; act likewise takes them out of the
        raw output and records each as an entry with ``command`` and its decoded ``arg``."""
        return [
            str(entry.get("arg", ""))
            for entry in self.entries
            if entry.get("command") == command and (job is None or entry.get("jobID") == job)
        ]

    def summaries(self) -> list[str]:
        """What the jobs of this run wrote to $GITHUB_STEP_SUMMARY (``stubs/summary-bin/bash``)."""
        return [
            path.read_text(encoding="utf-8")
            for path in sorted((self.log_file.parent / "summaries").glob("*.md"))
            if path.stat().st_size
        ]

    def step_result(self, job: str, step: str) -> str | None:
        for name, result in self.jobs[job].steps:
            if step in name:
                return result
        return None

    def explain(self) -> str:
        """Job results, steps, and the output of the jobs that did not succeed."""
        lines = [f"act exited {self.returncode} after {self.seconds:.1f}s (log: {self.log_file})"]
        for name, job in self.jobs.items():
            lines.append(f"  {name}: {job.result} {job.steps}")
        for name, job in self.jobs.items():
            if job.result != "success":
                lines += [f"--- output of {name}", self.output(name)[-6000:]]
        errors = [str(e.get("msg")) for e in self.entries if e.get("level") == "error"]
        return "\n".join([*lines, "--- errors", *errors[-20:]])


@dataclass
class ActEnv:
    """Where a run's stubs keep their state and what act maps to what."""

    stub_root: Path
    modelci_src: Path
    extra_maps: dict[str, Path] = field(default_factory=dict)
    # True: `uv sync` in the jobs is the real uv installing the repository's uv.lock (an adopter's
    # repository); False: it links .venv to this checkout's environment.
    real_uv: bool = False
    # The GitHub API stand-in (``fake_github.FakeGitHub.url``) the comment job and cml call.
    github_api: str | None = None

    def mappings(self) -> list[str]:
        maps = [f"{OWNER_REPO}@{ACT_REF}={self.modelci_src}"]
        for ref, name in third_party_refs().items():
            if name in STUB_FOR:
                maps.append(f"{ref}={STUBS / STUB_FOR[name]}")
        maps += [f"{ref}={path}" for ref, path in self.extra_maps.items()]
        return maps


def _real_uv(enabled: bool) -> dict[str, str]:
    """The pinned uv and the machine's warm uv cache, for jobs that install for real."""
    if not enabled:
        return {}
    from tests.conftest import uv_binary

    uv = uv_binary()
    cache = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True)
    return {"MODELCI_REAL_UV": uv, "UV_CACHE_DIR": cache.stdout.strip()}


def run_act(
    repo: Path,
    event_name: str,
    event: Mapping[str, Any],
    workflow: Path,
    env: ActEnv,
    *,
    work: Path,
    secrets: Mapping[str, str] | None = None,
    timeout: float = 900,
    runner_labels: Sequence[str] = (),
) -> ActRun:
    """Run ``act EVENT -W WORKFLOW -e event.json`` in ``repo``; ``work`` holds act's scratch.

    Jobs on ``ubuntu-latest`` and on each of ``runner_labels`` run on this host; a job whose
    ``runs-on`` names none of them is not run."""
    work.mkdir(parents=True, exist_ok=True)
    event_file = work / "event.json"
    event_file.write_text(json.dumps(event, indent=2), encoding="utf-8")
    cache_dir = work / "act-cache"
    args = [
        str(ACT),
        event_name,
        "--json",
        "-W",
        str(workflow),
        "-e",
        str(event_file),
        "-P",
        "ubuntu-latest=-self-hosted",
        *(arg for label in runner_labels for arg in ("-P", f"{label}=-self-hosted")),
        "--no-cache-server",
        "--artifact-server-addr",
        "127.0.0.1",
        "--artifact-server-port",
        str(free_port()),
        "--artifact-server-path",
        str(work / "act-artifacts"),
        "--pull=false",
        # Every job that is ready runs at once, as on GitHub where each job has its own runner
        # (act's default is one job per CPU).
        "--concurrent-jobs",
        "4",
    ]
    for mapping in env.mappings():
        args += ["--local-repository", mapping]
    # A GitHub runner sets neither UV_COMPILE_BYTECODE nor PYTHONDONTWRITEBYTECODE: a job's
    # Python writes the .pyc of what it imports once, and the setup action decides what uv compiles.
    child_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "DVC_", "VIRTUAL_ENV", "GITHUB_", "ACT", "PYTEST_"))
        and key not in NOT_THE_ADOPTERS
    }
    (work / "summaries").mkdir(exist_ok=True)
    child_env.update(
        PATH=f"{STUBS / 'summary-bin'}{os.pathsep}{host_path()}",
        MODELCI_KEEP_SUMMARIES=str(work / "summaries"),
        XDG_CACHE_HOME=str(cache_dir),
        MODELCI_STUBS=str(STUBS),
        MODELCI_STUB_ROOT=str(env.stub_root),
        MODELCI_TEST_VENV=str(VENV),
        **_real_uv(env.real_uv),
        DVC_NO_ANALYTICS="1",
        NO_COLOR="1",
        GIT_PAGER="cat",
        TERM="dumb",
        GIT_AUTHOR_NAME="modelci tests",
        GIT_AUTHOR_EMAIL="tests@modelci.invalid",
        GIT_COMMITTER_NAME="modelci tests",
        GIT_COMMITTER_EMAIL="tests@modelci.invalid",
    )
    if env.github_api is not None:
        child_env["MODELCI_GITHUB_API_URL"] = env.github_api
    for name in secrets or {}:
        args += ["-s", name]
    child_env.update(secrets or {})
    started = time.monotonic()
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    entries: list[dict[str, Any]] = []
    jobs: dict[str, Job] = {}
    raw_lines = []
    assert process.stdout is not None
    # A watchdog: act is killed (and the run reported as timed out) after `timeout` seconds,
    # even if it stops printing.
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            now = time.monotonic() - started
            raw_lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            entries.append(entry)
            job_id = entry.get("jobID")
            if not job_id:
                continue
            job = jobs.setdefault(job_id, Job(job_id))
            if job.started is None:
                job.started = now
            top_level = len(entry.get("stepID") or []) == 1
            if "stepResult" in entry and entry.get("stage") == "Main" and top_level:
                job.steps.append((str(entry.get("step", "")), str(entry["stepResult"])))
            if "jobResult" in entry:
                job.result = str(entry["jobResult"])
                job.finished = now
        returncode = process.wait(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        log_file = work / "act.log"
        log_file.write_text("".join(raw_lines), encoding="utf-8")
    if time.monotonic() - started >= timeout:
        raise TimeoutError(f"act ran longer than {timeout}s; log: {log_file}")
    return ActRun(
        returncode=returncode,
        seconds=time.monotonic() - started,
        entries=entries,
        jobs=jobs,
        log="".join(raw_lines),
        cache_dir=cache_dir,
        log_file=log_file,
    )


def read_calls(stub_root: Path, stub: str | None = None) -> list[dict[str, Any]]:
    """What the stubs recorded (``stubtool.record``), optionally only one stub's calls."""
    path = stub_root / "calls.jsonl"
    if not path.exists():
        return []
    calls = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [call for call in calls if stub is None or call["stub"] == stub]


def comments(stub_root: Path) -> list[dict[str, Any]]:
    """The pull-request comments as the GitHub API stand-in (``fake_github``) holds them."""
    path = stub_root / "github" / "comments.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def requests(stub_root: Path) -> list[dict[str, Any]]:
    """Every request the GitHub API stand-in answered, in order."""
    path = stub_root / "github" / "requests.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
