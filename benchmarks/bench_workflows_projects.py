"""Wall time of the pull-request workflow under act on a repository of three models: a pull
request that affects one of them against one that affects all three.

The repository is the clinic of ``tests/projects_support.py`` (breast cancer at the root, wine
and diabetes added by ``modelci init --add``, sharing ``src/features``), made with ``init`` run in
process and a stand-in ``uv.lock``, every project reproduced on ``main``. Two pull requests:

- **one of three**: wine's ``params.yaml`` changed (and reproduced on the branch): the plan's
  matrix holds wine alone;
- **three of three**: ``uv.lock`` changed: every project is affected, three model jobs run.

Each runs this repository's ``pr.yml`` → ``ci.yml`` with act as ``tests/workflows`` does
(third-party actions stubbed, jobs on this host, four at once), the two cases interleaved. The
runner's DVC cache is warm under every project's cache key, and ``uv sync`` is short-circuited
(the stub links this checkout's environment), so the times leave out installing dependencies and
recomputing the pipelines: they measure what the workflow costs per model job.

    python benchmarks/bench_workflows_projects.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import run_count, table, write_section  # noqa: E402

CASES = {"one": "1 of 3 affected (wine's params)", "all": "3 of 3 affected (uv.lock)"}
BRANCH = {"one": "params", "all": "lock"}
PR = 21
WINE_PARAMS = ("max_iter: 200", "max_iter: 300")
# The order of the per-job table; a matrix job is "model (NAME)".
JOB_ORDER = ("lint", "test", "plan", "model", "report", "all-green")
ACT_TIMEOUT = 2400


def job_spans(entries: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Seconds from the first to the last log line of each job of ``JOB_ORDER``, from act's
    ``--json`` entries (their ``time`` stamps, to the second). A matrix job is keyed
    ``JOB (NAME)`` by its matrix's ``name``, since act gives every job of a matrix the same
    ``jobID``; the caller's job (``ci``, which only calls the reusable workflow) is left out."""
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for entry in entries:
        job, stamp = entry.get("jobID"), entry.get("time")
        if job not in JOB_ORDER or not stamp:
            continue
        matrix = entry.get("matrix") or {}
        named = isinstance(matrix, dict) and "name" in matrix
        key = f"{job} ({matrix['name']})" if named else job
        when = datetime.fromisoformat(str(stamp))
        first[key] = min(first.get(key, when), when)
        last[key] = max(last.get(key, when), when)
    return {key: (last[key] - first[key]).total_seconds() for key in first}


def _order(key: str) -> tuple[int, str]:
    base = key.split(" (", 1)[0]
    return (JOB_ORDER.index(base) if base in JOB_ORDER else len(JOB_ORDER), key)


def job_table(samples: Mapping[str, Sequence[Mapping[str, float]]]) -> list[list[str]]:
    """Rows of median seconds per job (rows) and case (columns, in ``samples``' order); a job a
    case did not run is ``-``."""
    keys = sorted({key for runs in samples.values() for spans in runs for key in spans}, key=_order)
    rows = []
    for key in keys:
        row = [f"`{key}`"]
        for runs in samples.values():
            values = [spans[key] for spans in runs if key in spans]
            row.append(f"{statistics.median(values):.0f}" if values else "-")
        rows.append(row)
    return rows


def stats(samples: Sequence[float]) -> list[str]:
    return [f"{statistics.median(samples):.1f}", f"{min(samples):.1f}", f"{max(samples):.1f}"]


def build(base: Path) -> Any:
    """The clinic with every project reproduced on main, a params branch and a lock branch."""
    from modelci.cli import main as modelci
    from tests.adoption_support import WORKFLOWS_REF
    from tests.conftest import run
    from tests.projects_support import build_clinic, commit, git
    from tests.workflows.conftest import REMOTE_URL, ModelRepo

    def init_root(data: Path, target: str) -> Path:
        repo = data.parent.parent / data.stem
        argv = ["init", str(repo), "--data", str(data), "--target", target]
        if modelci([*argv, "--no-lock", "--workflows-ref", WORKFLOWS_REF]) != 0:
            raise SystemExit("modelci init failed")
        return repo

    def add(repo: Path, argv: list[str]) -> None:
        if modelci(["init", str(repo), *argv]) != 0:
            raise SystemExit(f"modelci init {' '.join(argv)} failed")

    repo = build_clinic(base, init_root, add, {"uv.lock": "stand-in lock\n"})
    run(["git", "remote", "add", "origin", REMOTE_URL], repo)
    for pipeline in ("dvc.yaml", "models/diabetes/dvc.yaml", "models/wine/dvc.yaml"):
        run(["dvc", "repro", pipeline], repo, timeout=1800)
    shas = {"main": commit(repo, "every model reproduced", {})}
    git(repo, "checkout", "-q", "-b", "params")
    params = repo / "models" / "wine" / "params.yaml"
    if params.read_text().count(WINE_PARAMS[0]) != 1:
        raise SystemExit(f"{params}: {WINE_PARAMS[0]!r} not found once")
    params.write_text(params.read_text().replace(*WINE_PARAMS))
    run(["dvc", "repro", "models/wine/dvc.yaml"], repo, timeout=1800)
    shas["params"] = commit(repo, "wine: more boosting rounds", {})
    git(repo, "checkout", "-q", "-b", "lock", "main")
    shas["lock"] = commit(repo, "relocked", {"uv.lock": "stand-in lock\n# relocked\n"})
    git(repo, "checkout", "-q", "main")
    return ModelRepo(origin=repo, shas=shas, warm_cache=repo / ".dvc" / "cache")


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pr_run(repo: Any, src: Path, case: str, work: Path) -> Any:
    from tests.adoption_support import WORKFLOWS_REF
    from tests.workflows import harness
    from tests.workflows.conftest import pull_request_event, warm_dvc_cache

    stub_root = work / "stubs"
    stub_root.mkdir(parents=True)
    for name in ("clinic", "diabetes", "wine"):
        warm_dvc_cache(repo.warm_cache, stub_root, name)
    branch = BRANCH[case]
    clone = repo.clone(branch, work / "repo")
    maps = {f"{harness.OWNER_REPO}@{WORKFLOWS_REF}": src}
    act = harness.run_act(
        clone,
        "pull_request",
        pull_request_event(repo, PR, branch, title=f"clinic: {branch}"),
        clone / ".github" / "workflows" / "pr.yml",
        harness.ActEnv(stub_root, src, maps),
        work=work / "act",
        secrets={"GITHUB_TOKEN": harness.FAKE_GITHUB_TOKEN},
        timeout=ACT_TIMEOUT,
    )
    if act.result("all-green") != "success":
        raise SystemExit(f"the PR workflow failed ({case}):\n{act.explain()}")
    uploads = harness.read_calls(stub_root, "upload-artifact")
    models = sorted(c["name"] for c in uploads if c["name"].startswith("modelci-report-"))
    expected = 1 if case == "one" else 3
    if len(models) != expected:
        raise SystemExit(f"{case}: {expected} model job(s) expected, reports {models}")
    return act


