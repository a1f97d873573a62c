"""Release steps around the registry: the serving image and the ``model-v<version>`` release.

``build_image`` runs ``docker buildx build --push`` and reads the pushed digest from buildx's
metadata file; ``write_release`` writes the release notes and attachments (model card, metrics,
lineage, image digest) of a registry version; ``publish_release`` creates the git tag and the
GitHub release with ``gh`` (idempotent: an existing release gets its files replaced).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from modelci import _proc
from modelci.errors import ModelCIError
from modelci.fileio import write_json, write_text
from modelci.model_version import Version
from modelci.registry.core import Registry
from modelci.registry.status import describe

IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]{0,250}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ReleaseError(ModelCIError):
    """Building the image or publishing the release failed."""


def _tool(name: str) -> str:
    return _proc.tool(name, error=ReleaseError)


def _run(args: list[str], what: str, timeout: float = 1800) -> str:
    return _proc.run(args, what, error=ReleaseError, timeout=timeout).text


def build_image(
    image: str, tag: str, context: Path, dockerfile: Path, build_args: dict[str, str]
) -> str:
    """Build and push ``image:tag``; returns ``image@sha256:...`` (the digest that was pushed)."""
    image = image.lower()
    if not IMAGE_RE.match(image) or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", tag):
        raise ReleaseError(f"invalid image reference {image!r}:{tag!r}")
    if not dockerfile.is_file():
        raise ReleaseError(f"{dockerfile}: Dockerfile not found")
    login(image)
    with tempfile.TemporaryDirectory(prefix="modelci-build-") as tmp:
        metadata = Path(tmp) / "metadata.json"
        args = [_tool("docker"), "buildx", "build", "--push", "--metadata-file", str(metadata)]
        args += ["--file", str(dockerfile), "--tag", f"{image}:{tag}"]
        for key, value in sorted(build_args.items()):
            args += ["--build-arg", f"{key}={value}"]
        _run([*args, str(context)], "docker buildx build --push")
        try:
            digest = json.loads(metadata.read_text(encoding="utf-8"))["containerimage.digest"]
        except (OSError, ValueError, KeyError) as error:
            raise ReleaseError(f"docker buildx wrote no image digest ({error})") from None
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ReleaseError(f"docker buildx reported an invalid digest {str(digest)[:80]!r}")
    return f"{image}@{digest}"


def login(image: str) -> None:
    """``docker login`` to the image's registry with ``$REGISTRY_TOKEN`` on stdin (never argv)."""
    import os

    token = os.environ.get("REGISTRY_TOKEN", "")
    if not token:
        return
    host = image.split("/", 1)[0]
    user = os.environ.get("REGISTRY_USER") or os.environ.get("GITHUB_ACTOR") or "modelci"
    _proc.run(
        [_tool("docker"), "login", host, "--username", user, "--password-stdin"],
        f"docker login {host}",
        error=ReleaseError,
        stdin=token,
        timeout=120,
        secrets=[token],
    )


# ``model-v`` (the root project) or ``<project>/v`` (modelci release plan's tag_prefix): a project
# name is PROJECT_RE's, which git takes as one ref component unless it ends with ".lock" or ".".
TAG_PREFIX_RE = re.compile(r"^(model-v|[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/v)$")


def release_tag(version: int, prefix: str = "model-v") -> str:
    """The git tag of ``version``: ``model-v3``, or ``fraud/v3`` for a project in a folder."""
    folder = prefix.removesuffix("/v")
    if not TAG_PREFIX_RE.match(prefix) or folder.endswith((".lock", ".")) or ".." in folder:
        raise ReleaseError(f"invalid tag prefix {prefix!r} (expected model-v or PROJECT/v)")
    return f"{prefix}{version}"


