"""deploy/monitoring: the generated rules pass promtool's checks and unit tests (every alert
firing and not firing), the operator manifests carry the same rules and select the Service, the
dashboard reads series that exist, and the SLO sections fail clearly on bad values."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.cli import main
from modelci.config import SloParams, load_params, parse_params
from modelci.errors import ConfigError
from modelci.monitor.alert_rules import OPERATOR_FILE, RULES_FILE, expected_files, rule_groups
from tests.conftest import REPO_ROOT
from tests.unit.test_serving_deploy import K8S, render

pytestmark = pytest.mark.unit

MONITORING = REPO_ROOT / "deploy" / "monitoring"
TEST_FILES = ("rules.test.yml", "rules.drift.test.yml")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package prometheus; make system-deps)")
    return found


def run_promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_committed_rules_are_what_the_params_produce(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["monitor", "alert-rules", "--params", str(REPO_ROOT / "params.yaml"), "--out",
                 str(MONITORING), "--check"]) == 0  # fmt: skip
    assert "up to date" in capsys.readouterr().out


def test_stale_rules_are_refused_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("slo: {max_error_ratio: 0.2}\n", encoding="utf-8")
    for name, text in expected_files(SloParams()).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    before = (tmp_path / RULES_FILE).read_text(encoding="utf-8")
    assert (
        main(["monitor", "alert-rules", "--params", str(params), "--out", str(tmp_path), "--check"])
        != 0
    )
    error = capsys.readouterr().err
    assert RULES_FILE in error
    assert "out of date" in error
    assert (tmp_path / RULES_FILE).read_text(encoding="utf-8") == before  # nothing written
    assert main(["monitor", "alert-rules", "--params", str(params), "--out", str(tmp_path)]) == 0
    assert "> 0.2" in (tmp_path / RULES_FILE).read_text(encoding="utf-8")


def test_promtool_checks_the_rules_and_the_prometheusrule_spec(tmp_path: Path) -> None:
    done = run_promtool("check", "rules", RULES_FILE)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = yaml.safe_load((MONITORING / OPERATOR_FILE).read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(manifest["spec"]), encoding="utf-8")
    done = run_promtool("check", "rules", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    assert manifest["spec"] == yaml.safe_load((MONITORING / RULES_FILE).read_text("utf-8"))


def test_promtool_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", *TEST_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {
        rule["alert"]
        for group in rule_groups(SloParams())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for name in TEST_FILES:
        for case in yaml.safe_load((MONITORING / name).read_text("utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"


def test_the_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The promtool tests are sensitive to the SLOs: a laxer error ratio makes them fail."""
    lax = SloParams(max_error_ratio=0.05)
    for name, text in expected_files(lax).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    shutil.copy(MONITORING / "rules.test.yml", tmp_path)
    done = run_promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "ModelciHighErrorRatio" in done.stdout + done.stderr


def test_the_servicemonitor_selects_the_service_port() -> None:
    monitor = yaml.safe_load((MONITORING / "kubernetes" / "servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    service = next(doc for doc in render(K8S / "base") if doc["kind"] == "Service")
    labels = service["metadata"]["labels"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert labels.get(key) == value
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    job = labels[monitor["spec"]["jobLabel"]]
    assert re.fullmatch(".*modelci.*", job), 'the alert rules\' up{job=~".*modelci.*"}'
    kustomization = yaml.safe_load((MONITORING / "kubernetes" / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {"servicemonitor.yaml", "prometheusrule.yaml"}


def _exported_metric_names() -> set[str]:
    """The series names a serving app's registry exports (each family's sample names)."""
    from modelci.model_source import ModelInfo
    from modelci.serving.app import ServedModel, ServingApp
    from tests.unit.test_input_monitor import SCHEMA, _Stub

    app = ServingApp(ServedModel(ModelInfo("m", "file", "ab" * 32, "1"), SCHEMA, _Stub(), "stub"))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in app.metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def _referenced(expr: str) -> set[str]:
    return set(re.findall(r"\b(modelci[_:][a-z0-9_:]+)", expr))


def test_rules_and_dashboard_read_series_that_exist() -> None:
    groups = rule_groups(SloParams())["groups"]
    records = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    exported = _exported_metric_names()
    dashboard = json.loads((MONITORING / "dashboard.json").read_text("utf-8"))
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for expr in exprs:
        for name in _referenced(expr):
            known = records if ":" in name else exported
            assert name in known, f"{name} in {expr!r}"


def test_dashboard_thresholds_are_the_declared_slos() -> None:
    slo = load_params(REPO_ROOT / "params.yaml").slo
    dashboard = json.loads((MONITORING / "dashboard.json").read_text("utf-8"))
    lines = {}
    for panel in dashboard["panels"]:
        steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        for target in panel["targets"]:
            for step in steps:
                if step["value"] is not None:
                    lines[target["expr"].split("{")[0]] = step["value"]
    assert lines == {
        "modelci:http_errors:ratio_rate5m": slo.max_error_ratio,
        "modelci:http_latency_seconds:p99_5m": slo.max_p99_latency_seconds,
    }


def _params_with(section: str, values: dict[str, Any]) -> dict[str, Any]:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text("utf-8"))
    raw[section] = {**raw.get(section, {}), **values}
    return raw


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("slo", {"max_error_ratio": 1.5}, "slo.max_error_ratio"),
        ("slo", {"max_p99_latency_seconds": 0}, "slo.max_p99_latency_seconds"),
        ("slo", {"for_minutes": "soon"}, "slo.for_minutes"),
        ("slo", {"typo": 1}, "slo.typo: unknown key"),
        ("canary", {"interval_seconds": 600}, "interval_seconds (600) is longer than bake"),
        ("canary", {"challenger_selector": "track=canary"}, "canary.challenger_selector"),
        ("canary", {"challenger_selector": '{track="champion"}'}, "must differ"),
        ("canary", {"on_inconclusive": "maybe"}, "canary.on_inconclusive"),
    ],
)
def test_bad_slo_and_canary_values_name_file_and_key(
    section: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_params(_params_with(section, values), "params.yaml")
    assert str(caught.value).startswith("params.yaml: ")
    assert message in str(caught.value)
