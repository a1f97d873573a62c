"""What dvc.yaml declares, as the report, the gate and check-lock read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelci.ci.state import parse_plot, plot_names, read_state
from modelci.dvcfiles import Declared, PlotDecl, parse_declared, vars_of
from modelci.statefiles import WorkTreeSource, merge_metrics, read_declared
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

DVC_YAML = """
vars:
  - {out_dir: results}
stages:
  fit:
    cmd: python fit.py
    params:
      - mytrain
      - mytrain.yaml: [lr, opt.beta]
      - other.yaml:
    outs:
      - models/model.skops
      - ${out_dir}/cache.bin
    metrics:
      - ${out_dir}/scores.json: {cache: false}
    plots:
      - ${out_dir}/curve.csv: {cache: false, x: step, y: loss, template: scatter}
      - ${missing.var}/x.csv
  loop:
    foreach: [a, b]
    do: {cmd: echo}
metrics: [extra/more.yaml]
plots:
  - roc_id:
      x: fpr
      y: {eval/roc.csv: tpr}
      template: simple
      title: ROC
"""


def declared_of(text: str) -> tuple[Declared, list[str]]:
    problems: list[str] = []
    raw = yaml.safe_load(text)
    return parse_declared(raw, {"out_dir": "results"}, problems, "dvc.yaml"), problems


def test_stage_and_top_level_declarations() -> None:
    declared, problems = declared_of(DVC_YAML)
    assert declared.metrics == ["results/scores.json", "extra/more.yaml"]
    assert declared.params == {
        "params.yaml": ("mytrain",),
        "mytrain.yaml": ("lr", "opt.beta"),
        "other.yaml": None,
    }
    plots = {plot.path: plot for plot in declared.plots}
    assert plots["results/curve.csv"] == PlotDecl("results/curve.csv", "scatter", "step", "loss")
    assert plots["eval/roc.csv"] == PlotDecl("eval/roc.csv", "curve", "fpr", "tpr", "ROC")
    assert declared.cached_outputs == ["models/model.skops", "results/cache.bin"]
    assert declared.git_outputs == ["results/scores.json", "results/curve.csv"]
    assert "dvc.yaml: '${missing.var}/x.csv': undefined variable 'missing.var', skipped" in problems
    assert "dvc.yaml: stage loop: foreach/matrix stages are not read" in problems


def test_this_repository_declares_its_own_files() -> None:
    declared = read_declared(WorkTreeSource(REPO_ROOT), [])
    assert declared.found
    assert declared.metrics == ["metrics.json"]
    assert "models/model.skops" in declared.cached_outputs
    assert "data/prepared/profile.json" in declared.git_outputs
    assert {plot.path for plot in declared.plots} >= {"plots/roc.csv", "plots/residuals.csv"}


def test_read_state_follows_dvc_yaml(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("mytrain: {C: 1}\n")
    (tmp_path / "mytrain.yaml").write_text("lr: 0.1\nopt: {beta: 0.9, gamma: 2}\nignored: 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results/scores.json").write_text(json.dumps({"acc": 0.9}))
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra/more.yaml").write_text("acc: 0.5\nf1: 0.7\n")
    (tmp_path / "results/curve.csv").write_text("step,loss\n1,0.5\n2,0.25\n")
    state = read_state(WorkTreeSource(tmp_path))
    assert state.metrics == {"acc": 0.9, "f1": 0.7, "extra/more.yaml:acc": 0.5}
    assert "extra/more.yaml: metric 'acc' also in another metrics file" in state.problems
    assert state.param_files["mytrain.yaml"] == {"lr": 0.1, "opt.beta": 0.9}
    assert set(state.plots) == {"curve"}
    assert state.plot_specs["curve"].kind == "scatter"


def test_merge_metrics_none_when_nothing_read() -> None:
    assert merge_metrics({"a.json": None}, []) is None


def test_plot_names_are_stems_unless_shared() -> None:
    assert plot_names(["plots/roc.csv", "a/b/roc.csv", "x/curve.tsv"]) == {
        "plots/roc.csv": "plots_roc",
        "a/b/roc.csv": "a_b_roc",
        "x/curve.tsv": "curve",
    }


def test_plot_files_json_and_tsv() -> None:
    table = parse_plot(b'[{"x": 1, "y": 2}, {"x": 3, "y": 4}]', "p.json", "p.json")
    assert table.columns == ("x", "y")
    assert table.rows == (("1", "2"), ("3", "4"))
    assert table.row_count == 2
    assert parse_plot(b"x\ty\n1\t2\n", "p.tsv", "p.tsv").rows == (("1", "2"),)
    from modelci.statefiles import StateError

    with pytest.raises(StateError, match="not valid JSON"):
        parse_plot(b"{nope", "p.json", "p.json")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stages:\n  train:\n    cmd: x\n    params: 5\n", "'params' is not a list"),
        ("vars: 1\nstages:\n  train:\n    cmd: x\n", None),
    ],
)
def test_malformed_entries_of_an_untrusted_dvc_yaml_are_problems_not_crashes(
    text: str, problem: str | None
) -> None:
    problems: list[str] = []
    raw = yaml.safe_load(text)
    declared = parse_declared(raw, vars_of(raw, lambda _path: {}), problems, "dvc.yaml")
    assert declared.found
    if problem is not None:
        assert any(problem in p for p in problems), problems


def test_metrics_and_plots_are_cached_unless_declared_otherwise() -> None:
    """DVC caches metrics and plots by default too: only cache: false leaves them to git."""
    raw = yaml.safe_load(
        "stages:\n  s:\n    cmd: x\n    metrics: [m.json, {g.json: {cache: false}}]\n"
    )
    declared = parse_declared(raw, {}, [], "dvc.yaml")
    assert {o.path: o.cache for o in declared.outs} == {"m.json": True, "g.json": False}
