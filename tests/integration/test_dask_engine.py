"""``compute.engine: dask`` for real: a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1 (a memory limit each), moto's S3 server holding the data, and ``dvc repro`` with the
params and ``dvc.yaml`` docs/scale.md shows, then the report, the gate and ``modelci serve``.

The S3 server and the cluster are the session's (``dask_s3``, ``dask_cluster`` in conftest.py),
except for the test that kills a worker, which starts its own; each test that changes the
repository works on a copy.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelci.fileio import file_digest
from tests.conftest import REPO_ROOT, run
from tests.dask_support import Cluster
from tests.integration.conftest import DASK_WORKER_MEMORY, dask_s3_env, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "modelci-data"
PREFIX = "churn"
FILES = 4
ROWS_PER_FILE = 2500


def doc_example(name: str) -> dict[str, Any]:
    """The YAML block after ``<!-- example:NAME -->`` in docs/scale.md."""
    text = (REPO_ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- example:{name} -->\n```yaml\n(.*?)```", text, re.S)
    assert found, f"docs/scale.md has no example {name}"
    loaded: dict[str, Any] = yaml.safe_load(found.group(1))
    return loaded


def churn(index: int, rows: int = ROWS_PER_FILE) -> pd.DataFrame:
    rng = np.random.default_rng(index)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(index * rows, (index + 1) * rows),
            "tenure": rng.integers(0, 72, rows),
            "monthly": rng.uniform(10, 120, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
        }
    )
    score = frame["monthly"] / 60 - frame["tenure"] / 24 + (frame["plan"] == "basic")
    frame["churned"] = (score + rng.normal(0, 0.5, rows) > 0.2).astype("int64")
    return frame


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def s3(dask_s3: Any) -> Any:
    """The session's S3 server with this module's bucket of churn files."""
    client = dask_s3.client()
    client.create_bucket(Bucket=BUCKET)
    for index in range(FILES):
        key = f"{PREFIX}/part-{index}.parquet"
        client.put_object(Bucket=BUCKET, Key=key, Body=parquet_bytes(churn(index)))
    return dask_s3


@pytest.fixture(scope="module")
def cluster(s3: Any, dask_cluster: Cluster) -> Cluster:
    return dask_cluster


@pytest.fixture(scope="module")
def env(s3: Any, cluster: Cluster) -> dict[str, str]:
    return {**dask_s3_env(s3), "DASK_SCHEDULER_ADDRESS": cluster.address}


def dask_params() -> dict[str, Any]:
    params = doc_example("params-dask")
    params["data"]["source"] = f"s3://{BUCKET}/{PREFIX}/*.parquet"
    params["train"]["estimator_params"] = {"n_estimators": 30, "max_depth": 3}
    params["evaluate"] = {"slices": ["plan"]}
    params["gate"] = {"metrics": {"roc_auc": {"min": 0.7, "tolerance": 0.02}}}
    return params


@pytest.fixture(scope="module")
def dask_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """A model repository on the Dask engine, reproduced once and committed."""
    repo = tmp_path_factory.mktemp("dask") / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump(dask_params(), sort_keys=False))
    (repo / "dvc.yaml").write_text(yaml.safe_dump(doc_example("dvc-dask"), sort_keys=False))
    (repo / ".gitignore").write_text("mlflow.db\nmlruns/\n.modelci/\n")
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    summary = repo.parent / "job-summary.md"  # outside the repository, as on a runner
    run(["dvc", "repro"], repo, timeout=900, GITHUB_STEP_SUMMARY=str(summary), **env)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "dask model"], repo)
    return repo


def copy_of(repo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))


def test_repro_on_s3_data_then_report_gate_and_serve(
    dask_repo: Path, env: dict[str, str], cluster: Cluster, tmp_path: Path
) -> None:
    repo = dask_repo
    profile = json.loads((repo / "data/prepared/profile.json").read_text())
    assert profile["rows"]["total"] == FILES * ROWS_PER_FILE
    assert profile["rows"]["train"] + profile["rows"]["test"] == FILES * ROWS_PER_FILE
    files = profile["source"]["files"]
    assert [entry["path"] for entry in files] == [
        f"s3://{BUCKET}/{PREFIX}/part-{index}.parquet" for index in range(FILES)
    ]
    assert all(entry["ETag"] for entry in files)
    assert len(list((repo / "data/prepared/train.parquet").glob("part-*.parquet"))) == 8
    compute = json.loads((repo / "models/compute.json").read_text())
    assert compute == {
        "engine": "dask",
        "estimator": "xgboost.dask.DaskXGBClassifier",
        "partitions": 8,
        "threads_per_worker": 1,
        "workers": 2,
    }
    assert (
        "Trained on: Dask, 2 worker(s), 8 partitions"
        in (repo / "reports/model_card.md").read_text()
    )
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.7
    # where and how each stage ran: the job summary and the record the report reads
    summary = (repo.parent / "job-summary.md").read_text()
    for stage in ("prepare", "train", "evaluate"):
        assert re.search(
            rf"\*\*{stage}\*\* .* on 2 Dask worker\(s\), 8 partitions, [\d.]+ s wall time "
            rf"\(\[dashboard\]\(http://127\.0\.0\.1:{cluster.dashboard_port}/status\)\)",
            summary,
        ), summary
    ran = json.loads((repo / ".modelci/compute-run.json").read_text())
    assert set(ran) == {"prepare", "train", "evaluate"}
    assert {entry["workers"] for entry in ran.values()} == {2}

    # Nothing changed in the bucket: only the listing runs, and dvc.lock stays as committed.
    again = run(["dvc", "repro"], repo, **env)
    assert "Running stage 'source'" in again.stdout
    assert "Running stage 'prepare'" not in again.stdout
    assert run(["git", "status", "--porcelain"], repo).stdout == ""

    out = tmp_path / "report"
    run(["modelci", "pr", "report", "--base", "HEAD", "--out", str(out)], repo, **env)
    markdown = (out / "report.md").read_text()
    assert "| **roc\\_auc** | " in markdown
    # the paired statistics read the per-row predictions, as on the local engine
    assert f"paired bootstrap over {profile['rows']['test']} test rows" in markdown
    assert "### Plots\n\nNo plots." not in markdown
    assert re.search(r"\| evaluate \| dask \| 2 \| 8 \| [\d.]+ s \| ", markdown), markdown
    gate = run(["modelci", "pr", "gate", "--base", "HEAD"], repo, **env)
    assert "PASS    roc_auc: " in gate.stdout

    import httpx

    server = start_serve(repo, "--model", "models/model.skops")
    try:
        row = {"tenure": 2, "monthly": 110.0, "plan": "basic"}
        response = httpx.post(f"http://127.0.0.1:{server.port}/predict", json=row, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0] in (0, 1)
    finally:
        server.stop()
        server.cleanup()


def test_a_changed_object_reruns_prepare(
    dask_repo: Path, env: dict[str, str], s3: Any, tmp_path: Path
) -> None:
    repo = copy_of(dask_repo, tmp_path)
    client = s3.client()
    key = f"{PREFIX}/part-3.parquet"
    before = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    changed = churn(3)
    changed.loc[0, "tenure"] = 71 - int(changed.loc[0, "tenure"])
    client.put_object(Bucket=BUCKET, Key=key, Body=parquet_bytes(changed))
    try:
        done = run(["dvc", "repro"], repo, timeout=900, **env)
        assert "Running stage 'prepare'" in done.stdout
        diff = run(["git", "diff", "--stat"], repo).stdout
        assert "data/source.json" in diff
        assert "dvc.lock" in diff
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=before)


def test_the_same_run_gives_the_same_model_bytes(
    dask_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    repo = copy_of(dask_repo, tmp_path)
    committed = file_digest(repo / "models/model.skops")
    run(["dvc", "repro", "--force", "train"], repo, timeout=900, **env)
    assert file_digest(repo / "models/model.skops") == committed
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""


def rows_of(directory: Path) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(path) for path in sorted(directory.glob("part-*"))])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_the_split_is_the_same_at_2_and_4_partitions(
    dask_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    splits = {}
    for partitions in (2, 4):
        repo = tmp_path / str(partitions)
        repo.mkdir()
        params = dask_params()
        params["compute"]["partitions"] = partitions
        params["prepare"].pop("split_key")  # the hash of the whole row
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["modelci", "prepare"], repo, timeout=900, **env)
        parts = sorted((repo / "data/prepared/test.parquet").glob("part-*"))
        assert len(parts) == partitions
        splits[partitions] = rows_of(repo / "data/prepared/test.parquet")
    pd.testing.assert_frame_equal(splits[2], splits[4])
    assert 0.15 < len(splits[2]) / (FILES * ROWS_PER_FILE) < 0.25


def test_evaluate_on_the_workers_equals_the_local_engine(
    dask_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """The metrics, slices and per-row predictions the cluster computed (in ``dask_repo``) are
    the local engine's on the same model and test split."""
    from modelci.config import DataParams
    from modelci.judge.metrics import compute_metrics, predict, slice_metrics
    from modelci.modelfile import load_model
    from modelci.prediction_table import to_frame

    repo = copy_of(dask_repo, tmp_path)
    done = run(["modelci", "evaluate"], repo, timeout=900, **env)
    assert re.search(
        r"evaluate: \d+ test rows scored on 2 Dask worker\(s\), 8 partitions", done.stdout
    )
    params = dask_params()
    data = DataParams.model_validate(params["data"])
    model = load_model(repo / "models/model.skops")
    test = rows_in_order(repo / "data/prepared/test.parquet")
    pred = predict(model, test[data.features], test[data.target])
    local = compute_metrics(pred, data)
    cluster = json.loads((repo / "metrics.json").read_text())
    assert set(cluster) == set(local)
    for name, value in local.items():
        assert cluster[name] == pytest.approx(value, abs=1e-5), name
    slices = json.loads((repo / "reports/slices.json").read_text())
    expected = slice_metrics(pred, test, data, ("plan",), 10)
    assert list(slices["plan"]) == list(expected["plan"])
    for value, entry in expected["plan"].items():
        assert slices["plan"][value] == pytest.approx(entry, abs=1e-5)
    pd.testing.assert_frame_equal(
        pd.read_parquet(repo / "reports/predictions.parquet"), to_frame(pred)
    )
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""


