"""``modelci pr report``, ``gate``, ``check-lock``, ``repro``, and for several models
``merge-reports`` and ``gate-all``.

``register(sub)`` only builds argparse parsers; each handler imports what it needs (matplotlib for
the plots, the pipeline's metric directions) when it runs, so ``modelci --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelci.layout import DEFAULT_PATHS
from modelci.options import add_params

DEFAULT_REPORT_DIR = ".modelci/report"
DEFAULT_VERDICT = ".modelci/verdict.json"
DEFAULT_LOCK_CHECK = ".modelci/lock-check.json"


def _max_chars(text: str) -> int:
    from modelci.ci.report import GITHUB_COMMENT_LIMIT, MIN_MAX_CHARS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_MAX_CHARS <= value <= GITHUB_COMMENT_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_MAX_CHARS} and {GITHUB_COMMENT_LIMIT} (GitHub's comment limit)"
        )
    return value


def _relative(path: str) -> str:
    """A path as git sees it from the working directory (``git show REF:./path``)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return candidate.name
    return candidate.as_posix()


def _rules(args: argparse.Namespace, params: Any, problems: list[str] | None = None) -> Any:
    """The gate section (GateParams): ``--gate-file``, else the params' ``gate:`` section. When
    ``params`` is None, the reading problem that names the params file (e.g. invalid YAML) is
    the message."""
    from modelci.errors import ConfigError
    from modelci.judge.gate import load_gate, parse_gate

    if args.gate_file:
        return load_gate(Path(args.gate_file))
    if params is None:
        name = f" {_relative(args.params)}: "
        unreadable = [p for p in problems or () if name in p and "not found in" not in p]
        if unreadable:
            raise ConfigError(f"{unreadable[0]} (or pass --gate-file)")
        raise ConfigError(f"{args.params}: parameters file not found (or pass --gate-file)")
    return parse_gate(params, args.params)


def _compute_run(root: Path) -> dict[str, dict[str, Any]]:
    """The working tree's record of where the Dask engine's stages ran, if any (bounded read)."""
    from modelci.ci.report import compute_runs
    from modelci.layout import COMPUTE_RUN

    path = root / COMPUTE_RUN
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return compute_runs(handle.read(64 * 1024).decode("utf-8", errors="replace"))


def cmd_report(args: argparse.Namespace) -> int:
    from modelci.ci.data_diff import data_shift
    from modelci.ci.plots import PLOT_FORMATS, render_plots
    from modelci.ci.predictions import DvcOutputs
    from modelci.ci.report import build_report, dumps_json, render_markdown, to_json
    from modelci.ci.state import GitSource, read_state
    from modelci.fileio import write_text
    from modelci.judge.metrics import HIGHER_IS_BETTER
    from modelci.statefiles import StateError, WorkTreeSource

    root = Path.cwd()
    params_path = _relative(args.params)
    base = read_state(GitSource(args.base, root), params_path=params_path)
    if args.head:
        head = read_state(GitSource(args.head, root), params_path=params_path)
    else:
        worktree = WorkTreeSource(root)
        try:
            worktree.commit = GitSource("HEAD", root).commit
        except StateError:
            worktree.commit = ""
        head = read_state(worktree, params_path=params_path)
    gate = _rules(args, head.params, head.problems)
    outputs = DvcOutputs(root, head.commit) if args.head and head.commit else WorkTreeSource(root)
    comparison = _comparison(gate, root, base, head.params, head.lock, outputs)
    shift = data_shift(
        root,
        base_commit=base.commit,
        base_lock=base.lock,
        head_lock=head.lock,
        head_params=head.params,
        head_source=outputs,
    )
    report = build_report(
        base,
        head,
        gate,
        title=args.title,
        directions=HIGHER_IS_BETTER,
        allow_task_change=args.allow_task_change,
        comparison=comparison,
        shift=shift,
    )
    compute = (head.params or {}).get("compute")
    if not args.head and isinstance(compute, dict) and compute.get("engine") == "dask":
        report.compute = _compute_run(root)  # the stages that just ran here, on the cluster
    out = Path(args.out)
    plot_dir = out / "plots"
    if plot_dir.is_dir():
        for old in plot_dir.glob("*.png"):
            old.unlink()
    formats = PLOT_FORMATS if args.plots == "both" else (args.plots,)
    report.plots, plot_warnings = render_plots(base, head, plot_dir, formats)
    report.warnings.extend(plot_warnings)
    markdown, truncated = render_markdown(report, args.max_chars)
    info = {
        "file": "report.md",
        "chars": len(markdown),
        "truncated": truncated,
        "max_chars": args.max_chars,
    }
    write_text(out / "report.md", markdown)
    write_text(out / "report.json", dumps_json(to_json(report, info)) + "\n")
    print(
        f"report: {out / 'report.md'} ({len(markdown)} chars{', truncated' if truncated else ''}),"
        f" {out / 'report.json'}, {len(report.plots)} plots ({args.plots})"
    )
    print(f"report: base {base.label} -> PR {head.label}")
    sha = report.model.get("sha256")
    print(f"report: model {report.model['path']} sha256 {sha or 'not found'}")
    print(f"report: {report.verdict.summary()}")
    return 0


