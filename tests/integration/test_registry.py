"""The registry commands against a real ``mlflow server`` on PostgreSQL + S3 (127.0.0.1).

One server for the session (``mlflow_backend``); each test uses its own registered model name
so states never mix.
Model versions come from a copy of the pipeline repository after a real ``dvc repro``; new
commits are made with ``git commit --allow-empty`` at increasing commit times.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.config import MetricRule, Params, load_params
from modelci.errors import ModelFileError, TrackingError
from modelci.judge import metrics as metrics_module
from modelci.registry import promote as promote_module
from modelci.registry.core import Registry, RegistryError, open_registry
from modelci.registry.deploy import DeployFailedError, deploy
from modelci.registry.promote import promote
from modelci.registry.register import register
from modelci.registry.rollback import rollback
from modelci.registry.status import status
from tests.conftest import run, tool_env
from tests.http_support import serve_in_thread
from tests.integration.registry_support import Backend, MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_clock = iter(range(1_800_000_000, 1_900_000_000, 100))


@pytest.fixture(scope="module")
def server(mlflow_backend: Backend) -> MlflowServer:
    return mlflow_backend.server


@pytest.fixture(scope="module")
def repo(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the reproduced repository, plus a weak model file beside the real one."""
    target = tmp_path_factory.mktemp("registry") / "repo"
    shutil.copytree(pipeline_repo, target, symlinks=True)
    raw = yaml.safe_load((target / "params.yaml").read_text())
    raw["train"]["estimator_params"] = {"max_iter": 1, "learning_rate": 0.01, "max_depth": 1}
    weak = target / "weak-params.yaml"
    weak.write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["python", "-c", _WEAK_TRAIN], target)
    shutil.copy2(target / "models" / "model.skops", target / "real.skops")
    return target


_WEAK_TRAIN = """
from dataclasses import replace
from pathlib import Path
from modelci.config import load_params
from modelci.pipeline import train
from modelci.layout import DEFAULT_PATHS
train.run(load_params(Path("weak-params.yaml")), DEFAULT_PATHS._replace(model=Path("weak.skops")))
"""


