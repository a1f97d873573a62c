"""``modelci monitor drift`` and the monitor commands on a reproduced pipeline, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from modelci.cli import main
from modelci.drift.commands import DRIFT_EXIT
from modelci.drift.github import GitHub, GitHubError, sync_issue
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN

pytestmark = pytest.mark.unit


def drift(repo: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "drift",
            "--params",
            str(repo / "params.yaml"),
            "--reference",
            str(repo / "data/prepared/train.parquet"),
            "--model",
            str(repo / "models/model.skops"),
            "--metrics",
            str(repo / "metrics.json"),
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def windows(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The held-out test split as CSV; a shifted copy as a prediction log, and its labels."""
    folder = tmp_path_factory.mktemp("windows")
    test = pd.read_parquet(pipeline_repo / "data/prepared/test.parquet")
    test.to_csv(folder / "heldout.csv", index=False)
    shifted = test.assign(age=test["age"] + 25, fare=test["fare"] * 3)
    log = folder / "log"
    log.mkdir()
    with (log / "predictions.jsonl").open("w", encoding="utf-8") as out:
        rows = json.loads(shifted.drop(columns=["survived"]).to_json(orient="records"))
        for index, row in enumerate(rows):
            out.write(json.dumps({"request_id": f"r{index}", "input": row}) + "\n")
        out.write('{"request_id": "torn", "inp')  # a crash mid-line is skipped
    ids = [f"r{index}" for index in range(len(test))]
    pd.DataFrame({"request_id": ids, "survived": test["survived"]}).to_csv(
        folder / "labels.csv", index=False
    )
    return {"heldout": folder / "heldout.csv", "log": log, "labels": folder / "labels.csv"}


def test_held_out_data_does_not_drift(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert drift(pipeline_repo, tmp_path, "--current", str(windows["heldout"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ok    age:") for line in lines)
    assert any(line.startswith("ok    prediction:") for line in lines)
    result = json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))
    assert result["drift"] is False
    assert {f"plots/{name}.png" for name in ("age", "gender", "prediction")} <= set(result["plots"])
    assert all((tmp_path / plot).read_bytes().startswith(b"\x89PNG") for plot in result["plots"])
    assert "**no drift" in (tmp_path / "drift.md").read_text(encoding="utf-8")


def test_shifted_log_drifts_and_labels_report_realized_metrics(
    pipeline_repo: Path, windows: dict[str, Path], tmp_path: Path
) -> None:
    code = drift(
        pipeline_repo,
        tmp_path,
        "--current",
        str(windows["log"]),
        "--labels",
        str(windows["labels"]),
    )
    assert code == DRIFT_EXIT
    result = json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))
    assert {"age", "fare"} <= set(result["drifted_features"])
    assert "gender" not in result["drifted_features"]
    realized = result["realized"]
    assert realized["rows"] == result["rows_current"]
    test_metrics = json.loads((pipeline_repo / "metrics.json").read_text(encoding="utf-8"))
    assert realized["test_metrics"] == test_metrics
    accuracy = next(m for m in realized["verdict"]["metrics"] if m["name"] == "accuracy")
    assert accuracy["baseline"] == test_metrics["accuracy"]
    assert "### Realized performance" in (tmp_path / "drift.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.csv", "nope.csv: no such file or directory"),
        (lambda d: d / "w.txt", "w.txt: unsupported format"),
        (lambda d: d / "small.csv", "current window: 3 rows, fewer than monitor.min_rows (200)"),
        (lambda d: d / "bad.jsonl", "bad.jsonl:1: not JSON"),
        (lambda d: d / "empty", "no prediction log and no .csv, .parquet, .jsonl files"),
    ],
)
def test_bad_windows_fail_naming_the_file(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: object,
    message: str,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "w.txt").write_text("x\n", encoding="utf-8")
    pd.read_csv(windows["heldout"]).head(3).to_csv(folder / "small.csv", index=False)
    (folder / "bad.jsonl").write_text("{oops\n{}\n", encoding="utf-8")
    (folder / "empty").mkdir()
    current = make(folder)  # type: ignore[operator]
    out = tmp_path / "out"
    assert drift(pipeline_repo, out, "--current", str(current)) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_labels_without_request_ids_are_refused(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = drift(
        pipeline_repo,
        tmp_path / "out",
        "--current",
        str(windows["heldout"]),
        "--labels",
        str(windows["labels"]),
    )
    assert code == 1
    assert "current window: no 'request_id' column" in capsys.readouterr().err
    bad = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["r1"], "other": [1]}).to_csv(bad, index=False)
    code = drift(
        pipeline_repo, tmp_path / "out", "--current", str(windows["log"]), "--labels", str(bad)
    )
    assert code == 1
    assert "labels.csv: no 'survived' column" in capsys.readouterr().err


