"""The commands the monitor and retrain workflows call, so their YAML stays one line per step.

- ``fetch-window``: the current window of production data from a URL (http, https, file) or a
  DVC-tracked path (``dvc:PATH``, pulled from the repository's DVC remote);
- ``issue``: the one issue per model, from ``drift.json`` (``github.sync_issue``);
- ``refresh-data``: append a labelled window to ``data.source`` (a CSV or Parquet file);
- ``open-pr``: commit the working tree to a branch, push it, open or update the pull request, and
  see that it gets CI (``retrain_ci``).

Each writes ``key=value`` step outputs to ``$GITHUB_OUTPUT`` when it is set.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

from modelci.options import add_params

MAX_WINDOW_BYTES = 2_000_000_000
WINDOW_DEADLINE_S = 900.0
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


def _outputs(pairs: dict[str, str], summary: str | None = None) -> None:
    from modelci.github import write_outputs

    write_outputs(pairs, summary)


def _run(
    args: list[str], what: str, env: dict[str, str] | None = None, secrets: list[str] | None = None
) -> str:
    """``args`` run by ``modelci._proc``; an error names ``what`` and the tool's first words."""
    from modelci import _proc
    from modelci.errors import ModelCIError

    named = f"{what}: {' '.join(args[:3])}"
    done = _proc.run(
        args, named, error=ModelCIError, env=env, timeout=WINDOW_DEADLINE_S, secrets=secrets or []
    )
    return done.text


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def window_name(source: str) -> str:
    """The file name a fetched window keeps: the last part of its URL or DVC path, whose suffix
    tells ``modelci monitor drift`` the format."""
    import urllib.parse

    path = urllib.parse.urlsplit(source.removeprefix("dvc:")).path
    name = Path(urllib.parse.unquote(path)).name
    return name if name and not name.startswith(".") else "window.jsonl"


def fetch_window(
    source: str,
    out_dir: Path,
    max_bytes: int = MAX_WINDOW_BYTES,
    deadline: float = WINDOW_DEADLINE_S,
) -> Path:
    """Copy the window at ``source`` into ``out_dir`` (atomically); returns the file written.

    An http(s) URL is fetched by ``modelci.drift.fetch.download`` (https, same-origin redirects,
    public addresses, one deadline, streamed under ``max_bytes``)."""
    import urllib.parse
    from urllib.request import url2pathname

    from modelci.errors import DataError
    from modelci.fileio import write_atomic

    out = out_dir / window_name(source)
    if source.startswith("dvc:"):
        path = Path(source.removeprefix("dvc:"))
        _run(["dvc", "pull", "--force", str(path)], f"fetch-window {source}")
        if not path.is_file():
            raise DataError(f"{source}: dvc pull did not produce the file {path}")
        write_atomic(out, lambda tmp: _copy(path, tmp))
        return out
    if not source.startswith(("https://", "http://", "file://")):
        raise DataError(f"--source: expected an http(s):// or file:// URL or dvc:PATH: {source!r}")

    def download(tmp: Path) -> None:
        # imported here: this module is loaded by every `modelci` command
        from modelci.drift.fetch import download

        download(source, tmp, max_bytes, deadline)

    if source.startswith("file://"):
        path = Path(url2pathname(urllib.parse.urlsplit(source).path))
        if not path.is_file():
            raise DataError(f"{source}: cannot fetch the window: {path} is not a file")
        if path.stat().st_size > max_bytes:
            raise DataError(f"{source}: window larger than {max_bytes} bytes")
        write_atomic(out, lambda tmp: _copy(path, tmp))
        return out
    write_atomic(out, download)
    return out


def cmd_fetch_window(args: argparse.Namespace) -> int:
    out = fetch_window(args.source, Path(args.out))
    print(f"fetch-window: {args.source} -> {out} ({out.stat().st_size} bytes)")
    _outputs({"path": str(out)})
    return 0


def _model_name(params: Path) -> str:
    from modelci.config import TrackingParams, load_section

    return load_section(params, "tracking", TrackingParams).model_name