@pytest.fixture
def env(repo: Path, server: MlflowServer, monkeypatch: pytest.MonkeyPatch, request: Any) -> Params:
    """cwd = the repo, MLFLOW_TRACKING_URI = the server, a model name of this test's own."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "modelci tests")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tests@modelci.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "modelci tests")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tests@modelci.invalid")
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    use_model(repo, "real")
    name = "m-" + request.node.name.replace("[", "-").replace("]", "")[:60]
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["tracking"]["model_name"] = name
    (repo / "params.test.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(repo / "params.test.yaml")


def use_model(repo: Path, which: str) -> str:
    data = (repo / f"{which}.skops").read_bytes()
    (repo / "models" / "model.skops").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def new_commit(repo: Path, message: str = "change") -> str:
    when = next(_clock)
    run(
        ["git", "commit", "-q", "--allow-empty", "-m", message],
        repo,
        GIT_COMMITTER_DATE=f"@{when} +0000",
        GIT_AUTHOR_DATE=f"@{when} +0000",
    )
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def with_rules(params: Params, rules: dict[str, MetricRule]) -> Params:
    return params.model_copy(update={"gate": params.gate.model_copy(update={"metrics": rules})})


def registered(params: Params, repo: Path, which: str = "real") -> int:
    use_model(repo, which)
    new_commit(repo, f"model {which}")
    return register(params).version.version


def cli(repo: Path, server: MlflowServer, command: str, *args: str, check: bool = True) -> Any:
    """``modelci COMMAND --params params.test.yaml ARGS`` (the test's own model name); COMMAND
    as the user types it (``registry status``)."""
    argv = ["modelci", *command.split(), "--params", "params.test.yaml", *args]
    return run(argv, repo, check=check, MLFLOW_TRACKING_URI=server.uri)


def aliases(params: Params) -> tuple[int | None, int | None]:
    a = open_registry(params).aliases()
    return (
        a.champion.version if a.champion else None,
        a.previous.version if a.previous else None,
    )


_SERVER: list[MlflowServer] = []


@pytest.fixture(autouse=True)
def _remember_server(server: MlflowServer) -> None:
    _SERVER[:] = [server]


# -- register -------------------------------------------------------------------------------


def test_register_twice_gives_one_version_with_lineage(env: Params, repo: Path) -> None:
    sha = use_model(repo, "real")
    commit = new_commit(repo)
    report = repo / "report.json"
    report.write_text(json.dumps({"pr_number": 42, "model": {"sha256": sha}}))
    first = register(env, pr_report=report)
    second = register(env, pr_report=report)
    assert first.created
    assert not second.created
    assert second.version.version == first.version.version
    reg = open_registry(env)
    assert [v.version for v in reg.versions()] == [first.version.version]
    tags = reg.get(first.version.version).tags
    assert tags["modelci.git_commit"] == commit
    assert tags["modelci.model_sha256"] == sha
    assert tags["modelci.pr_report"] == "PR #42"
    assert int(tags["modelci.commit_time"]) >= 1_800_000_000
    assert len(tags["modelci.params_digest"]) == 64
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    test_md5 = next(
        out["md5"]
        for out in lock["stages"]["prepare"]["outs"]
        if out["path"] == "data/prepared/test.parquet"
    )
    assert tags["modelci.dvc.data/prepared/test.parquet"] == test_md5
    assert tags["modelci.data.test.md5"] == test_md5
    metrics = json.loads((repo / "metrics.json").read_text())
    assert float(tags["modelci.metric.accuracy"]) == pytest.approx(metrics["accuracy"])
    # the CLI agrees: same version, "already registered"
    done = cli(repo, _SERVER[0], "registry register")
    assert f"already registered version {first.version.version}" in done.stdout


def test_register_refuses_bytes_that_differ_from_the_report(env: Params, repo: Path) -> None:
    use_model(repo, "weak")
    new_commit(repo)
    report = repo / "report.json"
    report.write_text(json.dumps({"model_sha256": hashlib.sha256(b"reviewed").hexdigest()}))
    with pytest.raises(ModelFileError, match="does not match the registered"):
        register(env, pr_report=report)
    done = cli(repo, _SERVER[0], "registry register", "--pr-report", str(report), check=False)
    assert done.returncode == 1
    assert "refusing to load" in done.stderr
    reg = open_registry(env)
    assert reg.versions() == []


def test_register_refuses_a_second_model_for_one_commit(env: Params, repo: Path) -> None:
    version = registered(env, repo, "real")
    use_model(repo, "weak")
    with pytest.raises(RegistryError, match="one version per commit"):
        register(env)
    assert [v.version for v in open_registry(env).versions()] == [version]


# -- the gate: challenger vs champion on the current test set ---------------------------------

TOLERANCE_ONLY = {
    "accuracy": MetricRule(tolerance=0.02),
    "roc_auc": MetricRule(tolerance=0.02),
}


def test_gate_no_champion_passes_on_absolute_bounds(env: Params, repo: Path) -> None:
    v1 = registered(env, repo, "real")
    result = promote(env, v1)
    assert result.passed
    assert result.promoted
    assert result.champion_scores is None
    assert any("new" in line for line in result.verdict_lines)
    assert aliases(env) == (v1, None)


def test_gate_no_champion_fails_absolute_bounds(env: Params, repo: Path) -> None:
    v1 = registered(env, repo, "weak")
    result = promote(env, v1)
    assert not result.passed
    assert not result.promoted
    assert aliases(env) == (None, None)
    assert open_registry(env).get(v1).gate == "rejected"


def test_gate_better_challenger_is_promoted(env: Params, repo: Path) -> None:
    params = with_rules(env, TOLERANCE_ONLY)
    v1 = registered(params, repo, "weak")
    assert promote(params, v1).promoted
    v2 = registered(params, repo, "real")
    result = promote(params, v2)
    assert result.promoted
    assert result.champion_scores is not None
    assert result.challenger_scores["roc_auc"] > result.champion_scores["roc_auc"]
    assert aliases(params) == (v2, v1)


def test_gate_worse_challenger_is_registered_not_promoted(env: Params, repo: Path) -> None:
    params = with_rules(env, TOLERANCE_ONLY)
    v1 = registered(params, repo, "real")
    assert promote(params, v1).promoted
    v2 = registered(params, repo, "weak")
    result = promote(params, v2)
    assert not result.passed
    assert not result.promoted
    assert aliases(params) == (v1, None)
    version = open_registry(params).get(v2)
    assert version.gate == "rejected"
    assert "regressed" in version.tags["modelci.gate.detail"]
    # the CLI prints why and exits 0 (or 1 with --strict)
    done = cli(repo, _SERVER[0], "registry promote", "--version", str(v2), "--strict", check=False)
    assert done.returncode == 1
    assert "NOT promoted" in done.stdout
    assert "regressed by" in done.stdout


def test_release_uses_the_pull_request_gates_statistics(env: Params, repo: Path) -> None:
    """A significance rule means the same in the release: paired intervals on the test rows."""
    params = with_rules(env, {"roc_auc": MetricRule(mode="significance")})
    v1 = registered(params, repo, "real")
    assert promote(params, v1).promoted
    v2 = registered(params, repo, "weak")
    assert not promote(params, v2).passed
    detail = open_registry(params).get(v2).tags["modelci.gate.detail"]
    assert "roc_auc: fell" in detail
    assert "(95% CI" in detail
    assert "significant" in detail


def test_gate_equal_challenger_is_promoted(env: Params, repo: Path) -> None:
    v1 = registered(env, repo, "real")
    assert promote(env, v1).promoted
    v2 = registered(env, repo, "real")  # same bytes, newer commit: a tie passes
    result = promote(env, v2)
    assert result.passed
    assert result.challenger_scores == result.champion_scores
    assert aliases(env) == (v2, v1)


def test_gate_nan_metric_is_rejected(
    env: Params, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = registered(env, repo, "real")
    assert promote(env, v1).promoted
    v2 = registered(env, repo, "real")
    real_score, real_metrics = promote_module.score, metrics_module.compute_metrics
    challenger: list[Any] = []

    def remember_challenger(params: Params, data: bytes, source: str, test: Path) -> Any:
        predicted = real_score(params, data, source, test)
        if source.endswith(f"version {v2}"):
            challenger.append(predicted)
        return predicted

    def nan_for_challenger(predicted: Any, data: Any) -> dict[str, float]:
        scores = real_metrics(predicted, data)
        is_challenger = any(predicted is seen for seen in challenger)
        return {**scores, "roc_auc": math.nan} if is_challenger else scores

    monkeypatch.setattr(promote_module, "score", remember_challenger)
    monkeypatch.setattr(metrics_module, "compute_metrics", nan_for_challenger)
    result = promote(env, v2)
    assert challenger, "the challenger was never scored"
    assert not result.passed
    assert any("roc_auc" in line and "NaN" in line for line in result.verdict_lines)
    assert aliases(env) == (v1, None)


def test_gate_missing_required_metric_is_rejected(env: Params, repo: Path) -> None:
    params = with_rules(env, {**TOLERANCE_ONLY, "r2": MetricRule(min=0.1)})
    v1 = registered(params, repo, "real")
    result = promote(params, v1)
    assert not result.passed
    assert any("r2" in line and "missing" in line for line in result.verdict_lines)
    assert aliases(params) == (None, None)


# -- promote, rollback, promote; status at each state ----------------------------------------


def test_promote_rollback_promote_with_status(env: Params, repo: Path) -> None:
    v1 = registered(env, repo, "real")
    promote(env, v1)
    state = status(env)
    assert state["champion"]["version"] == v1
    assert state["previous"] is None

    v2 = registered(env, repo, "real")
    promote(env, v2)
    state = status(env)
    assert (state["champion"]["version"], state["previous"]["version"]) == (v2, v1)
    assert state["champion"]["lineage"]["modelci.git_commit"] == open_registry(env).get(v2).commit
    assert "accuracy" in state["champion"]["metrics"]

    done = rollback(env, reason="latency regression seen in prod", actor="alice")
    assert done.from_version.version == v2
    state = status(env)
    assert state["champion"]["version"] == v1
    assert state["previous"] is None
    rolled = open_registry(env).get(v2)
    assert rolled.gate == "rolled_back"
    assert rolled.tags["modelci.rollback.by"] == "alice"
    assert rolled.tags["modelci.rollback.reason"] == "latency regression seen in prod"
    assert open_registry(env).get(v1).tags["modelci.rollback.from"] == str(v2)

    v3 = registered(env, repo, "real")
    promote(env, v3)
    state = status(env)
    assert (state["champion"]["version"], state["previous"]["version"]) == (v3, v1)

    # by hand, through the CLI: rollback --to a version, then status
    cli(repo, _SERVER[0], "registry rollback", "--to", str(v2), "--reason", "roll forward")
    text = cli(repo, _SERVER[0], "registry status").stdout
    assert f"@champion: version {v2}" in text
    assert f"@previous: version {v1}" in text
    as_json = json.loads(cli(repo, _SERVER[0], "registry status", "--json").stdout)
    assert as_json["champion"]["version"] == v2
    assert {v["version"]: v["aliases"] for v in as_json["versions"]} == {
        v3: [],
        v2: ["champion"],
        v1: ["previous"],
    }
    assert {v["version"]: v["gate"] for v in as_json["versions"]} == {
        v3: "rolled_back",
        v2: "passed",
        v1: "passed",
    }


def test_rollback_errors(env: Params, repo: Path) -> None:
    with pytest.raises(RegistryError, match="nothing to roll back"):
        rollback(env)
    v1 = registered(env, repo, "real")
    promote(env, v1)
    with pytest.raises(RegistryError, match="pass --to VERSION"):
        rollback(env)
    with pytest.raises(RegistryError, match="already @champion"):
        rollback(env, to=v1)
    with pytest.raises(RegistryError, match="has no version 99"):
        rollback(env, to=99)
    done = cli(repo, _SERVER[0], "registry rollback", check=False)
    assert done.returncode == 1
    assert "modelci registry rollback: error:" in done.stderr


# -- races ----------------------------------------------------------------------------------


def test_concurrent_promotions_converge_on_the_newest_commit(env: Params, repo: Path) -> None:
    versions = [registered(env, repo, "real") for _ in range(4)]
    # concurrent registrations of one commit: one version, every racer reports it
    new_commit(repo, "raced registration")
    registering = [
        subprocess.Popen(
            ["modelci", "registry", "register", "--params", "params.test.yaml"],
            cwd=repo,
            env=tool_env(MLFLOW_TRACKING_URI=_SERVER[0].uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    reg_out = [p.communicate(timeout=300) for p in registering]
    assert all(p.returncode == 0 for p in registering), reg_out
    reported = {out.split("version ")[1].split()[0] for out, _ in reg_out}
    assert len(reported) == 1, reg_out
    raced = int(reported.pop())
    versions.append(raced)

    # every version promoted at once, newest first to maximise stale writes
    promoting = [
        subprocess.Popen(
            ["modelci", "registry", "promote", "--params", "params.test.yaml", "--version", str(v)],
            cwd=repo,
            env=tool_env(MLFLOW_TRACKING_URI=_SERVER[0].uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in reversed(versions)
    ]
    outputs = [p.communicate(timeout=600) for p in promoting]
    assert all(p.returncode == 0 for p in promoting), outputs
    reg = open_registry(env)
    all_versions = reg.versions()
    commits = [v.commit for v in all_versions]
    assert len(commits) == len(set(commits)), "a commit has two versions"
    assert sorted(v.version for v in all_versions) == sorted(versions)
    newest = max(all_versions, key=lambda v: v.order)
    assert newest.version == raced
    assert aliases(env) == (raced, versions[-2])


# -- tampering ------------------------------------------------------------------------------


def test_tampered_artifact_is_refused_before_load(
    env: Params, repo: Path, server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = registered(env, repo, "real")
    promote(env, v1)
    v2 = registered(env, repo, "real")
    reg = open_registry(env)
    stored = server.artifact_key(reg.get(v2).run_id, "model_file/model.skops")
    original = server.read_artifact(stored)  # versions of one model file share a run: restore it
    try:
        check_tampering_refused(env, repo, server, monkeypatch, v1, v2, stored)
    finally:
        server.write_artifact(stored, original)


def check_tampering_refused(
    env: Params,
    repo: Path,
    server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
    v1: int,
    v2: int,
    stored: str,
) -> None:
    server.write_artifact(stored, (repo / "weak.skops").read_bytes())  # valid, other bytes
    loads: list[str] = []
    import modelci.modelfile as modelfile

    real_load = modelfile.load_model_bytes

    def recording(data: bytes, source: str, extra: Any = ()) -> Any:
        loads.append(source)
        return real_load(data, source, extra)

    monkeypatch.setattr(modelfile, "load_model_bytes", recording)
    with pytest.raises(ModelFileError, match="does not match the registered"):
        promote(env, v2)
    assert loads == []
    assert aliases(env) == (v1, None)
    done = cli(repo, server, "registry promote", "--version", str(v2), check=False)
    assert done.returncode == 1
    assert "refusing to load it" in done.stderr
    # a tampered champion is not deployed either
    server.write_artifact(stored, b"not the registered model")
    with pytest.raises(ModelFileError, match="does not match"):
        deploy(env, target_name="registry")


# -- deploy: smoke test and automatic rollback ------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    healthy = True
    sha = ""

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/ready":
            self._send(200 if self.healthy else 503, {"ready": self.healthy})
        elif self.path == "/model":
            self._send(200, {"sha256": self.sha})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200 if self.healthy else 500, {"predictions": [0]})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Endpoint]]]:
    handler = type("Endpoint", (_Endpoint,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = serve_in_thread(httpd)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_deploy_smoke_passes_and_failure_rolls_back(
    env: Params, repo: Path, endpoint: tuple[str, type[_Endpoint]]
) -> None:
    url, handler = endpoint
    v1 = registered(env, repo, "real")
    promote(env, v1)
    v2 = registered(env, repo, "real")
    promote(env, v2)
    handler.sha = "f" * 64  # the endpoint serves some other model
    with pytest.raises(DeployFailedError, match="does not report the deployed model sha256"):
        deploy(env, target_name="registry", smoke_url=url, smoke_attempts=1)
    assert aliases(env) == (v1, None)  # rolled back; promote v2 again for the passing case
    promote(env, v2)
    handler.sha = open_registry(env).get(v2).sha256
    ok = deploy(env, target_name="registry", smoke_url=url, smoke_attempts=2)
    assert ok.smoke == "passed"
    assert aliases(env) == (v2, v1)

    none = deploy(env, target_name="none", smoke_url=url)
    assert not none.deployed
    assert any("nothing was deployed" in note for note in none.notes)
    k8s = deploy(env, target_name="kubernetes")
    assert any("no KUBE_CONFIG secret" in note for note in k8s.notes)

    handler.healthy = False
    with pytest.raises(DeployFailedError, match="rolled back to version") as failure:
        deploy(env, target_name="registry", smoke_url=url, smoke_attempts=2)
    assert failure.value.result.rolled_back_to == v1
    assert aliases(env) == (v1, None)
    tags = open_registry(env).get(v2).tags
    assert tags["modelci.gate"] == "rolled_back"
    assert "smoke test failed" in tags["modelci.rollback.reason"]


def test_first_release_failing_its_smoke_test_leaves_no_champion(
    env: Params, repo: Path, endpoint: tuple[str, type[_Endpoint]]
) -> None:
    url, handler = endpoint
    v1 = registered(env, repo, "real")
    promote(env, v1)
    handler.healthy = False
    with pytest.raises(DeployFailedError, match="no champion \\(there was no previous one\\)"):
        deploy(env, target_name="registry", smoke_url=url, smoke_attempts=1)
    assert aliases(env) == (None, None)
    assert open_registry(env).get(v1).gate == "rolled_back"
    done = cli(repo, _SERVER[0], "release deploy", "--target", "registry", check=False)
    assert done.returncode == 1
    assert "has no @champion: nothing to deploy" in done.stderr


# -- the tracking server stops mid-release ----------------------------------------------------


def test_server_stopped_mid_promotion_then_rerun(
    env: Params, repo: Path, server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = registered(env, repo, "real")
    promote(env, v1)
    v2 = registered(env, repo, "real")
    real_settle = Registry.settle

    def stop_then_settle(self: Registry) -> Any:
        server.stop()
        return real_settle(self)

    monkeypatch.setattr(Registry, "settle", stop_then_settle)
    try:
        with pytest.raises(TrackingError, match=r"MLflow registry at http://127\.0\.0\.1"):
            promote(env, v2)
        done = cli(repo, server, "registry status", check=False)
        assert done.returncode == 1
        assert "unreachable" in done.stderr
    finally:
        monkeypatch.undo()
        server.start()
        monkeypatch.chdir(repo)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    assert aliases(env) == (v1, None)  # unchanged
    rerun = cli(repo, server, "registry promote", "--version", str(v2))
    assert f"version {v2} is @champion" in rerun.stdout
    assert aliases(env) == (v2, v1)


# -- lineage: the registered commit and its real state ----------------------------------------


def test_lineage_describes_the_registered_commit(
    env: Params, repo: Path, server: MlflowServer
) -> None:
    """The normal flow: ``dvc repro`` logs its run with the change uncommitted, then the change
    is committed and registered; the version describes that commit, clean, not the run's."""
    use_model(repo, "real")
    notes = repo / "notes.md"
    notes.write_text("one\n")
    run(["git", "add", "notes.md"], repo)
    new_commit(repo, "notes")
    notes.write_text("two\n")  # a tracked file changed: the tree the run is logged from is dirty
    logged_at = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    run(
        ["modelci", "evaluate", "--params", "params.test.yaml"],
        repo,
        MLFLOW_TRACKING_URI=server.uri,
    )
    run(["git", "add", "notes.md"], repo)
    commit = new_commit(repo, "the change the run was made from")
    version = register(env).version
    tags = version.tags
    assert (tags["modelci.git_commit"], tags["modelci.git_dirty"]) == (commit, "false")
    assert (tags["modelci.run.git_commit"], tags["modelci.run.git_dirty"]) == (logged_at, "true")
    assert tags["modelci.model_matches_dvc_lock"] == "true"
    # what a server of this version reports on /model, and what status shows, agree
    from modelci import model_source

    uri = f"models:/{env.tracking.model_name}/{version.version}"
    _, info = model_source.fetch(uri, tracking_uri=server.uri)
    assert info.git_commit == commit
    assert status(env)["versions"][0]["commit"] == commit
    assert status(env)["versions"][0]["version"] == version.version


# -- rollback onto a version the gate rejected ------------------------------------------------


def test_rollback_to_a_rejected_version_needs_force_and_stays_visible(
    env: Params, repo: Path, server: MlflowServer
) -> None:
    params = with_rules(env, TOLERANCE_ONLY)
    v1 = registered(params, repo, "real")
    assert promote(params, v1).promoted
    v2 = registered(params, repo, "weak")
    assert not promote(params, v2).passed
    v3 = registered(params, repo, "real")
    assert promote(params, v3).promoted
    with pytest.raises(RegistryError, match=r"the gate rejected it .*--force"):
        rollback(params, to=v2)
    assert aliases(params) == (v3, v1)
    with pytest.raises(RegistryError, match="--force needs a --reason"):
        rollback(params, to=v2, force=True)
    refused = cli(repo, server, "registry rollback", "--to", str(v2), check=False)
    assert refused.returncode == 1
    assert "refusing to make it the champion" in refused.stderr
    assert aliases(params) == (v3, v1)

    forced = cli(
        repo, server, "registry rollback", "--to", str(v2), "--force", "--reason", "incident 7"
    )
    assert "FORCED" in forced.stdout
    assert aliases(params) == (v2, v1)
    state = status(params)
    assert state["champion"]["gate"] == "forced (over: rejected)"
    assert "regressed" in state["champion"]["gate_detail"]
    assert {v["version"]: v["gate"] for v in state["versions"]}[v2] == "forced (over: rejected)"
    assert f"@champion: version {v2}" in cli(repo, server, "registry status").stdout
    assert "gate forced (over: rejected)" in cli(repo, server, "registry status").stdout


# -- status: read-only, no MLflow import, no side effect ---------------------------------------

_STATUS_PROBE = """
import sys
from modelci.cli import main
code = main(["registry", "status", "--params", "params.test.yaml", "--json"])
print("mlflow imported" if "mlflow" in sys.modules else "mlflow not imported", file=sys.stderr)
sys.exit(code)
"""


def test_status_reads_the_rest_api_and_writes_nothing(
    env: Params, repo: Path, server: MlflowServer, tmp_path: Path
) -> None:
    v1 = registered(env, repo, "real")
    promote(env, v1)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy2(repo / "params.test.yaml", work / "params.test.yaml")
    done = run([sys.executable, "-c", _STATUS_PROBE], work, MLFLOW_TRACKING_URI=server.uri)
    assert json.loads(done.stdout)["champion"]["version"] == v1
    assert "mlflow not imported" in done.stderr
    assert sorted(p.name for p in work.iterdir()) == ["params.test.yaml"]
    # no tracking URI and no mlflow.db: a clear error, and no sqlite store made by reading
    missing = run(
        ["modelci", "registry", "status", "--params", "params.test.yaml"], work, check=False
    )
    assert missing.returncode == 1
    assert "no MLflow registry to read" in missing.stderr
    assert "MLFLOW_TRACKING_URI" in missing.stderr
    assert sorted(p.name for p in work.iterdir()) == ["params.test.yaml"]