def test_invalid_monitor_section_names_file_and_key(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    params = tmp_path / "params.yaml"
    text = (pipeline_repo / "params.yaml").read_text(encoding="utf-8")
    params.write_text(text + "\nmonitor:\n  min_rows: 0\n", encoding="utf-8")
    code = main(["monitor", "drift", "--params", str(params), "--current", str(windows["heldout"])])
    assert code == 2
    assert f"{params}: monitor.min_rows: Input should be greater than or equal to 1" in (
        capsys.readouterr().err
    )


def test_fetch_window_copies_a_file_url_and_refuses_other_schemes(
    windows: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = windows["heldout"].as_uri()
    assert main(["monitor", "fetch-window", "--source", url, "--out", str(tmp_path / "w")]) == 0
    fetched = tmp_path / "w" / "heldout.csv"
    assert fetched.read_bytes() == windows["heldout"].read_bytes()
    assert (
        main(["monitor", "fetch-window", "--source", "ftp://x/y.csv", "--out", str(tmp_path)]) == 1
    )
    assert "expected an http(s):// or file:// URL or dvc:PATH" in capsys.readouterr().err
    missing = (tmp_path / "gone.csv").as_uri()
    assert main(["monitor", "fetch-window", "--source", missing, "--out", str(tmp_path / "x")]) == 1
    assert "cannot fetch the window" in capsys.readouterr().err
    assert not (tmp_path / "x" / "gone.csv").exists()


def test_refresh_data_needs_a_file_source(
    pipeline_repo: Path, windows: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["monitor", "refresh-data", "--params", str(pipeline_repo / "params.yaml")]
    args += ["--window", str(windows["log"]), "--labels", str(windows["labels"])]
    assert main(args) == 2
    assert "data.source: 'data/titanic.source.yaml' is not a CSV or Parquet file" in (
        capsys.readouterr().err
    )


def test_refresh_data_appends_the_labelled_rows(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelci.data.sources import read_table

    raw = read_table(pipeline_repo / "data/titanic.source.yaml")
    raw.to_csv(tmp_path / "raw.csv", index=False)
    text = (pipeline_repo / "params.yaml").read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        text.replace("data/titanic.source.yaml", "raw.csv"), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    args = [
        "monitor",
        "refresh-data",
        "--window",
        str(windows["log"]),
        "--labels",
        str(windows["labels"]),
    ]
    assert main(args) == 0
    after = pd.read_csv(tmp_path / "raw.csv")
    added = len(pd.read_csv(windows["labels"]))
    assert len(after) == len(raw) + added
    assert list(after.columns) == list(raw.columns)


def test_monitor_issue_without_drift_json_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["monitor-issue", "--drift", str(tmp_path / "drift.json"), "--repo", "o/r", "--model", "m"]
    )
    assert code == 1
    assert "not found: the drift check failed before writing its report" in capsys.readouterr().err


def test_sync_issue_opens_updates_and_closes_one_issue(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path, "o/r") as fake:
        github = GitHub(fake.url, "o/r", FAKE_GITHUB_TOKEN)
        assert sync_issue(github, "m", False, "t", "report", "") == ("none", None)
        for number in range(3):  # other open issues with the label, not this model's
            fake.state.issues.append(
                {"number": 100 + number, "user": "alice", "state": "open", "updates": 0,
                 "title": "x", "body": "not ours", "labels": ["modelci-monitor"]}
            )  # fmt: skip
        action, number = sync_issue(github, "m", True, "drift", "first", "")
        assert action == "opened"
        assert sync_issue(github, "other-model", True, "drift", "x", "")[0] == "opened"
        assert sync_issue(github, "m", True, "drift", "second", "u") == ("updated", number)
        assert sync_issue(github, "m", False, "ok", "clean", "u") == ("closed", number)
        ours = [i for i in fake.state.issues if i["number"] == number]
        assert ours[0]["state"] == "closed"
        assert "second" in ours[0]["body"]
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHub("http://127.0.0.1:1", "o/r", "")


def test_fetch_window_pulls_a_dvc_tracked_file_from_the_remote(
    windows: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    from tests.conftest import run

    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    (repo / "production").mkdir()
    shutil.copyfile(windows["heldout"], repo / "production" / "window.csv")
    run(["dvc", "add", "-q", "production/window.csv"], repo)
    run(["dvc", "push", "-q"], repo)
    (repo / "production" / "window.csv").unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    monkeypatch.chdir(repo)
    args = ["monitor", "fetch-window", "--source", "dvc:production/window.csv", "--out", "w"]
    assert main(args) == 0
    assert (repo / "w" / "window.csv").read_bytes() == windows["heldout"].read_bytes()
    args = ["monitor", "fetch-window", "--source", "dvc:production/none.csv", "--out", "w"]
    assert main(args) == 1
    assert "fetch-window dvc:production/none.csv: dvc pull --force failed" in (
        capsys.readouterr().err
    )