def rows_in_order(directory: Path) -> pd.DataFrame:
    """A partitioned split as one table, partitions in order (the order evaluate scores)."""
    parts = [pd.read_parquet(path) for path in sorted(directory.glob("part-*"))]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def own_cluster(s3: Any) -> Iterator[Cluster]:
    """A cluster like the session's, for a test that kills one of its workers."""
    with Cluster(workers=2, memory_limit=str(DASK_WORKER_MEMORY), env=dask_s3_env(s3)) as up:
        yield up


def test_a_worker_killed_during_training_fails_cleanly(
    dask_repo: Path, env: dict[str, str], own_cluster: Cluster, tmp_path: Path
) -> None:
    """SIGKILL one worker (of a cluster this test started) while XGBoost trains: ``dvc repro``
    fails with one line naming the cluster, and neither the model nor ``dvc.lock`` changes."""
    import subprocess
    import time

    from distributed import Client

    from tests.conftest import tool_env

    cluster = own_cluster
    env = {**env, "DASK_SCHEDULER_ADDRESS": cluster.address}

    repo = copy_of(dask_repo, tmp_path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["estimator_params"] = {"n_estimators": 3000, "max_depth": 8}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    model = file_digest(repo / "models/model.skops")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    repro = subprocess.Popen(
        ["dvc", "repro", "train"],
        cwd=repo,
        env=tool_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with Client(cluster.address, timeout=30) as client:
            deadline = time.monotonic() + 300
            # train scatters its encoded partitions (numpy arrays) just before the fit
            while not any(
                "ndarray" in str(key) for keys in client.has_what().values() for key in keys
            ):
                assert repro.poll() is None, repro.communicate()[0]
                assert time.monotonic() < deadline, "training never started on the cluster"
                time.sleep(0.2)
        time.sleep(5)  # inside the boosting rounds (about 50 s of them here)
        cluster.kill_worker("worker-1")
        output, _ = repro.communicate(timeout=300)
    finally:
        if repro.poll() is None:
            repro.kill()
            repro.wait(10)
    assert repro.returncode != 0, output
    errors = [line for line in output.splitlines() if "modelci train: error:" in line]
    assert len(errors) == 1, output
    assert "training on the Dask cluster failed" in errors[0]
    assert "no model written" in errors[0]
    # DVC removes a stage's outputs before running it: the model is gone or the committed one
    written = repo / "models/model.skops"
    assert not written.exists() or file_digest(written) == model
    assert not list((repo / "models").glob(".model.skops.*")), "a half-written model is left"
    # prepare re-ran (it depends on all of params.yaml) and is recorded; train and evaluate not
    after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert after["train"] == lock["train"]
    assert after["evaluate"] == lock["evaluate"]
