"""``modelci monitor drift``, ``fetch-window`` and ``refresh-data`` on a reproduced pipeline (the
session's ``pipeline_repo``), and their error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from modelci.cli import main
from modelci.drift.commands import DRIFT_EXIT
from modelci.github_api import GitHub, GitHubError
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN

pytestmark = pytest.mark.integration


def drift(repo: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "monitor",
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


def test_batch_predictions_are_labelled_by_row_id(
    pipeline_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23.6: rows predicted in batches share their request id; labels keyed by the
    server-made row id join one to one, labels keyed by the request id are refused."""
    test = pd.read_parquet(pipeline_repo / "data/prepared/test.parquet")
    log = tmp_path / "log"
    log.mkdir()
    rows = json.loads(test.drop(columns=["survived"]).to_json(orient="records"))
    with (log / "predictions.jsonl").open("w", encoding="utf-8") as out:
        for index, row in enumerate(rows):
            batch, position = divmod(index, 10)
            record = {"request_id": f"b{batch}", "row_id": f"p{batch}-{position}", "input": row}
            out.write(json.dumps(record) + "\n")
    ids = [f"p{index // 10}-{index % 10}" for index in range(len(test))]
    by_row = tmp_path / "by_row.csv"
    pd.DataFrame({"row_id": ids, "survived": test["survived"]}).to_csv(by_row, index=False)
    drift(pipeline_repo, tmp_path / "out", "--current", str(log), "--labels", str(by_row))
    result = json.loads((tmp_path / "out" / "drift.json").read_text(encoding="utf-8"))
    assert result["realized"]["rows"] == len(test)
    by_request = tmp_path / "by_request.csv"
    batches = [f"b{index // 10}" for index in range(len(test))]
    labels = pd.DataFrame({"request_id": batches, "survived": test["survived"]})
    labels.drop_duplicates("request_id").to_csv(by_request, index=False)
    args = ("--current", str(log), "--labels", str(by_request))
    assert drift(pipeline_repo, tmp_path / "out2", *args) == 1
    assert "the join is not one to one: request id(s) 'b0' (10 rows)" in capsys.readouterr().err


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