def write_release(
    reg: Registry,
    version: Version,
    out: Path,
    image: str | None = None,
    deploy: dict[str, Any] | None = None,
) -> list[Path]:
    """Notes and attachments of the release of ``version`` into ``out``; returns the files."""
    from mlflow.artifacts import download_artifacts

    out.mkdir(parents=True, exist_ok=True)
    info = describe(version) or {}
    card = out / "model_card.md"
    try:
        with tempfile.TemporaryDirectory(prefix="modelci-card-") as tmp:
            local = reg.call(
                "downloading the model card",
                download_artifacts,
                run_id=version.run_id,
                artifact_path="reports/model_card.md",
                dst_path=tmp,
                tracking_uri=reg.uri,
            )
            write_text(card, Path(local).read_text(encoding="utf-8"))
    except ModelCIError:
        write_text(card, f"# Model card\n\nThe run of version {version.version} has none.\n")
    write_json(out / "metrics.json", info.get("metrics", {}))
    lineage = {
        "model": reg.name,
        "version": version.version,
        "run_id": version.run_id,
        "lineage": info.get("lineage", {}),
        "dvc_lock": info.get("dvc_lock", {}),
        "image": image,
        "deploy": deploy,
    }
    write_json(out / "lineage.json", lineage)
    notes = [
        f"# {reg.name} version {version.version}",
        "",
        f"- Git commit: `{version.commit}`",
        f"- Model file sha256: `{version.sha256}`",
        f"- Image: `{image}`" if image else "- Image: none built by this release",
    ]
    if deploy:
        notes.append(f"- Deploy target: `{deploy.get('target')}`, smoke test {deploy.get('smoke')}")
    notes += ["", "| metric | value |", "|---|---|"]
    notes += [f"| {k} | {v:.4f} |" for k, v in sorted(info.get("metrics", {}).items())]
    notes += ["", "Attached: model card, metrics and lineage (JSON)."]
    write_text(out / "notes.md", "\n".join(notes) + "\n")
    return [card, out / "metrics.json", out / "lineage.json"]


def publish_release(tag: str, title: str, notes: Path, files: list[Path], target: str) -> str:
    """Create (or update) the GitHub release ``tag`` at commit ``target`` with ``gh``."""
    gh = _tool("gh")
    exists = _proc.run([gh, "release", "view", tag], error=ReleaseError, timeout=120, check=False)
    paths = [str(path) for path in files]
    if exists.ok:
        _run([gh, "release", "upload", tag, "--clobber", *paths], "gh release upload")
        return f"release {tag} existed: attachments replaced"
    _run(
        [
            gh,
            "release",
            "create",
            tag,
            "--target",
            target,
            "--title",
            title,
            "--notes-file",
            str(notes),
            *paths,
        ],
        "gh release create",
    )
    return f"release {tag} created"


# -- the reviewed model: the PR report of the merged pull request ------------------------------

MAX_ARCHIVE = 20 * 1024 * 1024


WORKFLOW_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\.ya?ml$")
# A pull request's own run, or the workflow_dispatch run retrain.yml starts on its head (GitHub
# starts no pull_request run for a PR opened with GITHUB_TOKEN); only writers can dispatch.
REVIEWED_EVENTS = ("pull_request", "workflow_dispatch")


def _reviewed_run(run: Any, workflow: str, head: str) -> int | None:
    """The id of ``run`` if it is a successful pull-request run of ``workflow`` at ``head``.

    The API is asked for exactly these runs; each is checked again here, since a pull request can
    add a workflow file of its own (whose runs GitHub lists too) and a run can end in any state.
    """
    if not isinstance(run, dict):
        return None
    run_id = run.get("id")
    matches = (
        run.get("event") in REVIEWED_EVENTS
        and run.get("conclusion") == "success"
        and run.get("head_sha") == head
        and run.get("path") == f".github/workflows/{workflow}"
    )
    return run_id if matches and isinstance(run_id, int) else None


PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _artifact_members(
    github: Any, run_id: int, name: str, members: tuple[str, ...]
) -> dict[str, bytes] | None:
    """The named ``members`` of run ``run_id``'s artifact ``name`` (None when the run has no
    such artifact), read under ``modelci.safezip``'s bounds."""
    from modelci.safezip import ZipRefused, read_members

    listing, _ = github.request("GET", f"/actions/runs/{run_id}/artifacts?name={name}")
    for item in (listing or {}).get("artifacts", []):
        url = item.get("archive_download_url")
        if item.get("name", name) != name or item.get("expired") or not isinstance(url, str):
            continue
        archive = github.download(url, MAX_ARCHIVE)
        try:
            return read_members(archive, members)
        except ZipRefused as error:
            raise ReleaseError(f"report artifact of run {run_id} refused: {error}") from None
    return None


def _run_files(github: Any, run_id: int, artifact: str, project: str | None) -> dict[str, bytes]:
    """``report.json`` and ``metadata.json`` of one reviewed run: both from ``artifact`` (the
    merged report), or with ``project`` the report from that model job's own artifact
    ``<artifact>-<project>`` (the merged one holds no per-model report.json)."""
    if project is None:
        return _artifact_members(github, run_id, artifact, ("report.json", "metadata.json")) or {}
    meta = _artifact_members(github, run_id, artifact, ("metadata.json",))
    if not meta:
        return {}
    return {
        **meta,
        **(_artifact_members(github, run_id, f"{artifact}-{project}", ("report.json",)) or {}),
    }