def _comparison(
    gate: Any, root: Path, base: Any, head_params: Any, head_lock: Any, worktree: Any
) -> Any:
    """The intervals of the gated metrics (``modelci.ci.predictions``); the PR's predictions from
    ``worktree`` (the working tree, or a commit's DVC outputs)."""
    from modelci.ci.predictions import compare_predictions
    from modelci.prediction_table import PREDICTIONS
    from modelci.statefiles import StateError

    try:
        head_data = worktree.read(PREDICTIONS)
    except StateError:
        head_data = None
    return compare_predictions(
        gate,
        root=root,
        base_commit=base.commit,
        base_params=base.params,
        base_lock=base.lock,
        head_data=head_data,
        head_params=head_params,
        head_lock=head_lock,
    )


def _optional(source: Any, path: str, parse: Any) -> Any:
    """``parse`` of ``path`` in ``source``, None when it is absent (StateError when unreadable)."""
    data = source.read(path)
    return parse(data, f"{source.label}: {path}") if data is not None else None


def _read_metrics(source: Any, paths: list[str], side: str) -> tuple[Any, str | None]:
    """The merged metrics of ``paths`` in ``source`` and the first problem (None when all read).

    On the PR side a missing file is a problem; on the base side it only means new metrics.
    """
    from modelci.statefiles import StateError, merge_metrics, parse_metrics

    files: dict[str, Any] = {}
    missing = []
    for path in paths:
        try:
            data = source.read(path)
        except StateError as error:
            return None, f"{path}: cannot read metrics: {error}"
        if data is None:
            missing.append(path)
            continue
        where = path if side == "PR" else f"base {source.label}: {path}"
        try:
            files[path] = parse_metrics(data, where)
        except StateError as error:
            return None, (f"{path}: cannot read metrics: {error}" if side == "PR" else str(error))
    if missing and side == "PR":
        return None, f"{missing[0]}: metrics file not found (run dvc repro first)"
    note = f"no {', '.join(missing)} at {source.label}: every metric is new" if missing else None
    return merge_metrics(files, []), note


