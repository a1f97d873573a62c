"""``modelci registry`` (register, promote, rollback, status) and ``modelci release``
(reviewed, image, publish, deploy).

Light on purpose: argparse only at import time; a handler imports MLflow only to write (reads
from a server use its REST API). Every command reads ``MLFLOW_TRACKING_URI`` (default:
``sqlite:///mlflow.db``, which ``status`` never creates), appends its outputs to
``$GITHUB_OUTPUT`` and a Markdown summary to ``$GITHUB_STEP_SUMMARY`` when set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from modelci.deploy.names import DESCRIPTIONS as TARGET_HELP
from modelci.layout import DEFAULT_PATHS
from modelci.options import add_params


def _params(args: argparse.Namespace) -> Any:
    from modelci.config import load_service_params

    return load_service_params(Path(args.params))


def _emit(pairs: dict[str, str], summary: str | None = None) -> None:
    from modelci.github import write_outputs

    write_outputs(pairs, summary)


def _version_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1: {text!r}")
    return value


def _sha_arg(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError("expected a 64-character hex sha256")
    return value


def _optional_sha(text: str) -> str | None:
    return _sha_arg(text) if text.strip() else None


DEPLOY_TARGETS = tuple(TARGET_HELP)


def _target_arg(text: str) -> str:
    """A deploy target name, or "" for registry.deploy_target (what an unset input passes)."""
    if text and text not in DEPLOY_TARGETS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(DEPLOY_TARGETS)})"
        )
    return text


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def cmd_register(args: argparse.Namespace) -> int:
    from modelci.registry.register import register, summary_markdown

    paths = DEFAULT_PATHS._replace(model=Path(args.model), test=Path(args.test))
    report = Path(args.pr_report) if args.pr_report else None
    if report is not None and not report.exists() and args.pr_report_optional:
        report = None
    done = register(_params(args), paths, args.expect_sha256, report)
    v = done.version
    word = "registered" if done.created else "already registered"
    print(f"register: {word} version {v.version} (commit {v.commit[:12]}, sha256 {v.sha256[:12]})")
    _emit(
        {"version": str(v.version), "sha256": v.sha256, "created": str(done.created).lower()},
        summary_markdown(done),
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from modelci.registry.promote import promote, summary_markdown

    params = _params(args)
    result = promote(params, args.version, Path(args.test), args.expect_sha256)
    for line in result.verdict_lines:
        print(f"  {line}")
    after = result.champion_after
    if result.promoted:
        print(f"promote: version {result.challenger.version} is @{params.registry.champion_alias}")
    elif result.passed:
        print(
            f"promote: version {result.challenger.version} passed the gate; a newer version "
            f"({after.version if after else 'none'}) holds @{params.registry.champion_alias}"
        )
    else:
        print(
            f"promote: version {result.challenger.version} NOT promoted (gate rejected it); "
            f"@{params.registry.champion_alias} stays at {after.version if after else 'none'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", "utf-8")
    _emit(
        {
            "promoted": str(result.promoted).lower(),
            "gate_passed": str(result.passed).lower(),
            "champion": str(after.version if after else ""),
            "version": str(result.challenger.version),
        },
        summary_markdown(result, params.registry.champion_alias),
    )
    return 1 if args.strict and not result.promoted else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from modelci.registry.rollback import rollback, summary_markdown

    params = _params(args)
    done = rollback(params, args.to, args.reason, args.actor, force=args.force)
    to = done.to_version.version if done.to_version else None
    alias = params.registry.champion_alias
    forced = f" (FORCED: gate {done.to_version.gate})" if done.to_version and args.force else ""
    print(
        f"rollback: @{alias} moved from version {done.from_version.version} to {to}{forced} "
        f"(by {done.actor}: {done.reason})"
    )
    _emit(
        {"champion": str(to or ""), "from": str(done.from_version.version)},
        summary_markdown(done, alias),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from modelci.registry.status import render, status

    state = status(_params(args), limit=args.limit)
    print(json.dumps(state, indent=2) if args.json else render(state))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from modelci.registry.deploy import DeployFailedError, deploy, summary_markdown

    params = _params(args)
    try:
        result = deploy(
            params,
            args.version,
            args.target or None,
            args.image or None,
            args.smoke_url or os.environ.get("MODELCI_SMOKE_URL") or None,
            Path(args.test),
            args.smoke_attempts,
        )
    except DeployFailedError as failure:
        _emit(
            {
                "deployed": "false",
                "smoke": "failed",
                "rolled_back_to": str(failure.result.rolled_back_to or ""),
            },
            summary_markdown(failure.result),
        )
        raise
    for note in result.notes:
        print(f"deploy: {note}")
    _emit(
        {"deployed": str(result.deployed).lower(), "smoke": result.smoke, "target": result.target},
        summary_markdown(result),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", "utf-8")
    return 0


def cmd_release_reviewed(args: argparse.Namespace) -> int:
    from modelci.fileio import write_json
    from modelci.registry.release import (
        ReleaseError,
        find_reviewed_report,
        missing_report_message,
        reviewed_summary,
    )

    api = os.environ.get("MODELCI_GITHUB_API_URL") or os.environ.get(
        "GITHUB_API_URL", "https://api.github.com"
    )
    token = os.environ.get("GH_TOKEN", "")
    found = find_reviewed_report(
        api, args.repo, args.commit, token, args.artifact, args.workflow, args.project or None
    )
    required = args.require == "true"
    summary = reviewed_summary(found, args.workflow, args.commit, required)
    if found is None:
        message = missing_report_message(args.workflow, args.commit)
        _emit({"found": "false", "sha256": ""}, summary)
        if required:
            raise ReleaseError(f"{message} (set require-report: false to release without one)")
        print(f"release-reviewed: {message}: the reproduced model is used")
        return 0
    out = Path(args.out)
    write_json(out / "report.json", found)
    sha = found["model"]["sha256"]
    print(f"release-reviewed: PR #{found['pr_number']} reviewed model sha256 {sha}")
    _emit({"found": "true", "sha256": sha, "pr_number": str(found["pr_number"])}, summary)
    return 0


def _pin_build_args() -> dict[str, str]:
    """``MODEL_SHA256`` and ``ONNX_SHA256`` of the model and export the image bakes in, so its
    server refuses other bytes at start (the Dockerfile turns them into MODELCI_*_SHA256)."""
    from modelci.registry.core import sha256_hex
    from modelci.serving.exported import export_sha256

    model = DEFAULT_PATHS.model
    if not model.is_file():
        return {}
    sha256 = sha256_hex(model.read_bytes())
    onnx = export_sha256(DEFAULT_PATHS.onnx, sha256)
    return {"MODEL_SHA256": sha256, **({"ONNX_SHA256": onnx} if onnx else {})}


def _variant_problem(dockerfile: Path, build_args: dict[str, str]) -> str | None:
    """Why the image would refuse to start: the model has no verified ONNX export, and the
    Dockerfile (one with ``SERVE_VARIANT``, as ``init`` writes it) builds its ONNX-only variant;
    None otherwise (older Dockerfiles keep the fallback in their only image)."""
    if "MODEL_SHA256" not in build_args or "ONNX_SHA256" in build_args:
        return None
    declared = re.search(r'^ARG SERVE_VARIANT="(\w*)"', dockerfile.read_text("utf-8"), re.M)
    if declared is None or build_args.get("SERVE_VARIANT", declared[1]) != "onnx":
        return None
    return (
        f"{DEFAULT_PATHS.model} has no verified ONNX export in {DEFAULT_PATHS.onnx}/, so the "
        f"onnx variant of {dockerfile} would refuse to start: build the scikit-learn variant "
        '(--build-arg SERVE_VARIANT=sklearn, or ARG SERVE_VARIANT="sklearn" in the Dockerfile; '
        "docs/deploy.md)"
    )


def cmd_release_image(args: argparse.Namespace) -> int:
    from modelci.deploy.names import IMAGE_TARGETS
    from modelci.registry.release import build_image, section_summary

    target = args.target or _params(args).registry.deploy_target
    skipped = None
    if target not in IMAGE_TARGETS and not args.always:
        skipped = f"deploy target {target!r} needs no image: none was built"
    elif not Path(args.file).is_file():
        skipped = f"{args.file} not found: no image was built"
    if skipped is not None:
        print(f"release-image: {skipped}")
        _emit({"image": "", "digest": ""}, section_summary("Image", skipped))
        return 0
    build_args = {**_pin_build_args(), **dict(args.build_arg)}
    problem = _variant_problem(Path(args.file), build_args)
    if problem is not None:
        from modelci.registry.release import ReleaseError

        raise ReleaseError(problem)
    ref = build_image(args.image, args.tag, Path(args.context), Path(args.file), build_args)
    print(f"release-image: pushed {ref}")
    _emit(
        {"image": ref, "digest": ref.split("@", 1)[1]}, section_summary("Image", f"pushed `{ref}`")
    )
    return 0


def cmd_release_publish(args: argparse.Namespace) -> int:
    from modelci.registry.core import open_registry
    from modelci.registry.release import (
        publish_release,
        release_tag,
        section_summary,
        write_release,
    )

    params = _params(args)
    tag = release_tag(args.version, args.tag_prefix)
    reg = open_registry(params)
    version = reg.get(args.version)
    deploy_info = (
        {"target": args.deploy_target, "smoke": args.smoke} if args.deploy_target else None
    )
    out = Path(args.out)
    files = write_release(reg, version, out, args.image or None, deploy_info)
    if args.no_publish:
        print(f"release-publish: wrote {out} for {tag} (not published)")
        return 0
    message = publish_release(
        tag, f"{reg.name} {tag}", out / "notes.md", files, args.target or version.commit
    )
    print(f"release-publish: {message}")
    _emit({"tag": tag}, section_summary("Release", message))
    return 0


REGISTRY_URI = "The registry is $MLFLOW_TRACKING_URI (a server; without it, ./mlflow.db)."


def _command(
    sub: Any, name: str, summary: str, description: str, registry: bool = True
) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (in ``modelci --help``) and its description
    (which names where the registry is, for the commands that use one)."""
    where = f" {REGISTRY_URI}" if registry else ""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {description}{where}"
    )
    add_params(parser, "tracking.model_name and the registry section")
    return parser


