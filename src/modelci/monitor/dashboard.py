"""The Grafana dashboard of ``modelci serve`` (``deploy/monitoring/dashboard.json``): the request
SLOs with their threshold lines from ``slo:``, and the live input and prediction gauges, read
through the recording rules of :mod:`modelci.monitor.alert_rules`."""

from __future__ import annotations

from typing import Any

from modelci.config import SloParams

_JOB = '{job=~"$job"}'
_SOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The data source and the job(s) shown, picked at the top of the dashboard.
_VARIABLES = [
    {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
    {
        "name": "job",
        "type": "query",
        "label": "job",
        "datasource": _SOURCE,
        "query": {"query": "label_values(modelci_model_info, job)", "refId": "jobs"},
        "includeAll": True,
        "multi": True,
        "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    },
]


def _panel(
    number: int,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    place: tuple[int, int, int],
    threshold: float | None = None,
) -> dict[str, Any]:
    x, y, width = place
    defaults: dict[str, Any] = {"unit": unit}
    if threshold is not None:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": threshold}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": number,
        "type": "timeseries",
        "title": title,
        "datasource": _SOURCE,
        "gridPos": {"x": x, "y": y, "w": width, "h": 8},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(slo: SloParams) -> dict[str, Any]:
    panels = [
        ("Scored requests per second", [(f"modelci:http_requests:rate5m{_JOB}", "{{job}}")],
         "reqps", None),
        ("Error ratio (5xx) against the SLO",
         [(f"modelci:http_errors:ratio_rate5m{_JOB}", "{{job}}")], "percentunit",
         slo.max_error_ratio),
        ("p99 latency against the SLO",
         [(f"modelci:http_latency_seconds:p99_5m{_JOB}", "{{job}}")], "s",
         slo.max_p99_latency_seconds),
        ("Targets up", [('up{job=~"$job"}', "{{job}} {{instance}}")], "none", None),
        ("Input mean per feature (window)",
         [(f"modelci:input_mean:avg{_JOB}", "{{job}} {{feature}}")], "none", None),
        ("Null ratio per feature (window)",
         [(f"modelci:input_null_ratio:avg{_JOB}", "{{job}} {{feature}}")], "percentunit", None),
        ("Category shares (window)",
         [('avg by (job, feature, category) (modelci_input_category_share{job=~"$job"})',
           "{{job}} {{feature}}={{category}}")], "percentunit", None),
        ("Unknown categories and schema problems per request",
         [(f"modelci:input_unknown_ratio:avg{_JOB}", "unknown {{job}} {{feature}}"),
          (f"modelci:input_violations:ratio_rate10m{_JOB}", "violations {{job}}")],
         "percentunit", None),
        ("Prediction: window mean score and class shares",
         [(f"modelci:prediction_mean:avg{_JOB}", "mean {{job}}"),
          ('avg by (job, label) (modelci_prediction_window_share{job=~"$job"})',
           "{{job}} class {{label}}")], "none", None),
        ("Schema problems by field and kind",
         [('sum by (job, field, problem) (rate(modelci_input_violations_total{job=~"$job"}[5m]))',
           "{{job}} {{field}} {{problem}}")], "short", None),
        ("Model version, readiness and reloads",
         [('max by (job, instance) (modelci_model_version{job=~"$job"})', "version {{instance}}"),
          ('min by (job, instance) (modelci_model_ready{job=~"$job"})', "ready {{instance}}"),
          ('sum by (job, outcome) (increase(modelci_model_reloads_total{job=~"$job"}[1h]))',
           "reloads {{outcome}}")], "none", None),
    ]  # fmt: skip
    built = []
    for index, (title, targets, unit, threshold) in enumerate(panels):
        last = index == len(panels) - 1
        place = (0 if last or index % 2 == 0 else 12, 8 * (index // 2), 24 if last else 12)
        built.append(_panel(index + 1, title, targets, unit, place, threshold))
    return {
        "title": "modelci serve",
        "uid": "modelci-serve",
        "description": "modelci serve: the SLOs of params.yaml's slo: section, the live input "
        "and prediction gauges (recording rules of deploy/monitoring/rules.yml).",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["modelci"],
        "templating": {"list": _VARIABLES},
        "annotations": {"list": []},
        "panels": built,
    }


def service_monitor(name: str = "modelci-serve") -> dict[str, Any]:
    """Scrape the Service labelled ``app.kubernetes.io/name: NAME`` on its ``http`` port; the job
    label is that name (which the rules' ``up{job=~".*modelci.*"}`` matches) and a pod's
    ``track`` label (stable / canary) is copied onto its series for ``modelci monitor canary``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "modelci"},
        },
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "podTargetLabels": ["track"],
            "endpoints": [
                {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
            ],
        },
    }