def cmd_gate(args: argparse.Namespace) -> int:
    from modelci.ci.report import dumps_json
    from modelci.ci.state import SLICES, GitSource, RepoState, load_lock
    from modelci.dvcfiles import LOCK
    from modelci.errors import ConfigError
    from modelci.fileio import write_text
    from modelci.judge.comparison import Comparison
    from modelci.judge.gate import failed_verdict, judge, task_changes, verdict_lines
    from modelci.statefiles import (
        StateError,
        WorkTreeSource,
        load_yaml_mapping,
        read_declared,
        read_json_object,
    )

    root = Path.cwd()
    worktree = WorkTreeSource(root)
    params_rel = _relative(args.params) if args.params else None
    data = worktree.read(params_rel) if params_rel else None
    try:
        params = load_yaml_mapping(data, args.params) if data is not None else None
    except StateError as error:
        if not args.gate_file:
            raise ConfigError(str(error)) from None
        params = None
    gate = _rules(args, params)
    rules = gate.metrics
    # an absolute --metrics path stays absolute: WorkTreeSource joins it onto the root unchanged
    head_paths = [args.metrics] if args.metrics else read_declared(worktree, []).metrics
    base_info: dict[str, Any] = {"ref": None if args.no_base else args.base, "commit": None}
    verdict = None
    current, problem = (
        (None, "dvc.yaml declares no metrics files")
        if not head_paths
        else (_read_metrics(worktree, head_paths, "PR"))
    )
    if problem is not None:
        verdict = failed_verdict(rules, problem)
    baseline = None
    changes: list[str] = []
    comparison = Comparison()
    try:  # the PR's own dvc.lock (check-lock reports it when unreadable): only for pairing
        head_lock = _optional(worktree, LOCK, load_lock)
    except StateError:
        head_lock = None
    if verdict is None and not args.no_base:
        try:
            source = GitSource(args.base, root)
            base_info["commit"] = source.commit
            base_paths = (
                [_relative(args.metrics)] if args.metrics else read_declared(source, []).metrics
            )
            baseline, note = _read_metrics(source, base_paths, "base")
            if note is not None and baseline is None and not note.startswith("no "):
                raise StateError(note)
            if note is not None:
                base_info["note"] = note
            base = RepoState(label=source.label, commit=source.commit)
            if params_rel:
                base_params = source.read(params_rel)
                if base_params is not None:
                    base.params = load_yaml_mapping(base_params, "base")
                    changes = task_changes(base.params, params)
            if baseline is not None and not changes and not args.metrics:
                base.lock = _optional(source, LOCK, load_lock)
                comparison = _comparison(gate, root, base, params, head_lock, worktree)
        except StateError as error:
            verdict = failed_verdict(rules, f"unreadable base: {error}")
    if verdict is None:
        assert current is not None  # noqa: S101 - set whenever no failure verdict was made
        slices = _optional(worktree, SLICES, read_json_object) if gate.slices else None
        verdict = judge(
            gate,
            current,
            baseline,
            changes,
            args.allow_task_change,
            intervals=comparison.intervals,
            slices=slices,
        )
    lines = verdict_lines(verdict)
    lines[-1:-1] = [f"note: {note}" for note in comparison.notes]
    if "note" in base_info:
        lines.insert(0, f"note: {base_info['note']}")
    if args.no_base:
        lines.insert(0, "note: --no-base: every metric judged on absolute bounds only")
    print("\n".join(lines))
    payload = {
        **verdict.to_dict(),
        "base": base_info,
        "metrics_file": args.metrics or ", ".join(head_paths),
        "task_changes": changes,
        "statistics": comparison.to_dict(),
    }
    write_text(Path(args.out), dumps_json(payload) + "\n")
    return 0 if verdict.passed else 1


def cmd_check_lock(args: argparse.Namespace) -> int:
    from modelci.ci.lockcheck import (
        STALE_MESSAGE,
        GitTrackedOutputsError,
        StaleLockError,
        check_lock,
        git_tracked_message,
    )
    from modelci.ci.report import dumps_json
    from modelci.fileio import write_text
    from modelci.statefiles import StateError

    result = check_lock(Path.cwd(), args.model)
    write_text(Path(args.out), dumps_json(result.to_dict()) + "\n")
    if result.model_sha256:
        print(f"model: {result.model_path} sha256 {result.model_sha256}")
    if result.git_tracked_outputs:
        tracked = result.git_tracked_outputs
        details = [f"tracked by git: {name}" for name in tracked]
        raise GitTrackedOutputsError(git_tracked_message(tracked), details=details)
    if result.stale:
        details = [f"changed by dvc repro: {name}" for name in result.changed_files]
        details += result.problems + result.stage_changes
        raise StaleLockError(STALE_MESSAGE, details=details)
    if result.errors:
        raise StateError(result.errors[0], details=result.errors)
    print("check-lock: dvc.lock and tracked outputs match dvc repro")
    return 0


def _plan_results(args: argparse.Namespace) -> tuple[Any, Any]:
    from modelci.ci.merge import load_plan, read_results

    plan = load_plan(Path(args.plan))
    return plan, read_results(plan, Path(args.reports), args.prefix)