def register(sub: Any) -> None:
    """Add register, promote, rollback and status to the ``modelci registry`` group."""
    p = _command(
        sub,
        "register",
        "register models/model.skops (idempotent per commit)",
        "Creates one version of tracking.model_name for the current git commit, tagged with "
        "its lineage (commit and its state, data hashes from dvc.lock, params digest, metrics, "
        "model sha256, PR report). Registering the same commit and file again returns the "
        "existing version; another file for a registered commit is refused.",
    )
    p.add_argument(
        "--model", default=DEFAULT_PATHS.model.as_posix(), help="model file (%(default)s)"
    )
    p.add_argument(
        "--test",
        default=DEFAULT_PATHS.test.as_posix(),
        help="test set whose rows give the logged model's signature, when no MLflow run logged "
        "the model yet (%(default)s)",
    )
    p.add_argument(
        "--expect-sha256",
        type=_optional_sha,
        default=None,
        metavar="SHA256",
        help="refuse unless the model file has this sha256 (the reviewed one)",
    )
    p.add_argument(
        "--pr-report",
        default="",
        metavar="FILE",
        help="the PR's report JSON: its model sha256 must match; recorded as a tag",
    )
    p.add_argument(
        "--pr-report-optional",
        action="store_true",
        help="ignore --pr-report when the file does not exist",
    )
    p.set_defaults(handler=cmd_register)

    p = _command(
        sub,
        "promote",
        "gate a version against @champion and promote it",
        "Downloads the challenger and the champion, verifies both against their registered "
        "sha256, scores both on the current test set and applies the gate's rules with the "
        "champion as the baseline. The verdict is tagged on the version (modelci.gate: passed "
        "or rejected); @champion moves only when it passed. Exit 0 either way unless --strict.",
    )
    p.add_argument(
        "--version",
        type=_version_arg,
        default=None,
        help="version to promote (default: the one registered for HEAD)",
    )
    p.add_argument(
        "--test",
        default=DEFAULT_PATHS.test.as_posix(),
        help="current test set both models are scored on (%(default)s)",
    )
    p.add_argument(
        "--expect-sha256",
        type=_optional_sha,
        default=None,
        metavar="SHA256",
        help="refuse unless the version's model has this sha256 (the reviewed one)",
    )
    p.add_argument("--json", default="", metavar="FILE", help="write the result as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when not promoted")
    p.set_defaults(handler=cmd_promote)

    p = _command(
        sub,
        "rollback",
        "move @champion back to @previous or --to VERSION",
        "Versions newer than the target are tagged rolled_back, who, why and when are recorded "
        "in tags, and the target's model file is verified first. A version the gate rejected "
        "(or never evaluated) is refused unless --force; forced, it is tagged gate 'forced' and "
        "its rejection stays recorded.",
    )
    p.add_argument(
        "--to",
        type=_version_arg,
        default=None,
        metavar="VERSION",
        help="version to make @champion (default: @previous)",
    )
    p.add_argument("--reason", default="", help="why (recorded in tags)")
    p.add_argument("--actor", default="", help="who (default: $GITHUB_ACTOR or the OS user)")
    p.add_argument(
        "--force",
        action="store_true",
        help="allow --to a version the gate rejected or never evaluated (give --reason)",
    )
    p.set_defaults(handler=cmd_rollback)

    p = _command(
        sub,
        "status",
        "show the champion, its lineage and metrics",
        "Read-only and fast: an MLflow server is read through its REST API (MLflow is not "
        "imported) and nothing is written; with no $MLFLOW_TRACKING_URI and no mlflow.db here "
        "it fails instead of creating one.",
        registry=False,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=10, help="versions listed (%(default)s)")
    p.set_defaults(handler=cmd_status)