def main() -> None:
    runs = run_count(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    from tests.workflows import harness

    with tempfile.TemporaryDirectory(prefix="bench-workflows-projects-") as tmp:
        base = Path(tmp)
        print("building the three-project repository (every model reproduced on main)")
        repo = build(base)
        src = harness.modelci_source(base / "modelci-src")
        load_before = os.getloadavg()[0]
        seconds: dict[str, list[float]] = {case: [] for case in CASES}
        cpu: dict[str, list[float]] = {case: [] for case in CASES}
        spans: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
        for index in range(runs):
            for case in CASES:
                work = base / f"{case}-{index}"
                before = children_cpu()
                act = pr_run(repo, src, case, work)
                cpu[case].append(children_cpu() - before)
                seconds[case].append(act.seconds)
                spans[case].append(job_spans(act.entries))
                print(f"{case} run {index + 1}: {act.seconds:.1f}s, {cpu[case][-1]:.1f}s CPU")
                shutil.rmtree(work, ignore_errors=True)
        load_after = os.getloadavg()[0]

    rows = [[CASES[case], *stats(seconds[case]), *stats(cpu[case])] for case in CASES]
    one, every = (statistics.median(seconds[case]) for case in CASES)
    cpu_one, cpu_every = (statistics.median(cpu[case]) for case in CASES)
    body = "\n\n".join(
        [
            "The pull-request workflow (`pr.yml` → `ci.yml`: lint, test, the plan job, one model"
            " job per affected project in a matrix, the report job merging their reports and"
            " checking every gate, all-green) on a repository of three models: the clinic of"
            " `tests/projects_support.py` (breast cancer at the root, wine and diabetes added by"
            " `modelci init --add`, sharing `src/features`), every project reproduced on `main`."
            " One of three: a pull request changing wine's `params.yaml` (reproduced on its"
            " branch). Three of three: one changing `uv.lock`. Run by act 0.2.89 on this host"
            " with third-party actions stubbed (`tests/workflows/harness.py`), up to four jobs at"
            " once, the two cases interleaved. Included: checkout, the plan, each model job's"
            " `dvc repro` check, `check-lock`, model tests, report and gate, the merge and the"
            " required check. Not included: installing dependencies (`uv sync` is short-circuited:"
            " the locked environment is linked), recomputing a pipeline (the DVC cache is warm"
            " under every project's key and every `dvc.lock` is committed), a DVC remote, and the"
            " comment workflow (`pr-comment.yml`, measured in"
            " [Pull-request workflow under act](#pull-request-workflow-under-act)). On GitHub each"
            " model job has its own runner; here the jobs share 2 cores with the other work of"
            f" the machine. {runs} run(s) of each case; seconds of wall time, and CPU seconds"
            " (user + system) of act and every process the workflow ran (and the clone of the"
            " branch), which the load of the machine inflates far less than wall time.",
            table(["case", "median", "min", "max", "CPU median", "CPU min", "CPU max"], rows),
            "Per job (median seconds, from the job's first to its last log line, as act stamps"
            " them: to the second; a model job is named by its project):",
            table(["job", *CASES.values()], job_table(spans)),
            f"Three affected models against one: {every / one:.2f}x the median wall time"
            f" ({every:.1f} s against {one:.1f} s), {cpu_every / cpu_one:.2f}x the median CPU"
            f" time ({cpu_every:.1f} s against {cpu_one:.1f} s). Load average (1 min) before and"
            f" after: {load_before:.1f} and {load_after:.1f} (other work shares the 2 cores when"
            " it is above 2).",
        ]
    )
    command = "python benchmarks/bench_workflows_projects.py" + (
        "" if runs == 3 else f" --runs {runs}"
    )
    path = write_section(
        "workflows-projects", "Pull-request workflow under act, three models", body, command
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