def cmd_monitor_issue(args: argparse.Namespace) -> int:
    from modelci.drift.github import sync_issue
    from modelci.errors import DataError
    from modelci.github_api import GitHub, api_url

    drift_json = Path(args.drift)
    try:
        result = json.loads(drift_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{drift_json}: not found: the drift check failed before writing its report"
        ) from None
    except ValueError as error:
        raise DataError(f"{drift_json}: not JSON: {error}") from None
    report_path = drift_json.with_name("drift.md")
    report = report_path.read_text(encoding="utf-8") if report_path.is_file() else ""
    alert = bool(result.get("drift")) or bool(result.get("degraded"))
    kind = "drift" if result.get("drift") else "degraded performance"
    model = args.model or _model_name(Path(args.params))
    title = f"Production monitoring: {kind} detected for {model}"
    github = GitHub(api_url(), args.repo, os.environ.get("GITHUB_TOKEN", ""))
    action, number = sync_issue(github, model, alert, title, report, args.run_url or "")
    print(f"monitor-issue: {action}" + (f" issue #{number}" if number else " (no open issue)"))
    retrain = alert and bool(result.get("retrain"))
    _outputs(
        {
            "action": action,
            "issue": str(number or ""),
            "alert": str(alert).lower(),
            "retrain": str(retrain).lower(),
        }
    )
    return 0


def refresh_data(params_path: Path, window: Path, labels: Path) -> tuple[Path, int, int]:
    """Append the labelled rows of ``window`` to ``data.source``; (source, added, total)."""
    import pandas as pd

    from modelci.config import load_data_params
    from modelci.drift.inputs import read_window
    from modelci.drift.realized import join_labels
    from modelci.errors import ConfigError, DataError
    from modelci.fileio import write_atomic

    data = load_data_params(params_path)
    source = Path(data.source)
    if source.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(
            f"{params_path}: data.source: {data.source!r} is not a CSV or Parquet file, so a "
            "labelled window cannot be appended to it (refresh: repull re-runs the pipeline on it)"
        )
    if not source.is_file():
        raise DataError(f"{source}: data file not found (data.source in {params_path})")
    joined = join_labels(read_window(window), read_window(labels), data.target, str(labels))
    if joined.empty:
        raise DataError(f"{labels}: no label matches a request id of the window {window}")
    columns = list(data.columns)
    missing = [column for column in columns if column not in joined.columns]
    if missing:
        raise DataError(f"{window}: column(s) {', '.join(missing)} missing")
    csv = source.suffix.lower() == ".csv"
    existing = pd.read_csv(source) if csv else pd.read_parquet(source)
    combined = pd.concat([existing, joined[columns]], ignore_index=True)

    def write(tmp: Path) -> None:
        if csv:
            combined.to_csv(tmp, index=False)
        else:
            combined.to_parquet(tmp, index=False)

    write_atomic(source, write)
    if source.with_name(source.name + ".dvc").is_file():
        _run(["dvc", "add", str(source)], "refresh-data")
    return source, len(joined), len(combined)


def cmd_refresh_data(args: argparse.Namespace) -> int:
    source, added, total = refresh_data(Path(args.params), Path(args.window), Path(args.labels))
    print(f"refresh-data: appended {added} labelled rows to {source} ({total} rows now)")
    _outputs({"added": str(added)})
    return 0