def cmd_merge_reports(args: argparse.Namespace) -> int:
    import shutil

    from modelci.ci.merge import REPORT_JSON, merge_reports, single_report_json
    from modelci.fileio import write_text

    plan, results = _plan_results(args)
    merged = merge_reports(plan, results, *([args.max_chars] if args.max_chars else []))
    out = Path(args.out)
    write_text(out / "report.md", merged.comment)
    write_text(out / "summary.md", merged.summary)
    single = single_report_json(plan, Path(args.reports), args.prefix)
    if single is not None:
        shutil.copyfile(single, out / REPORT_JSON)
    ran = sum(1 for project in plan if project.affected)
    print(
        f"merge-reports: {out / 'report.md'} ({len(merged.comment)} chars), {out / 'summary.md'}"
        f" ({len(merged.summary)} chars): {len(plan)} models, {ran} affected"
    )
    if merged.omitted:
        print(f"merge-reports: left to the job summary: {', '.join(merged.omitted)}")
    return 0


def cmd_gate_all(args: argparse.Namespace) -> int:
    from modelci.ci.merge import gate_lines

    plan, results = _plan_results(args)
    lines, passed = gate_lines(plan, results)
    print("\n".join(lines))
    return 0 if passed else 1


def _add_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", required=True, metavar="FILE", help="the JSON plan modelci affected printed"
    )
    parser.add_argument(
        "--reports",
        required=True,
        metavar="DIR",
        help="folder holding one report folder per affected model, named PREFIX + its name",
    )
    parser.add_argument(
        "--prefix",
        default="modelci-report-",
        help="name of each report folder before the model's name (default: %(default)s)",
    )


def cmd_repro(args: argparse.Namespace) -> int:
    from modelci.ci.repro import repro

    dvc_args = [a for a in args.dvc_args if a != "--"]
    return repro(Path.cwd(), dvc_args, Path(args.out), args.push_durations, print)


def cmd_matrix(args: argparse.Namespace) -> int:
    from modelci.ci.merge import matrix_outputs

    text = matrix_outputs(Path(args.plan))
    print(text, end="")
    if args.github_output:
        with Path(args.github_output).open("a", encoding="utf-8") as handle:
            handle.write(text)
    return 0


def _add_allow_task_change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-task-change",
        action="store_true",
        help="accept a changed data.task or data.target: judge absolute bounds only, "
        "no comparison with the base (default: the gate fails)",
    )


