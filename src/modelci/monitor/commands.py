"""``modelci monitor alert-rules``, ``canary`` and ``plan``: argparse only here; the work is
imported when a command runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelci.options import add_params


def cmd_alert_rules(args: argparse.Namespace) -> int:
    from modelci.config import SloParams, load_section
    from modelci.monitor.alert_rules import write_or_check

    slo = load_section(Path(args.params), "slo", SloParams)
    paths = write_or_check(slo, Path(args.out), args.check)
    word = "up to date" if args.check else "wrote"
    print(f"alert-rules: {word}: {', '.join(str(path) for path in paths)}")
    return 0


def _canary_params(args: argparse.Namespace) -> Any:
    """The ``canary:`` section with the command line's overrides, validated together."""
    from modelci.config import CanaryParams, load_section, validated

    canary = load_section(Path(args.params), "canary", CanaryParams)
    overrides = {
        key: value
        for key, value in (
            ("champion_selector", args.champion),
            ("challenger_selector", args.challenger),
            ("bake_seconds", args.bake_seconds),
            ("interval_seconds", args.interval_seconds),
        )
        if value is not None
    }
    return validated(
        CanaryParams, {**canary.model_dump(), **overrides}, f"{args.params} + command line"
    )


def cmd_canary(args: argparse.Namespace) -> int:
    from modelci.config import SloParams, load_section, load_service_params
    from modelci.fileio import write_json, write_text
    from modelci.github import write_outputs
    from modelci.monitor.canary import Prometheus, Verdict, run, summary_markdown

    slo = load_section(Path(args.params), "slo", SloParams)
    canary = _canary_params(args)
    prometheus = Prometheus(args.prometheus)

    def progress(verdict: Verdict) -> None:
        print(f"canary: {verdict.window_seconds:.0f} s: {verdict.decision} ({verdict.reason})")

    verdict = run(prometheus, slo, canary, progress=progress)
    record = verdict.to_dict()
    rolled_back = None
    if verdict.decision == "rollback" and args.apply:
        from modelci.registry.rollback import rollback

        done = rollback(load_service_params(Path(args.params)), reason=f"canary: {verdict.reason}")
        rolled_back = done.to_version.version if done.to_version else None
        record["rolled_back_to"] = rolled_back
        print(f"canary: @champion moved back to version {rolled_back}")
    out = Path(args.out)
    summary = summary_markdown(verdict)
    write_json(out / "canary.json", record)
    write_text(out / "canary.md", summary)
    write_outputs({"decision": verdict.decision, "rolled_back_to": str(rolled_back or "")}, summary)
    print(f"canary: {verdict.decision}: {verdict.reason} (numbers in {out / 'canary.json'})")
    return 0 if verdict.decision == "promote" else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from modelci.github import write_outputs
    from modelci.monitor.plan import github_outputs, plan, plan_summary

    matrix = plan(Path(args.root).resolve(), args.projects, args.window, args.labels)
    for entry in matrix["include"]:
        print(f"{entry['name']}: monitored as {entry['registered_model']} ({entry['window']})")
    write_outputs(github_outputs(matrix), plan_summary(matrix))
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def register(sub: Any) -> None:
    """Add alert-rules, canary and plan to the ``modelci monitor`` group."""
    p = sub.add_parser(
        "plan",
        help="which projects the scheduled monitor checks (a GitHub Actions matrix)",
        description="List the projects the monitor checks (every project of the repository, or "
        "those named by --projects), each with its own window and labels: {project} in --window "
        "and --labels is replaced by the project's name, and is required when several projects "
        "are checked. Writes matrix= (path, name, registered_model, window, labels, "
        "retrain_branch of each) and count= to $GITHUB_OUTPUT and a table to "
        "$GITHUB_STEP_SUMMARY when set.",
    )
    p.add_argument("--window", default="", metavar="URL", help="the window, with {project}")
    p.add_argument("--labels", default="", metavar="URL", help="its labels, with {project}")
    p.add_argument(
        "--projects",
        default="",
        metavar="NAMES",
        help="project names to check, comma or space separated (default: every project)",
    )
    p.add_argument(
        "--root", default=".", metavar="DIR", help="the repository's root (default: %(default)s)"
    )
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser(
        "alert-rules",
        help="write deploy/monitoring (alert rules, PrometheusRule, ServiceMonitor, dashboard)",
        description="Write the recording and alert rules of modelci serve (rules.yml), the same "
        "groups as a Prometheus-operator PrometheusRule, a ServiceMonitor and a Grafana dashboard "
        "with the SLO lines, from params.yaml's slo: section.",
    )
    add_params(p, "its slo: section")
    p.add_argument("--out", default="deploy/monitoring", metavar="DIR", help="(%(default)s)")
    p.add_argument("--check", action="store_true", help="write nothing; fail if out of date")
    p.set_defaults(handler=cmd_alert_rules)

    p = sub.add_parser(
        "canary",
        help="compare a challenger with the champion from Prometheus; promote or roll back",
        description="During a bake period, compare the challenger's and the champion's error "
        "ratio, p99 latency and prediction distribution from Prometheus (params.yaml slo: and "
        "canary:). Exits 0 to promote, 1 to roll back (3: no verdict, Prometheus unreachable); "
        "writes canary.json and canary.md.",
    )
    add_params(p, "its slo: and canary: sections")
    p.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    p.add_argument(
        "--champion",
        default=None,
        metavar="SELECTOR",
        help="label matchers of the champion's series (canary.champion_selector)",
    )
    p.add_argument(
        "--challenger",
        default=None,
        metavar="SELECTOR",
        help="label matchers of the challenger's series (canary.challenger_selector)",
    )
    p.add_argument(
        "--bake-seconds",
        type=_positive,
        default=None,
        metavar="S",
        help="how long to compare before promoting (canary.bake_seconds)",
    )
    p.add_argument(
        "--interval-seconds",
        type=_positive,
        default=None,
        metavar="S",
        help="seconds between checks; a failed check rolls back early (canary.interval_seconds)",
    )
    p.add_argument("--out", default=".modelci/canary", metavar="DIR", help="(%(default)s)")
    p.add_argument(
        "--apply",
        action="store_true",
        help="on roll back, move @champion back to @previous in the registry",
    )
    p.set_defaults(handler=cmd_canary)  # fmt: skip
