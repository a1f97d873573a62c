"""Wall time of the pull-request workflow under act on this machine, cold and warm, per job.

Builds the model repository of the workflow tests (the pipeline reproduced on ``main`` and on the
``improve`` branch), then runs this repository's ``pr.yml`` caller of ``ci.yml`` on the ``improve``
pull request with act, the same way ``tests/workflows`` does (third-party actions stubbed, jobs on
this host):

- **cold**: an empty DVC cache, so the model job reproduces the whole pipeline;
- **warm**: the DVC cache restored (the key's restore prefix matches), so ``dvc repro`` only
  checks what changed;

and the comment workflow (``pr-comment.yml``) on the resulting ``workflow_run``. ``uv sync`` is
short-circuited in both cases (the uv stub links the locked environment), so the times leave out
installing dependencies, which on GitHub comes from setup-uv's cache.

    python benchmarks/bench_workflows.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import run_count, table, write_section  # noqa: E402

from tests.workflows import harness  # noqa: E402
from tests.workflows.conftest import (  # noqa: E402
    REPO_SLUG,
    ModelRepo,
    build_model_repo,
    keep_artifact,
    pull_request_event,
    workflow_run_event,
)
from tests.workflows.fake_github import FakeGitHub  # noqa: E402

JOBS = ("lint", "test", "model", "all-green")
BRANCH = "improve"


def pr_run(repo: ModelRepo, src: Path, work: Path, warm: bool) -> harness.ActRun:
    stub_root = repo.stub_root(work / "stubs", warm=warm)
    clone = repo.clone(BRANCH, work / "repo")
    env = harness.ActEnv(stub_root=stub_root, modelci_src=src)
    event = pull_request_event(repo, 7, BRANCH, title="benchmark")
    run = harness.run_act(
        clone, "pull_request", event, clone / ".github" / "workflows" / "pr.yml", env, work=work
    )
    if run.result("all-green") != "success":
        raise SystemExit(f"the PR workflow failed:\n{run.explain()}")
    return run


def comment_run(repo: ModelRepo, src: Path, pr_work: Path, work: Path) -> harness.ActRun:
    stub_root = pr_work / "stubs"
    keep_artifact(stub_root, 1)
    clone = repo.clone("main", work / "repo")
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=src, github_api=github.url)
        run = harness.run_act(
            clone,
            "workflow_run",
            workflow_run_event(repo, 1, BRANCH, 7, "success"),
            src / ".github" / "workflows" / "pr-comment.yml",
            env,
            work=work,
            secrets={"GITHUB_TOKEN": harness.FAKE_GITHUB_TOKEN},
        )
    if run.result("comment") != "success":
        raise SystemExit(f"the comment workflow failed:\n{run.explain()}")
    return run


def overlapped(run: harness.ActRun) -> bool:
    """Did lint and test run while the model job was running?"""
    model = run.jobs["model"]
    if model.started is None or model.finished is None:
        return False
    for name in ("lint", "test"):
        job = run.jobs[name]
        if job.started is None or job.started > model.finished:
            return False
    return True


def stats(samples: list[float]) -> tuple[str, str, str]:
    return (
        f"{statistics.median(samples):.1f}",
        f"{min(samples):.1f}",
        f"{max(samples):.1f}",
    )


def main() -> None:
    runs = run_count(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    with tempfile.TemporaryDirectory(prefix="bench-workflows-") as tmp:
        base = Path(tmp)
        print("building the model repository (pipeline reproduced on main and on each branch)")
        repo = build_model_repo(base / "model-repo")
        src = harness.modelci_source(base / "modelci-src")
        results: dict[str, list[harness.ActRun]] = {"cold": [], "warm": [], "comment": []}
        for index in range(runs):
            for case in ("cold", "warm"):
                work = base / f"{case}-{index}"
                run = pr_run(repo, src, work, warm=case == "warm")
                results[case].append(run)
                print(f"{case} run {index + 1}: {run.seconds:.1f}s")
                if case == "warm":
                    comment = comment_run(repo, src, work, base / f"comment-{index}")
                    results["comment"].append(comment)
                    print(f"comment run {index + 1}: {comment.seconds:.1f}s")
                shutil.rmtree(work / "repo", ignore_errors=True)

    rows = []
    for case, label in (("cold", "PR workflow, cold DVC cache"), ("warm", "PR workflow, warm")):
        rows.append([label, *stats([r.seconds for r in results[case]])])
    rows.append(["comment workflow", *stats([r.seconds for r in results["comment"]])])
    job_rows = []
    for job in JOBS:
        row = [f"`{job}`"]
        for case in ("cold", "warm"):
            samples = [r.jobs[job].seconds or 0.0 for r in results[case]]
            row.append(f"{statistics.median(samples):.1f}")
        job_rows.append(row)
    parallel = all(overlapped(r) for r in results["cold"] + results["warm"])
    warm_median = statistics.median(r.seconds for r in results["warm"])
    body = "\n\n".join(
        [
            "The pull-request workflow (`pr.yml` → `ci.yml`) on a pull request that changes one"
            " training parameter, run by act 0.2.89 on this host with third-party actions stubbed"
            " (see `tests/workflows/harness.py`). Cold: empty DVC cache, the model job reproduces"
            " the whole pipeline. Warm: the DVC cache restored. `uv sync` is short-circuited in"
            " both (the locked environment is linked), so installing dependencies is not"
            " included. The repository is the workflow tests' model repository: this pipeline"
            " with a one-file smoke test suite, so the `test` job measures the workflow, not a"
            " large suite (this repository's own `test` job runs its whole suite, which takes"
            f" minutes). {runs} run(s) of each case; seconds.",
            table(["case", "median", "min", "max"], rows),
            "Per job (median seconds, from the job's first to its last log line):",
            table(["job", "cold", "warm"], job_rows),
            f"Lint and test ran in parallel with the model job: {'yes' if parallel else 'no'}."
            f" Warm median {warm_median:.1f} s against the aim of under 180 s on 2 cores.",
        ]
    )
    command = "python benchmarks/bench_workflows.py" + ("" if runs == 3 else f" --runs {runs}")
    path = write_section("workflows", "Pull-request workflow under act", body, command)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
