"""`modelci pr report`, `pr gate` and `pr check-lock` end to end in temporary git repos.

Most cases use a small hand-written model repository (metrics, params, dvc.lock, data profile and
plot data committed with git, a fake model file) so they run in seconds; one slow case runs the
real pipeline twice and reports on it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.cli import main
from tests.conftest import run
from tests.integration.conftest import commit_baseline

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"
GATE = {
    "metrics": {
        "accuracy": {"min": 0.75, "tolerance": 0.02},
        "log_loss": {"max": 0.55, "tolerance": 0.03, "higher_is_better": False},
    }
}
BASE_METRICS = {"accuracy": 0.80, "log_loss": 0.45, "recall": 0.60}


def assert_valid_png(path: Path) -> tuple[int, int]:
    """Signature, then every chunk's CRC; returns (width, height) from IHDR."""
    data = path.read_bytes()
    assert data.startswith(PNG), path
    position, size = 8, None
    chunks = []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        chunks.append(kind)
        position += 12 + length
    assert chunks[0] == b"IHDR"
    assert chunks[-1] == b"IEND"
    assert size is not None
    return size


def write_state(
    repo: Path,
    metrics: dict[str, Any] | None = None,
    learning_rate: float = 0.05,
    train_rows: int = 1000,
    model: bytes = b"model-v1",
    shift: float = 0.0,
) -> None:
    """Write the files a pipeline run leaves behind, consistent with each other."""
    (repo / "models").mkdir(exist_ok=True)
    (repo / "models/model.skops").write_bytes(model)
    model_md5 = hashlib.md5(model, usedforsecurity=False).hexdigest()
    params = {"train": {"estimator_params": {"learning_rate": learning_rate}}, "gate": GATE}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "metrics.json").write_text(json.dumps(metrics or BASE_METRICS, indent=2))
    data_md5 = hashlib.md5(str(train_rows).encode(), usedforsecurity=False).hexdigest()
    lock = {
        "schema": "2.0",
        "stages": {
            "prepare": {
                "cmd": "modelci prepare",
                "deps": [{"path": "data/raw.csv", "md5": data_md5}],
                "outs": [{"path": "data/prepared/train.parquet", "md5": data_md5}],
            },
            "train": {
                "cmd": "modelci train",
                "deps": [{"path": "data/prepared/train.parquet", "md5": data_md5}],
                "params": {"params.yaml": {"train": params["train"]}},
                "outs": [{"path": "models/model.skops", "md5": model_md5}],
            },
        },
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    profile = {
        "rows": {"train": train_rows, "test": 250, "total": train_rows + 250},
        "columns": {"age": "float", "gender": "category", "survived": "int"},
    }
    (repo / "data/prepared").mkdir(parents=True, exist_ok=True)
    (repo / "data/prepared/profile.json").write_text(json.dumps(profile))
    (repo / "plots").mkdir(exist_ok=True)
    roc = [(0, 0), (0.1, 0.5 + shift), (0.4, 0.8), (1, 1)]
    (repo / "plots/roc.csv").write_text("fpr,tpr\n" + "".join(f"{x},{y}\n" for x, y in roc))
    pr = [(1, 0.3), (0.6, 0.7 + shift), (0, 1)]
    (repo / "plots/precision_recall.csv").write_text(
        "recall,precision\n" + "".join(f"{x},{y}\n" for x, y in pr)
    )
    pairs = [(1, 1)] * 40 + [(0, 0)] * 50 + [(1, 0)] * 6 + [(0, 1)] * (4 if shift else 8)
    (repo / "plots/confusion.csv").write_text(
        "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs)
    )


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model repository with one commit on main (the base)."""
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q", "-b", "main"], root)
    (root / ".gitignore").write_text("/models/\n/.modelci/\n")
    write_state(root)
    commit(root, "base")
    return root


def modelci(repo: Path, *args: str) -> Any:
    return run(["modelci", *args], repo, check=False)


def test_report_end_to_end_improvement(repo: Path) -> None:
    run(["git", "checkout", "-q", "-b", "feature"], repo)
    improved = {"accuracy": 0.83, "log_loss": 0.41, "f1": 0.7}
    write_state(repo, improved, learning_rate=0.1, train_rows=1100, model=b"v2", shift=0.1)
    commit(repo, "better model")
    title = "Tune lr `$(touch pwned)` ${{ github.token }} <b>@team</b>"
    done = modelci(repo, "pr", "report", "--base", "main", "--title", title)
    assert done.returncode == 0, done.stderr
    assert "gate passed (2 metrics checked)" in done.stdout
    out = repo / ".modelci/report"
    markdown = (out / "report.md").read_text()
    assert not (repo / "pwned").exists()
    assert "&lt;b&gt;@\u200bteam&lt;/b&gt;" in markdown
    assert "| train.estimator\\_params.learning\\_rate | 0.05 | 0.1 |" in markdown
    assert (
        "| **accuracy** | 0.8000 | 0.8300 | +0.0300 | - | - | ▲ improved | higher is better |"
        in markdown
    )
    assert "| **f1** | new | 0.7000 |" in markdown
    assert "| **recall** | 0.6000 | removed |" in markdown
    assert "| train | 1000 | 1100 | +100 |" in markdown
    assert "| train | out models/model.skops |" in markdown
    sha = hashlib.sha256(b"v2").hexdigest()
    assert f"sha256 `{sha}` (changed)" in markdown
    report = json.loads((out / "report.json").read_text())
    assert report["gate"]["passed"] is True
    assert report["model"]["sha256"] == sha
    assert report["base"]["ref"] == "main"
    assert report["title"] == title
    assert report["markdown"]["chars"] == len(markdown)
    # by default the plots travel inside the Markdown: nothing to upload
    assert markdown.count("```mermaid\nxychart-beta\n") == 2
    assert '    x-axis "False positive rate" 0 --> 1' in markdown
    assert "| **1** | 6 → 6 | **40 → 40** |" in markdown  # confusion: rows actual, base → PR
    assert "](plots/" not in markdown
    assert not (out / "plots").exists()
    assert [(p["name"], p["file"]) for p in report["plots"]] == [
        ("roc", ""),
        ("precision_recall", ""),
        ("confusion", ""),
    ]

    done = modelci(repo, "report", "--base", "main", "--plots", "both")
    assert done.returncode == 0, done.stderr
    markdown = (out / "report.md").read_text()
    assert markdown.count("```mermaid\n") == 2
    for name in ("roc", "precision_recall", "confusion"):
        assert f"(plots/{name}.png)" in markdown
        width, height = assert_valid_png(out / "plots" / f"{name}.png")
        assert width >= 400
        assert height >= 300
    report = json.loads((out / "report.json").read_text())
    assert sorted(p["file"] for p in report["plots"]) == [
        "plots/confusion.png",
        "plots/precision_recall.png",
        "plots/roc.png",
    ]


def test_report_between_two_refs_and_stale_plots_removed(repo: Path) -> None:
    out = repo / ".modelci/report/plots"
    out.mkdir(parents=True)
    (out / "old.png").write_bytes(PNG)
    run(["git", "checkout", "-q", "-b", "feature"], repo)
    write_state(repo, {"accuracy": 0.70, "log_loss": 0.45}, model=b"v3")
    commit(repo, "worse model")
    run(["git", "checkout", "-q", "main"], repo)  # the working tree is the base again
    done = modelci(repo, "pr", "report", "--base", "main", "--head", "feature", "--plots", "png")
    assert done.returncode == 0, done.stderr  # the report is built; the gate is its own check
    assert "```mermaid" not in (repo / ".modelci/report/report.md").read_text()
    assert "gate FAILED: accuracy" in done.stdout
    report = json.loads((repo / ".modelci/report/report.json").read_text())
    assert report["head"]["ref"] == "feature"
    assert report["model"]["sha256"] is None  # not in git: DVC-tracked
    assert report["model"]["changed"] is True
    assert not (out / "old.png").exists()
    assert {p.name for p in out.iterdir()} == {"roc.png", "precision_recall.png", "confusion.png"}


def test_report_errors(repo: Path) -> None:
    done = modelci(repo, "pr", "report", "--base", "no-such-branch")
    assert done.returncode == 1
    assert "cannot read base 'no-such-branch': unknown git ref" in done.stderr
    done = modelci(repo, "pr", "report", "--base", "main", "--max-chars", "10")
    assert done.returncode == 2
    assert "--max-chars: must be between 1000 and 65536" in done.stderr
    done = modelci(repo, "pr", "report", "--base", "main", "--gate-file", "nope.yaml")
    assert done.returncode == 2
    assert "nope.yaml: gate file not found" in done.stderr


def test_gate_passes_against_head_after_repro(repo: Path) -> None:
    write_state(repo, {"accuracy": 0.79, "log_loss": 0.46})
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS    accuracy: 0.7900 (base 0.8000, delta -0.0100;")
    assert "regressed by 0.0100, within the tolerance 0.0200" in lines[0]
    assert lines[-1] == "gate passed (2 metrics checked)"
    verdict = json.loads((repo / ".modelci/verdict.json").read_text())
    assert verdict["passed"] is True
    assert verdict["base"]["ref"] == "HEAD"


def test_gate_fails_on_regression_beyond_tolerance(repo: Path) -> None:
    write_state(repo, {"accuracy": 0.77, "log_loss": 0.45})
    done = modelci(repo, "pr", "gate", "--base", "main", "--out", "out/verdict.json")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("FAIL    accuracy: 0.7700")
    assert "gate FAILED: accuracy: regressed by 0.0300 against the baseline 0.8000" in done.stdout
    verdict = json.loads((repo / "out/verdict.json").read_text())
    assert verdict["failures"] == [
        "accuracy: regressed by 0.0300 against the baseline 0.8000 (0.7700), "
        "beyond the tolerance 0.0200"
    ]


def test_gate_failure_paths(repo: Path) -> None:
    (repo / "metrics.json").unlink()
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert "gate FAILED: metrics.json: metrics file not found (run dvc repro first)" in done.stdout
    assert json.loads((repo / ".modelci/verdict.json").read_text())["passed"] is False

    (repo / "metrics.json").write_text('{"accuracy": NaN, "log_loss": 0.4}')
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert "accuracy: value is NaN" in done.stdout

    (repo / "metrics.json").write_text('{"log_loss": 0.4}')
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert "accuracy: required metric is missing from the metrics file" in done.stdout

    (repo / "metrics.json").write_text("{not json")
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert "metrics.json: cannot read metrics: metrics.json: not valid JSON" in done.stdout

    write_state(repo)
    done = modelci(repo, "pr", "gate", "--base", "v9.9")
    assert done.returncode == 1
    assert "gate FAILED: unreadable base: cannot read base 'v9.9': unknown git ref" in done.stdout

    done = modelci(repo, "pr", "gate", "--params", "missing.yaml")
    assert done.returncode == 2
    assert "missing.yaml: parameters file not found (or pass --gate-file)" in done.stderr


def test_gate_unreadable_base_metrics_and_no_baseline(repo: Path) -> None:
    (repo / "metrics.json").write_text("[1, 2]")
    commit(repo, "broken metrics")
    write_state(repo)
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert "unreadable base: base HEAD" in done.stdout
    assert "metrics.json: expected a JSON object" in done.stdout

    (repo / "metrics.json").unlink()
    commit(repo, "no metrics at base")
    write_state(repo, {"accuracy": 0.5, "log_loss": 0.4})
    done = modelci(repo, "pr", "gate")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("note: no metrics.json at HEAD")
    assert "FAIL    accuracy: 0.5000 (new, no baseline;" in done.stdout

    write_state(repo, {"accuracy": 0.9, "log_loss": 0.4})
    done = modelci(repo, "pr", "gate", "--no-base")
    assert done.returncode == 0
    assert "note: --no-base: every metric judged on absolute bounds only" in done.stdout
    assert "new: no baseline, judged on absolute bounds only" in done.stdout


def test_gate_with_gate_file_outside_git(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("metrics:\n  rmse: {max: 3.0, higher_is_better: false}\n")
    (tmp_path / "metrics.json").write_text('{"rmse": 2.5}')
    done = modelci(tmp_path, "gate", "--gate-file", "gate.yaml")
    assert done.returncode == 1
    assert "is not inside a git repository" in done.stdout
    done = modelci(tmp_path, "gate", "--gate-file", "gate.yaml", "--no-base")
    assert done.returncode == 0, done.stdout
    assert "PASS    rmse: 2.5000" in done.stdout


def test_check_lock_clean_and_stale(repo: Path) -> None:
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 0, done.stderr
    sha = hashlib.sha256(b"model-v1").hexdigest()
    assert f"model: models/model.skops sha256 {sha}" in done.stdout
    assert json.loads((repo / ".modelci/lock-check.json").read_text())["model_sha256"] == sha

    # what `dvc repro` would do after a param change that was committed without re-running
    write_state(repo, {"accuracy": 0.81, "log_loss": 0.44}, learning_rate=0.2, model=b"model-v2")
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "modelci pr check-lock: error: stale dvc.lock: run dvc repro and commit" in done.stderr
    assert "changed by dvc repro: dvc.lock" in done.stderr
    assert "changed by dvc repro: metrics.json" in done.stderr
    assert "stage train: out models/model.skops changed" in done.stderr
    assert "stage train: param params.yaml.train.estimator_params.learning_rate changed" in (
        done.stderr
    )
    assert hashlib.sha256(b"model-v2").hexdigest() in done.stdout
    result = json.loads((repo / ".modelci/lock-check.json").read_text())
    assert result["stale"] is True
    assert result["message"] == "stale dvc.lock: run dvc repro and commit"


def test_check_lock_untracked_output_model_mismatch_and_missing(repo: Path) -> None:
    (repo / "plots/new.csv").write_text("a\n1\n")
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "changed by dvc repro: plots/new.csv" in done.stderr
    (repo / "plots/new.csv").unlink()

    (repo / "models/model.skops").write_bytes(b"tampered")
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "models/model.skops (md5 " in done.stderr
    assert "does not match dvc.lock" in done.stderr

    (repo / "models/model.skops").unlink()
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "models/model.skops: model file not found: run dvc repro (or dvc pull)" in done.stderr

    (repo / "dvc.lock").unlink()
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "dvc.lock: not found" in done.stderr


def test_check_lock_refuses_a_dvc_added_file_committed_to_git(repo: Path) -> None:
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data/houses.csv").write_text("size,price\n1,2\n")
    (repo / "data/houses.csv.dvc").write_text("outs:\n- md5: abc\n  path: houses.csv\n")
    commit(repo, "data in git by mistake")
    done = modelci(repo, "pr", "check-lock")
    assert done.returncode == 1
    assert "error: DVC outputs tracked by git: data/houses.csv: DVC caches them" in done.stderr
    run(["git", "rm", "-q", "--cached", "data/houses.csv"], repo)
    (repo / "data/.gitignore").write_text("/houses.csv\n")
    commit(repo, "untracked")
    assert modelci(repo, "pr", "check-lock").returncode == 0


def test_check_lock_uncommitted_lock(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q", "-b", "main"], root)
    (root / "README").write_text("x")
    commit(root, "first")
    write_state(root)
    done = modelci(root, "check-lock")
    assert done.returncode == 1
    assert "dvc.lock is not committed" in done.stderr


def test_commands_in_process(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert main(["pr", "gate", "--out", "v.json"]) == 0
    assert "gate passed" in capsys.readouterr().out
    assert main(["pr", "report", "--base", "HEAD", "--max-chars", "1000"]) == 0
    assert len((repo / ".modelci/report/report.md").read_text()) <= 1000
    assert main(["pr", "check-lock"]) == 0


def test_gate_and_report_params_errors(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    (repo / "params.yaml").write_text("gate: [unclosed\n")
    assert main(["pr", "gate"]) == 2
    assert "params.yaml: not valid YAML" in capsys.readouterr().err
    (repo / "params.yaml").write_text("gate:\n  metrics:\n    accuracy: {minimum: 0.7}\n")
    assert main(["pr", "gate"]) == 2
    assert "params.yaml: gate.metrics.accuracy.minimum: unknown key" in capsys.readouterr().err
    (repo / "params.yaml").write_text("gate: [unclosed\n")
    assert main(["pr", "report", "--base", "HEAD"]) == 2
    err = capsys.readouterr().err
    assert "working tree: params.yaml: not valid YAML" in err
    assert "not found" not in err
    (repo / "params.yaml").unlink()
    assert main(["pr", "report", "--base", "HEAD"]) == 2
    err = capsys.readouterr().err
    assert "params.yaml: parameters file not found (or pass --gate-file)" in err


@pytest.mark.slow
def test_real_pipeline_report_gate_and_lock(
    pipeline_repo: Path, rerun_repo: Path, tmp_path: Path
) -> None:
    base = Path(shutil.copytree(pipeline_repo, tmp_path / "base", symlinks=True))
    commit_baseline(base)
    assert modelci(base, "pr", "check-lock").returncode == 0
    # the same base with max_iter changed and the pipeline reproduced (a shared copy)
    repo = Path(shutil.copytree(rerun_repo, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((repo / "params.yaml").read_text())

    stale = modelci(repo, "pr", "check-lock")
    assert stale.returncode == 1
    assert "stale dvc.lock: run dvc repro and commit" in stale.stderr
    assert "stage train: param params.yaml.train.estimator_params.max_iter changed" in stale.stderr

    done = modelci(repo, "pr", "report", "--base", "HEAD")
    assert done.returncode == 0, done.stderr
    report = json.loads((repo / ".modelci/report/report.json").read_text())
    assert [p["key"] for p in report["params"]] == ["train.estimator_params.max_iter"]
    assert {row["name"] for row in report["metrics"]} >= {"accuracy", "roc_auc", "log_loss"}
    assert all(row["base"] is not None for row in report["metrics"])
    assert report["model"]["changed"] is True
    assert [plot["name"] for plot in report["plots"]] == ["roc", "precision_recall", "confusion"]
    assert all(plot["chart"].startswith("```mermaid\n") for plot in report["plots"][:2])
    assert len(report["plots"][2]["matrices"]) == 2  # base and PR

    gate = modelci(repo, "pr", "gate")
    verdict = json.loads((repo / ".modelci/verdict.json").read_text())
    assert gate.returncode == (0 if verdict["passed"] else 1)
    assert verdict["passed"] == report["gate"]["passed"]  # report and gate agree
    metric_lines = [line for line in gate.stdout.splitlines() if line.split()[1:2] == ["roc_auc:"]]
    assert len(metric_lines) == 1
    assert metric_lines[0].startswith(("PASS    roc_auc", "FAIL    roc_auc"))

    # the base's predictions came from the DVC cache: paired intervals, the same in both
    statistics = report["statistics"]
    assert statistics["paired"] is True
    assert set(statistics["intervals"]) == set(params["gate"]["metrics"])
    for name, interval in statistics["intervals"].items():
        assert interval["method"] == "paired bootstrap"
        assert interval["low"] <= interval["delta"] <= interval["high"]
        row = next(row for row in report["metrics"] if row["name"] == name)
        assert interval["delta"] == pytest.approx(row["delta"], abs=1e-6)  # metrics.json rounds
    assert verdict["statistics"] == statistics
    markdown = (repo / ".modelci/report/report.md").read_text()
    assert "| CI of delta | significant |" in markdown
    assert "### Slices" in markdown
    assert "| gender = female |" in markdown

    # without the base's predictions in the cache (and no remote): point comparisons, said so
    shutil.rmtree(repo / ".dvc/cache")
    assert modelci(repo, "pr", "report", "--base", "HEAD").returncode == 0
    fallback = json.loads((repo / ".modelci/report/report.json").read_text())["statistics"]
    assert fallback["intervals"] == {}
    assert "not in the DVC cache or remote" in fallback["notes"][0]
    assert "point comparisons only" in fallback["notes"][0]
    commit(repo, "fewer iterations")
    assert modelci(repo, "pr", "check-lock").returncode == 0