def auth_env(token: str) -> dict[str, str]:
    """Environment that makes git authenticate to github.com with ``token``: one more entry of
    git's ``GIT_CONFIG_COUNT`` list (``http.https://github.com/.extraheader``), so the token is
    never in git's argv (``/proc/*/cmdline``) nor in an error line that repeats the command."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    index = int(os.environ.get("GIT_CONFIG_COUNT", "0") or "0")
    return {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": "http.https://github.com/.extraheader",
        f"GIT_CONFIG_VALUE_{index}": f"AUTHORIZATION: basic {basic}",
    }


def cmd_open_pr(args: argparse.Namespace) -> int:
    from modelci.drift import retrain_ci
    from modelci.drift.github import open_or_update_pr
    from modelci.github_api import GitHub, api_url

    github_token = os.environ.get("GITHUB_TOKEN", "")
    ci = retrain_ci.plan(os.environ.get("MODELCI_APP_TOKEN", ""), github_token, args.ci_workflow)
    # The same token pushes and opens the pull request: GitHub starts the PR's workflows only
    # when neither event comes from GITHUB_TOKEN.
    github = GitHub(api_url(), args.repo, ci.token)
    body = Path(args.body_file).read_text(encoding="utf-8")
    _run(["git", "checkout", "-B", args.branch], "open-pr")
    _run(["git", "add", "-A", "--", *args.paths], "open-pr")
    if not _run(["git", "diff", "--cached", "--name-only"], "open-pr").strip():
        print("open-pr: nothing changed: no pull request")
        _outputs({"action": "none", "number": "", "ci": "none", "head-sha": ""})
        return 0
    # The bot's identity unless the environment sets one (GIT_AUTHOR_*/GIT_COMMITTER_* win).
    bot = ["-c", "user.name=github-actions[bot]", "-c", f"user.email={BOT_EMAIL}"]
    _run(["git", *bot, "commit", "-q", "-m", args.title], "open-pr")
    head = _run(["git", "rev-parse", "HEAD"], "open-pr").strip()
    _run(
        ["git", "push", "--force", "origin", args.branch],
        "open-pr",
        env=auth_env(ci.token),
        secrets=[ci.token],
    )
    body = retrain_ci.with_note(body, ci, head)
    action, number = open_or_update_pr(github, args.branch, args.base, args.title, body)
    print(f"open-pr: {action} pull request #{number} from {args.branch} into {args.base}")
    if ci.mode == "dispatch":
        dispatcher = GitHub(api_url(), args.repo, github_token)
        retrain_ci.dispatch(dispatcher, ci.workflow, args.branch, number)
        print(f"open-pr: dispatched {ci.workflow} on {args.branch} ({head[:12]})")
    elif ci.mode == "none":
        print(f"::warning::open-pr: no CI runs on pull request #{number} (see {retrain_ci.SETUP})")
    summary = f"### Retraining pull request #{number}\n\n{retrain_ci.note(ci, head)}\n"
    _outputs({"action": action, "number": str(number), "ci": ci.mode, "head-sha": head}, summary)
    return 0


def register(sub: Any) -> None:
    """Add fetch-window, issue, refresh-data and open-pr to the ``modelci monitor`` group."""
    fetch = sub.add_parser(
        "fetch-window",
        help="fetch the current window of production data (URL or dvc:PATH)",
        description="Copy the current window of production data to --out, from an http(s):// "
        "or file:// URL, or from dvc:PATH (a DVC-tracked path pulled from the DVC remote).",
    )
    fetch.add_argument(
        "--source", required=True, metavar="URL", help="http(s)://, file:// or dvc:PATH"
    )
    fetch.add_argument("--out", required=True, metavar="DIR", help="directory to write it into")
    fetch.set_defaults(handler=cmd_fetch_window)

    issue = sub.add_parser(
        "issue",
        help="open, update or close the model's monitoring issue from drift.json",
        description="Keep one GitHub issue per model: opened when drift.json reports drift or "
        "degraded performance, its body replaced on later drifted runs, closed when a run is "
        "clean. Token: $GITHUB_TOKEN; API: $GITHUB_API_URL.",
    )
    issue.add_argument("--drift", required=True, metavar="FILE", help="drift.json")
    issue.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the repository")
    issue.add_argument(
        "--model", metavar="NAME", help="the model's name (default: tracking.model_name)"
    )
    add_params(issue, "its tracking: section")
    issue.add_argument("--run-url", metavar="URL", help="link to this run, shown in the issue")
    issue.set_defaults(handler=cmd_monitor_issue)

    refresh = sub.add_parser(
        "refresh-data",
        help="append a labelled window of production data to data.source",
        description="Join --labels to --window by request_id and append the declared columns "
        "to data.source (a CSV or Parquet file), so dvc repro retrains on it.",
    )
    refresh.add_argument(
        "--window", required=True, metavar="PATH", help="the production window (a prediction log)"
    )
    refresh.add_argument(
        "--labels",
        required=True,
        metavar="FILE",
        help="ground truth by row_id (or request_id), one to one",
    )
    add_params(refresh, "its data: section")
    refresh.set_defaults(handler=cmd_refresh_data)

    pr = sub.add_parser(
        "open-pr",
        help="commit PATHS to a branch, push it and open (or update) a pull request",
        description="Commit the given paths on --branch, push it to origin and open a pull "
        "request into --base whose body is --body-file (or update its body). A GitHub App token "
        "in $MODELCI_APP_TOKEN pushes and opens it, so GitHub runs its CI; else $GITHUB_TOKEN "
        "does, and --ci-workflow is dispatched on the branch (docs/monitoring.md).",
    )
    pr.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the repository")
    pr.add_argument("--branch", required=True, help="the branch to commit to and push")
    pr.add_argument("--base", default="main", help="the branch to merge into (%(default)s)")
    pr.add_argument("--title", required=True, help="the pull request's title")
    pr.add_argument(
        "--body-file", required=True, metavar="FILE", help="the pull request's body (Markdown)"
    )
    pr.add_argument(
        "--ci-workflow",
        default="",
        metavar="FILE",
        help="pull-request workflow (e.g. pr.yml) to start with workflow_dispatch on the branch "
        "when no App token ($MODELCI_APP_TOKEN) opens the PR; without either, the PR body and "
        "the job summary say that no CI runs on it",
    )
    pr.add_argument(
        "paths", nargs="*", default=["."], metavar="PATH", help="what to commit (default: all)"
    )
    pr.set_defaults(handler=cmd_open_pr)