def find_reviewed_report(
    api: str,
    repo: str,
    commit: str,
    token: str,
    artifact: str,
    workflow: str,
    project: str | None = None,
) -> dict[str, Any] | None:
    """The report of the successful run of ``workflow`` for the pull request merged as ``commit``.

    Returns ``{"pr_number", "head_sha", "model": {"sha256"}, "run_id"}`` or None when no pull
    request was merged as ``commit`` or no such run has a report artifact. Only a run of the named
    workflow file (``.github/workflows/<workflow>``), triggered by ``pull_request`` (or by the
    ``workflow_dispatch`` that retrain.yml makes on its pull request's head), concluded
    ``success``, at the merged pull request's head commit counts. The artifact is untrusted data:
    its size is bounded, only ``report.json`` and ``metadata.json`` are read, under
    ``modelci.safezip``'s bounds (an archive that breaks them raises ``ReleaseError``), and its PR
    number and head commit must match the pull request's. With ``project`` (one model of a
    repository with several), the report is that project's model job artifact's.
    """
    from modelci.github_api import GitHub
    from modelci.registry.register import find_sha256

    valid_repo = re.match(r"^[A-Za-z0-9-]+/[A-Za-z0-9_.-]+$", repo) and not repo.endswith(
        ("/.", "/..")
    )
    if not valid_repo or not re.match(r"^[0-9a-f]{40}$", commit):
        raise ReleaseError(f"invalid repository {repo!r} or commit {commit!r}")
    if not WORKFLOW_FILE_RE.match(workflow):
        raise ReleaseError(f"invalid workflow file name {workflow!r} (expected e.g. pr.yml)")
    if project is not None and not PROJECT_RE.match(project):
        raise ReleaseError(f"invalid project name {project!r} (expected a modelci projects name)")
    github = GitHub(api.rstrip("/"), repo, token, anonymous=True)
    pulls, _ = github.request("GET", f"/commits/{commit}/pulls")
    merged = [
        p
        for p in (pulls if isinstance(pulls, list) else [])
        if isinstance(p, dict) and p.get("merge_commit_sha") == commit
    ]
    if not merged:
        return None
    pr = merged[0]
    number, head = pr.get("number"), (pr.get("head") or {}).get("sha")
    if not isinstance(number, int) or not isinstance(head, str):
        return None
    query = f"head_sha={head}&status=success&per_page=20"
    runs, _ = github.request("GET", f"/actions/workflows/{workflow}/runs?{query}")
    for run in (runs or {}).get("workflow_runs", []):
        run_id = _reviewed_run(run, workflow, head)
        if run_id is None:
            continue
        files = _run_files(github, run_id, artifact, project)
        try:
            report = json.loads(files.get("report.json", b"{}"))
            meta = json.loads(files.get("metadata.json", b"{}"))
        except (ValueError, RecursionError):
            continue
        sha = find_sha256(report)
        if (
            sha is None
            or not isinstance(meta, dict)
            or meta.get("pr_number") != number
            or meta.get("head_sha") != head
        ):
            continue
        return {"pr_number": number, "head_sha": head, "run_id": run_id, "model": {"sha256": sha}}
    return None


def missing_report_message(workflow: str, commit: str) -> str:
    """What ``modelci release reviewed`` says when no reviewed report is found."""
    return (
        f"no report of a successful {workflow} pull_request run at the head of the pull"
        f" request merged as {commit[:12]}"
    )


def reviewed_summary(
    found: dict[str, Any] | None, workflow: str, commit: str, required: bool
) -> str:
    """The job summary of ``modelci release reviewed``: the reviewed model found, or why not
    (``found`` None), and whether the check was turned off (``require-report: false``)."""
    opted_out = (
        ""
        if required
        else "\n- **The reviewed-model check is off** (`require-report: false`): a merge without"
        f" a successful `{workflow}` run's report releases the model reproduced here.\n"
    )
    if found is None:
        refused = "refused: " if required else ""
        message = missing_report_message(workflow, commit)
        return f"## Reviewed model\n\n- {refused}{message}\n{opted_out}"
    return (
        f"## Reviewed model\n\n- PR #{found['pr_number']} (run {found['run_id']} of"
        f" `{workflow}`), model sha256 `{found['model']['sha256']}`\n{opted_out}"
    )


def section_summary(title: str, line: str) -> str:
    """A one-item job summary section (``## Image``, ``## Release``)."""
    return f"## {title}\n\n- {line}\n"