def test_refresh_data_refuses_a_join_that_is_not_one_to_one(
    pipeline_repo: Path,
    windows: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The guarantee against request-id poisoning across workers (each worker flags only the
    repeats it saw itself): a batch logged under a reused client id `r0`, however many
    workers served it, makes refresh-data refuse, naming the id, and the data stays as it was."""
    raw = tmp_path / "raw.csv"
    pd.read_csv(windows["heldout"]).to_csv(raw, index=False)
    text = (pipeline_repo / "params.yaml").read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        text.replace("data/titanic.source.yaml", "raw.csv"), encoding="utf-8"
    )
    log = tmp_path / "log"
    log.mkdir()
    lines = (windows["log"] / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    batch = [json.dumps({**first, "row_id": f"p-{i}"}) for i in range(50)]  # another worker's
    (log / "predictions.jsonl").write_text("\n".join([*lines[:-1], *batch]) + "\n")
    before = raw.read_bytes()
    monkeypatch.chdir(tmp_path)
    args = ["monitor", "refresh-data", "--window", str(log), "--labels", str(windows["labels"])]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "not one to one" in err
    assert "'r0' (51 rows)" in err
    assert raw.read_bytes() == before


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


@pytest.fixture
def retrain_checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A checkout of main with one changed file, whose origin is a local bare repository."""
    from tests.conftest import run

    remote, repo = tmp_path / "remote.git", tmp_path / "repo"
    run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], tmp_path)
    run(["git", "init", "-q", "-b", "main", str(repo)], tmp_path)
    (repo / "data.csv").write_text("a\n1\n", encoding="utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], repo)
    run(["git", "remote", "add", "origin", str(remote)], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    (repo / "data.csv").write_text("a\n1\n2\n", encoding="utf-8")
    (tmp_path / "report.md").write_text("## the report\n", encoding="utf-8")
    return repo, remote


def _open_pr(
    repo: Path, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[int, dict[str, str], str]:
    """``modelci monitor open-pr`` in ``repo``; returns its exit code, step outputs and summary."""
    outputs, summary = repo.parent / "outputs", repo.parent / "summary.md"
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MODELCI_GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_GITHUB_TOKEN)
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for name in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(name, "t")
    for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(name, "t@t")
    code = main(
        ["monitor", "open-pr", "--repo", "o/r", "--branch", "modelci/retrain", "--title", "Retrain",
         "--body-file", str(repo.parent / "report.md"), *extra]
    )  # fmt: skip
    pairs = dict(line.split("=", 1) for line in outputs.read_text("utf-8").splitlines())
    return code, pairs, summary.read_text("utf-8") if summary.exists() else ""


def _remote_head(remote: Path) -> str:
    from tests.conftest import run

    return run(["git", "rev-parse", "modelci/retrain"], remote).stdout.strip()


def test_open_pr_with_an_app_token_opens_the_pr_as_the_app(
    retrain_checkout: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.workflows.fake_github import APP_BOT, APP_TOKEN, StartedRun, started_runs

    repo, remote = retrain_checkout
    monkeypatch.setenv("MODELCI_APP_TOKEN", APP_TOKEN)
    with FakeGitHub(tmp_path / "gh", "o/r") as fake:
        code, outputs, summary = _open_pr(repo, fake, monkeypatch, "--ci-workflow", "pr.yml")
        (pull,) = fake.state.pulls
    assert code == 0
    assert (pull["user"], pull["opened_with"]) == (APP_BOT, "installation")
    assert outputs["ci"] == "app"
    assert outputs["head-sha"] == _remote_head(remote)
    assert pull["body"].startswith("## the report\n")
    assert "GitHub App's token" in pull["body"]
    assert "GitHub App's token" in summary
    # GitHub runs the PR's workflows; nothing is dispatched when the App opened the PR.
    assert started_runs(tmp_path / "gh") == [StartedRun("pull_request", "modelci/retrain", 1)]


def test_open_pr_dispatches_the_ci_workflow_on_the_branch(
    retrain_checkout: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.workflows.fake_github import BOT, StartedRun, started_runs

    repo, remote = retrain_checkout
    monkeypatch.delenv("MODELCI_APP_TOKEN", raising=False)
    with FakeGitHub(tmp_path / "gh", "o/r") as fake:
        code, outputs, summary = _open_pr(repo, fake, monkeypatch, "--ci-workflow", "pr.yml")
        (pull,) = fake.state.pulls
    assert code == 0
    assert (pull["user"], pull["opened_with"]) == (BOT, "workflow")
    head = _remote_head(remote)
    assert (outputs["ci"], outputs["head-sha"]) == ("dispatch", head)
    assert f"`pr.yml` was started with `workflow_dispatch` on commit `{head[:12]}`" in pull["body"]
    assert "workflow_dispatch" in summary
    # The PR opened with GITHUB_TOKEN starts nothing; the dispatch starts pr.yml for PR #1.
    assert started_runs(tmp_path / "gh") == [
        StartedRun("workflow_dispatch", "modelci/retrain", None, "pr.yml", {"pr-number": "1"})
    ]


def test_open_pr_with_neither_says_no_ci_runs_in_the_body_and_summary(
    retrain_checkout: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.workflows.fake_github import started_runs

    repo, _ = retrain_checkout
    monkeypatch.delenv("MODELCI_APP_TOKEN", raising=False)
    with FakeGitHub(tmp_path / "gh", "o/r") as fake:
        code, outputs, summary = _open_pr(repo, fake, monkeypatch)
        (pull,) = fake.state.pulls
    assert code == 0
    assert outputs["ci"] == "none"
    for text in (pull["body"], summary):
        assert "**No CI runs on this pull request.**" in text
        assert "MODELCI_APP_CLIENT_ID" in text
        assert "ci-workflow" in text
    assert "::warning::open-pr: no CI runs on pull request #1" in capsys.readouterr().out
    assert started_runs(tmp_path / "gh") == []


def test_open_pr_refuses_a_ci_workflow_that_is_not_a_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["monitor", "open-pr", "--repo", "o/r", "--branch", "b", "--title", "t", "--body-file",
         str(tmp_path / "report.md"), "--ci-workflow", "../evil.yml"]
    )  # fmt: skip
    assert code == 1
    assert "--ci-workflow: expected a workflow file name such as pr.yml" in capsys.readouterr().err


def test_a_refused_dispatch_names_the_permission_and_the_trigger(tmp_path: Path) -> None:
    from modelci.drift.retrain_ci import dispatch

    with FakeGitHub(tmp_path, "other/repo") as fake:  # it serves another repository: 404
        github = GitHub(fake.url, "o/r", FAKE_GITHUB_TOKEN)
        with pytest.raises(GitHubError, match=r"HTTP 404.*needs `actions: write`.*pr-number"):
            dispatch(github, "pr.yml", "modelci/retrain", 3)


def _token_forms(token: str) -> list[str]:
    """The token and every base64 form git or an error line could carry it in."""
    import base64

    forms = [token]
    for raw in (token, f"x-access-token:{token}"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(raw.encode()).decode()
            forms += [encoded, encoded.rstrip("=")]
    return forms


@pytest.fixture
def recording_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that logs its argv, and on ``push`` the extraheader git sees."""
    import shutil

    real = shutil.which("git")
    assert real is not None
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "git-argv.log"
    script = folder / "git"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        'case " $* " in *" push "*)\n'
        f'  "{real}" config --get http.https://github.com/.extraheader > "{log}.header";;\n'
        "esac\n"
        f'exec "{real}" "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    return log


def test_open_pr_gives_git_the_token_in_its_environment_never_in_argv_or_output(
    retrain_checkout: tuple[Path, Path],
    recording_git: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 19.7: a failed push printed the basic header; argv is readable in /proc."""
    import base64

    from tests.conftest import run

    repo, _ = retrain_checkout
    monkeypatch.delenv("MODELCI_APP_TOKEN", raising=False)
    with FakeGitHub(tmp_path / "gh", "o/r") as fake:
        code, outputs, summary = _open_pr(repo, fake, monkeypatch)
    assert code == 0
    basic = base64.b64encode(f"x-access-token:{FAKE_GITHUB_TOKEN}".encode()).decode()
    header = recording_git.with_name(recording_git.name + ".header")
    assert header.read_text("utf-8").strip() == f"AUTHORIZATION: basic {basic}"
    first = capsys.readouterr()
    # The push fails: its error line names the command, and still carries no token.
    run(["git", "remote", "set-url", "origin", str(tmp_path / "missing.git")], repo)
    (repo / "data.csv").write_text("a\n3\n", encoding="utf-8")
    with FakeGitHub(tmp_path / "gh2", "o/r") as fake:
        monkeypatch.setenv("MODELCI_GITHUB_API_URL", fake.url)
        failed = main(
            ["monitor", "open-pr", "--repo", "o/r", "--branch", "modelci/retrain", "--title", "t",
             "--body-file", str(repo.parent / "report.md")]
        )  # fmt: skip
    second = capsys.readouterr()
    assert failed == 1
    assert "open-pr: git push --force failed (exit 128)" in second.err
    seen = [
        first.out, first.err, second.out, second.err, summary, json.dumps(outputs),
        recording_git.read_text("utf-8"), (repo.parent / "outputs").read_text("utf-8"),
    ]  # fmt: skip
    assert "push --force origin modelci/retrain" in seen[6]
    for text in seen:
        for form in _token_forms(FAKE_GITHUB_TOKEN):
            assert form not in text
