"""``modelci init --engine dask``: the compute section, the Dask pipeline, the dask extra, the
callers passing the cluster's secrets, and the estimators the engine accepts (docs/scale.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelci.cli import main
from modelci.config import CLUSTER_SECRETS, parse_params
from modelci.pipeline.cluster import DISTRIBUTED_ESTIMATORS
from modelci.scaffold.estimators import KNOWN_ESTIMATORS
from modelci.scaffold.init import ScaffoldError, make_plan
from tests.unit.test_scaffold import customers, options, repository  # noqa: F401 (a fixture)

pytestmark = pytest.mark.unit

CALLERS = ("pr.yml", "release.yml", "monitor.yml")


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    customers().to_csv(path, index=False)
    return path


def test_the_dask_learners_init_offers_are_the_ones_the_engine_trains() -> None:
    offered = {name for name, known in KNOWN_ESTIMATORS.items() if known.distributed}
    assert offered == {name for both in DISTRIBUTED_ESTIMATORS.values() for name in both}
    assert all(KNOWN_ESTIMATORS[name].extra == "dask" for name in offered)


@pytest.mark.slow  # check-params imports xgboost.dask and distributed: about 20 s under load
def test_engine_dask_writes_params_that_check_params_accepts(
    tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan(options(tmp_path, data_file, engine="dask"))
    params = parse_params(yaml.safe_load(plan.files["params.yaml"]))
    assert params.compute.engine == "dask"
    assert params.compute.address == "env:DASK_SCHEDULER_ADDRESS"
    assert params.compute.partitions == 8
    assert params.train.estimator == "xgboost.dask.DaskXGBClassifier"
    assert '"modelci[dask,onnx,serve]==' in plan.files["pyproject.toml"].decode()
    # The params as written, with the data beside them, pass the command adopters run.
    folder = tmp_path / "written"
    for relative in ("params.yaml", plan.data_path):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(plan.files[relative])
    monkeypatch.chdir(folder)
    assert main(["check-params", "--params", "params.yaml", "--no-cache"]) == 0


def test_engine_dask_pipeline_reads_the_source_record_and_records_how_it_ran(
    tmp_path: Path, data_file: Path
) -> None:
    local = yaml.safe_load(make_plan(options(tmp_path, data_file)).files["dvc.yaml"])
    plan = make_plan(options(tmp_path, data_file, engine="dask"))
    stages = yaml.safe_load(plan.files["dvc.yaml"])["stages"]
    assert list(stages) == ["source", *local["stages"]]
    assert stages["source"]["cmd"] == "modelci source"
    assert stages["source"]["always_changed"] is True
    assert stages["prepare"]["deps"] == ["data/source.json"]
    assert "compute" in stages["train"]["params"]
    assert {"models/compute.json": {"cache": False}} in stages["train"]["outs"]
    assert "models/compute.json" in stages["evaluate"]["deps"]
    # Every other stage and output is the local engine's: the report and serving read them.
    for name in ("export",):
        assert stages[name] == local["stages"][name]
    assert yaml.safe_load(plan.files["dvc.yaml"])["plots"] == local["plots"]
    readme = plan.files["README.md"].decode()
    assert f"the pipeline: {', '.join(stages)}" in readme
    assert "DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 uv run dvc" in readme


def test_engine_dask_callers_pass_the_cluster_secrets_and_local_ones_do_not(
    tmp_path: Path, data_file: Path
) -> None:
    dask = make_plan(options(tmp_path, data_file, engine="dask"))
    local = make_plan(options(tmp_path, data_file))
    for caller in CALLERS:
        path = f".github/workflows/{caller}"
        secrets = yaml.safe_load(dask.files[path])["jobs"]
        (job,) = secrets.values()
        for name in CLUSTER_SECRETS:
            assert job["secrets"][name] == f"${{{{ secrets.{name} }}}}", (caller, name)
        assert not any(name in local.files[path].decode() for name in CLUSTER_SECRETS)


def test_engine_dask_takes_a_lightgbm_learner_and_a_regressor(
    tmp_path: Path, data_file: Path
) -> None:
    plan = make_plan(
        options(tmp_path, data_file, engine="dask", estimator="lightgbm.DaskLGBMClassifier")
    )
    assert parse_params(yaml.safe_load(plan.files["params.yaml"])).train.estimator == (
        "lightgbm.DaskLGBMClassifier"
    )
    asked = options(tmp_path, data_file, engine="dask", task="regression")
    regression = make_plan(replace(asked, target="income", null_target="drop"))
    params = parse_params(yaml.safe_load(regression.files["params.yaml"]))
    assert params.train.estimator == "xgboost.dask.DaskXGBRegressor"


@pytest.mark.parametrize(
    ("engine", "estimator", "message"),
    [
        (
            "dask",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            r"--engine dask: params.yaml: train.estimator: sklearn.ensemble."
            r"HistGradientBoostingClassifier cannot train on compute.engine: dask; use one of "
            r"xgboost.dask.DaskXGBClassifier, lightgbm.DaskLGBMClassifier \(binary task\)",
        ),
        ("dask", "xgboost.XGBClassifier", "cannot train on compute.engine: dask"),
        (
            "local",
            "xgboost.dask.DaskXGBClassifier",
            "--engine local: .* trains on a Dask cluster; set compute.engine: dask",
        ),
    ],
)
def test_an_estimator_the_engine_refuses_is_refused_with_its_message(
    tmp_path: Path, data_file: Path, engine: str, estimator: str, message: str
) -> None:
    with pytest.raises(ScaffoldError, match=message):
        make_plan(options(tmp_path, data_file, engine=engine, estimator=estimator))


def test_engine_dask_default_refuses_text_labels_naming_the_lightgbm_learner(
    tmp_path: Path,
) -> None:
    path = tmp_path / "labels.csv"
    frame = customers()
    frame["churned"] = np.where(frame["churned"] == 1, "yes", "no")
    frame.to_csv(path, index=False)
    with pytest.raises(ScaffoldError, match=r"use --estimator lightgbm\.DaskLGBMClassifier"):
        make_plan(options(tmp_path, path, engine="dask"))


@pytest.mark.usefixtures("repository")
def test_add_with_engine_dask_needs_the_dask_extra(tmp_path: Path, data_file: Path) -> None:
    asked = options(tmp_path, data_file, add="models/churn", git=False)
    with pytest.raises(ScaffoldError, match=r"--engine dask needs modelci's 'dask' extra"):
        make_plan(replace(asked, engine="dask"))


def test_cli_engine_flag_reaches_the_plan(
    tmp_path: Path, data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["init", str(tmp_path / "repo"), "--data", str(data_file), "--target", "churned"]
    args += ["--workflows-ref", "0" * 40, "--no-lock", "--no-git", "--engine", "dask", "--dry-run"]
    assert main(args) == 0
    assert "create params.yaml" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args[:-3], "--engine", "spark"])
    assert "--engine: invalid choice: 'spark'" in capsys.readouterr().err