def register(sub: Any) -> None:
    """Add the report, gate and check-lock commands to the ``modelci pr`` group."""
    report = sub.add_parser(
        "report",
        help="compare metrics, params, data and plots with a base git ref (Markdown + JSON)",
        description="Build the pull-request report: base state read from git (no retraining), "
        "head state from the working tree (after dvc repro) or --head REF.",
    )
    report.add_argument("--base", required=True, metavar="REF", help="base git ref or commit")
    report.add_argument(
        "--head", metavar="REF", help="head git ref (default: the working tree after dvc repro)"
    )
    report.add_argument(
        "--out", default=DEFAULT_REPORT_DIR, metavar="DIR", help="output dir (default: %(default)s)"
    )
    add_params(report, "relative to the repository")
    report.add_argument(
        "--gate-file",
        metavar="FILE",
        help="gate rules file (default: the gate section of --params)",
    )
    report.add_argument("--title", help="pull-request title (untrusted, escaped)")
    report.add_argument(
        "--max-chars",
        type=_max_chars,
        default=60_000,
        metavar="N",
        help="upper bound on the Markdown size (default: %(default)s)",
    )
    report.add_argument(
        "--plots",
        choices=("mermaid", "png", "both"),
        default="mermaid",
        help="how plots are carried: mermaid charts and tables inside report.md (nothing to "
        "upload), PNG images in DIR/plots/ that the comment must upload to an image host, or "
        "both (default: %(default)s)",
    )
    _add_allow_task_change(report)
    report.set_defaults(handler=cmd_report)

    gate = sub.add_parser(
        "gate",
        help="judge metrics against the gate rules and a baseline (exit 0 pass, 1 fail)",
        description="Judge the metrics dvc.yaml declares against absolute bounds and the "
        "regression tolerated against the base ref's committed metrics. A changed data.task or "
        "data.target fails the gate unless --allow-task-change.",
    )
    gate.add_argument(
        "--base",
        default="HEAD",
        metavar="REF",
        help="git ref holding the baseline metrics (default: %(default)s)",
    )
    gate.add_argument(
        "--no-base",
        action="store_true",
        help="no baseline: judge absolute bounds only (metrics reported as new)",
    )
    gate.add_argument(
        "--metrics",
        metavar="FILE",
        help="current metrics, and the same path at --base (default: the metrics files dvc.yaml "
        "declares, else metrics.json)",
    )
    add_params(gate, "its gate: section holds the rules")
    gate.add_argument("--gate-file", metavar="FILE", help="gate rules file instead of --params")
    _add_allow_task_change(gate)
    gate.add_argument(
        "--out",
        default=DEFAULT_VERDICT,
        metavar="FILE",
        help="machine-readable verdict (default: %(default)s)",
    )
    gate.set_defaults(handler=cmd_gate)

    check = sub.add_parser(
        "check-lock",
        help="after dvc repro: fail if dvc.lock or tracked outputs differ from HEAD",
        description="Fail with 'stale dvc.lock: run dvc repro and commit' when dvc repro changed "
        "dvc.lock or a git-tracked output; print the sha256 of the model file.",
    )
    check.add_argument(
        "--model",
        default=DEFAULT_PATHS.model.as_posix(),
        metavar="FILE",
        help="model file whose sha256 is recorded (default: %(default)s)",
    )
    check.add_argument(
        "--out",
        default=DEFAULT_LOCK_CHECK,
        metavar="FILE",
        help="machine-readable result (default: %(default)s)",
    )
    check.set_defaults(handler=cmd_check_lock)

    merged = sub.add_parser(
        "merge-reports",
        help="several models: one comment (summary table + a section per model) from their reports",
        description="Merge the report folders of the plan's affected models into one comment: a "
        "summary table of every model and one collapsible section per model that ran, within the "
        "comment's size; what does not fit is named and left to the job summary (summary.md).",
    )
    _add_plan(merged)
    merged.add_argument(
        "--out", default=".modelci/merged", metavar="DIR", help="output dir (default: %(default)s)"
    )
    merged.add_argument(
        "--max-chars",
        type=_max_chars,
        metavar="N",
        help="bound on the comment once the comment job has defused it (default: 59400, what "
        "the comment job keeps less its footer)",
    )
    merged.set_defaults(handler=cmd_merge_reports)

    gate_all = sub.add_parser(
        "gate-all",
        help="several models: fail when any affected model's gate failed (one line per model)",
        description="Read every affected model's verdict.json; exit 1 when any failed or is "
        "missing, 0 otherwise (also when no model is affected).",
    )
    _add_plan(gate_all)
    gate_all.set_defaults(handler=cmd_gate_all)

    matrix = sub.add_parser(
        "matrix",
        help="several models: the plan's affected projects as GitHub Actions outputs",
        description='Print (and append to --github-output) matrix={"include": [...]} and '
        "count=N from a modelci affected plan.",
    )
    matrix.add_argument("--plan", required=True, metavar="FILE", help="modelci affected's JSON")
    matrix.add_argument(
        "--github-output", metavar="FILE", help="also append the lines here ($GITHUB_OUTPUT)"
    )
    matrix.set_defaults(handler=cmd_matrix)

    run = sub.add_parser(
        "repro",
        help="dvc repro, recording per stage: ran, restored from the run-cache (time saved), "
        "unchanged",
        description="Run dvc repro (arguments after -- are passed to it) and write which stages "
        "ran, were restored from DVC's run-cache (with the minutes their recorded duration "
        "saved) or were unchanged. Exits with dvc's exit code.",
    )
    run.add_argument(
        "--out",
        default=".modelci/report/stages.json",
        metavar="FILE",
        help="machine-readable stages (default: %(default)s)",
    )
    run.add_argument(
        "--push-durations",
        action="store_true",
        help="also record the durations of the stages that ran in the default DVC remote, for "
        "later runs that restore them (default: the local DVC cache only)",
    )
    run.add_argument("dvc_args", nargs=argparse.REMAINDER, help="arguments for dvc repro")
    run.set_defaults(handler=cmd_repro)


__all__ = ["register"]