def register_release(sub: Any) -> None:
    """Add reviewed, image, publish and deploy to the ``modelci release`` group, in the order
    the release workflow runs them."""
    p = _command(
        sub,
        "reviewed",
        "find the merged PR's report and its model sha256",
        "Asks the GitHub API ($GITHUB_API_URL, token $GH_TOKEN) for the pull request merged as "
        "--commit and the report artifact of its successful pull-request run, and writes it "
        "to --out/report.json: the model sha256 the release must match.",
        registry=False,
    )
    p.add_argument("--repo", required=True, help="OWNER/NAME")
    p.add_argument("--commit", required=True, help="the merge commit (40 hex digits)")
    p.add_argument("--artifact", default="modelci-report", help="report artifact name")
    p.add_argument(
        "--project",
        default="",
        help="one model of several (modelci projects): its report is read from its model job's "
        "artifact ARTIFACT-PROJECT (default: the merged artifact's report.json, one project)",
    )
    p.add_argument("--out", default=".modelci/reviewed", help="where report.json is written")
    p.add_argument(
        "--workflow",
        default="pr.yml",
        help="file name of the pull-request workflow whose run reviewed the model (%(default)s)",
    )
    p.add_argument(
        "--require",
        choices=("true", "false"),
        default="true",
        help="fail when no report is found (%(default)s; false is reported in the summary)",
    )
    p.set_defaults(handler=cmd_release_reviewed)

    p = _command(
        sub,
        "image",
        "docker buildx build --push; prints the digest",
        "Builds and pushes the serving image when the deploy target needs one (or --always), "
        "and writes image and digest to $GITHUB_OUTPUT.",
        registry=False,
    )
    p.add_argument("--image", required=True, help="e.g. ghcr.io/OWNER/REPO")
    p.add_argument("--tag", required=True, help="image tag, e.g. model-v3")
    p.add_argument("--context", default=".", help="build context (%(default)s)")
    p.add_argument("--file", default="Dockerfile", help="Dockerfile (%(default)s)")
    p.add_argument(
        "--build-arg",
        type=_build_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a build argument (repeatable)",
    )
    p.add_argument("--target", default="", help="deploy target (default registry.deploy_target)")
    p.add_argument("--always", action="store_true", help="build whatever the target")
    p.set_defaults(handler=cmd_release_image)

    p = _command(
        sub,
        "publish",
        "tag model-v<version> (PROJECT/v<version>) with card, metrics, lineage",
        "Writes the release notes, model card, metrics and lineage of a version to --out and "
        "publishes them as a GitHub release (gh release create) unless --no-publish.",
    )
    p.add_argument(
        "--version", type=_version_arg, required=True, help="registry version to release"
    )
    p.add_argument("--out", default="release", help="directory for the notes and files")
    p.add_argument("--image", default="", help="deployed image reference, recorded in the release")
    p.add_argument("--deploy-target", default="", help="recorded in the release")
    p.add_argument("--smoke", default="", help="smoke test result, recorded in the release")
    p.add_argument("--target", default="", help="commit to tag (default: the version's)")
    p.add_argument(
        "--tag-prefix",
        default="model-v",
        help="the tag is this and the version: %(default)s, or PROJECT/v for a project in a "
        "folder (modelci release plan's tag_prefix)",
    )
    p.add_argument("--no-publish", action="store_true", help="write the files only")
    p.set_defaults(handler=cmd_release_publish)

    p = _command(
        sub,
        "deploy",
        "deploy @champion, smoke-test it, roll back on failure",
        "Deploys the champion (or --version) to registry.deploy_target, then smoke-tests the "
        "endpoint (/ready, /model reporting the deployed sha256, a prediction); on a failed "
        "smoke test @champion is rolled back and the command fails.",
    )
    p.add_argument(
        "--version",
        type=_version_arg,
        default=None,
        help="version to deploy (default: @champion)",
    )
    p.add_argument(
        "--target",
        type=_target_arg,
        default="",
        metavar="{" + ",".join(DEPLOY_TARGETS) + "}",
        help="override registry.deploy_target (empty: keep it; the workflow passes its input): "
        + "; ".join(f"{name}: {text}" for name, text in TARGET_HELP.items()),
    )
    p.add_argument("--image", default="", help="image reference to deploy (name@sha256:...)")
    p.add_argument(
        "--smoke-url",
        default="",
        help="base URL of the deployed endpoint (default: $MODELCI_SMOKE_URL; none: no smoke test)",
    )
    p.add_argument(
        "--smoke-attempts",
        type=int,
        default=10,
        help="attempts at the smoke test before it counts as failed (%(default)s)",
    )
    p.add_argument(
        "--test",
        default=DEFAULT_PATHS.test.as_posix(),
        help="test set whose rows the smoke test sends (%(default)s)",
    )
    p.add_argument("--json", default="", metavar="FILE", help="write the result as JSON")
    p.set_defaults(handler=cmd_deploy)
