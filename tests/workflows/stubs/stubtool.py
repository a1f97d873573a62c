#!/usr/bin/env python3
"""Local stand-ins for the third-party actions and tools the workflows use, for runs under act.

Each stub action under ``tests/workflows/stubs/<name>/action.yml`` is a composite action that calls
one subcommand here; ``cml`` and ``uv`` are shims on PATH that call it too. Everything a stub does
is appended to ``$MODELCI_STUB_ROOT/calls.jsonl`` so the tests can assert what the workflows asked
for. Stdlib only (it runs with the host's python3, before the project's environment exists).

- ``cache``: restores ``$MODELCI_STUB_ROOT/cache/<key>`` (exact key, then each restore-key as a
  prefix) into ``path``; it does not save (a composite action has no post step).
- ``upload-artifact``: copies (a folder's files, or one file) to
  ``$MODELCI_STUB_ROOT/artifacts/<name>`` (a test then files it
  under a run id with ``conftest.keep_artifact``, where ``fake_github`` serves it from).
- ``download-artifact``: copies ``$MODELCI_STUB_ROOT/artifacts/<name>`` (an upload of the same
  run) to ``path``.
- ``pypi-publish``: records the distributions it would upload (name and sha256), and keeps them
  under ``$MODELCI_STUB_ROOT/pypi``.
- ``setup-python``: records the version; the host's python3 stays on PATH.
- ``setup-uv``: puts a ``uv`` shim on PATH whose ``uv sync`` links ``.venv`` to the locked
  environment of the checkout under test (``$MODELCI_TEST_VENV``) instead of installing, or,
  when ``$MODELCI_REAL_UV`` names a uv, runs it (an adopter's repository installs for real).
- ``setup-cml``: records its inputs and puts ``cml`` on PATH: a stand-in for CML 0.20.6 that
  behaves like it where it matters (see ``cml``): without ``--repo`` or ``CML_REPO`` it reads the
  git remote and fails outside a checkout; it talks to the API of the ``--repo`` host (or, under
  act, to the test's ``fake_github`` at ``$MODELCI_GITHUB_API_URL``); ``asset publish`` POSTs the
  file to ``--url``; with ``--publish`` it uploads and re-serialises as ``cml_markdown``
  describes. ``tests/workflows/test_cml_conformance.py`` holds it to the real CML. ``cml`` runs
  with the test environment's Python (it needs markdown-it-py); everything else here is stdlib
  only.
- ``create-github-app-token``: fails without a client id and a private key, as the real action
  does; records the client id and the permissions asked for (never the key) and outputs
  ``APP_TOKEN``, the token ``fake_github`` knows as an App installation's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MODELCI_STUB_ROOT", "/nonexistent-stub-root"))
APP_TOKEN = "ghs_fake_app_installation_token"  # noqa: S105 - fake_github.APP_TOKEN


def record(stub: str, **data: Any) -> None:
    entry = {
        "stub": stub,
        "job": os.environ.get("GITHUB_JOB", ""),
        "workflow": os.environ.get("GITHUB_WORKFLOW", ""),
        "event": os.environ.get("GITHUB_EVENT_NAME", ""),
        **data,
    }
    ROOT.mkdir(parents=True, exist_ok=True)
    with (ROOT / "calls.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")


def output(**values: str) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            for key, value in values.items():
                out.write(f"{key}={value}\n")


def add_path(directory: Path) -> None:
    with open(os.environ["GITHUB_PATH"], "a", encoding="utf-8") as path_file:
        path_file.write(f"{directory}\n")


def copy_tree(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)


def cache() -> int:
    paths = [line.strip() for line in os.environ["STUB_PATH"].splitlines() if line.strip()]
    key = os.environ["STUB_KEY"]
    restore_keys = [k.strip() for k in os.environ.get("STUB_RESTORE_KEYS", "").splitlines()]
    store = ROOT / "cache"
    hit, matched = False, None
    if (store / key).is_dir():
        hit, matched = True, key
    else:
        entries = sorted(p.name for p in store.iterdir()) if store.is_dir() else []
        for prefix in filter(None, restore_keys):
            candidates = [name for name in entries if name.startswith(prefix)]
            if candidates:
                matched = candidates[-1]
                break
    if matched is not None:
        for path in paths:
            source = store / matched / Path(path).name
            if source.is_dir():
                copy_tree(source, Path(path))
    record("cache", key=key, restore_keys=restore_keys, paths=paths, hit=hit, matched=matched)
    output(**{"cache-hit": "true" if hit else "false"})
    return 0


def upload_artifact() -> int:
    name, path = os.environ["STUB_NAME"], Path(os.environ["STUB_PATH"])
    # A file path uploads that one file at the artifact's root, as the real action does.
    if path.is_file():
        files = [path.name]
    else:
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    if not files and os.environ.get("STUB_IF_NO_FILES_FOUND") == "error":
        print(f"upload-artifact stub: no files found at {path}", file=sys.stderr)
        return 1
    target = ROOT / "artifacts" / name
    if target.exists():
        shutil.rmtree(target)
    if path.is_file():
        target.mkdir(parents=True)
        shutil.copy2(path, target / path.name)
    else:
        copy_tree(path, target)
    record("upload-artifact", name=name, path=str(path), files=files)
    return 0


def download_artifact() -> int:
    name, pattern = os.environ["STUB_NAME"], os.environ.get("STUB_PATTERN", "")
    if pattern and not name:
        found = sorted(p for p in (ROOT / "artifacts").glob(pattern) if p.is_dir())
        record("download-artifact", pattern=pattern, found=[p.name for p in found])
        for source in found:
            copy_tree(source, Path(os.environ["STUB_PATH"]) / source.name)
        return 0
    source = ROOT / "artifacts" / name
    record("download-artifact", name=name, found=source.is_dir())
    if not source.is_dir():
        print(f"download-artifact stub: no artifact {name!r} uploaded", file=sys.stderr)
        return 1
    copy_tree(source, Path(os.environ["STUB_PATH"]))
    return 0


def pypi_publish() -> int:
    packages = Path(os.environ.get("STUB_PACKAGES_DIR") or "dist")
    files = sorted(p for p in packages.iterdir() if p.suffix in (".whl", ".gz"))
    kept = ROOT / "pypi"
    kept.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy2(file, kept / file.name)
    digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    record("pypi-publish", files=digests, oidc=bool(os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")))
    return 0 if files else 1


def setup_python() -> int:
    record("setup-python", python_version=os.environ.get("STUB_PYTHON_VERSION", ""))
    return 0


def setup_uv() -> int:
    record("setup-uv", inputs={k: v for k, v in os.environ.items() if k.startswith("STUB_")})
    add_path(Path(__file__).resolve().parent / "uv-bin")
    return 0


def setup_cml() -> int:
    record(
        "setup-cml",
        version=os.environ.get("STUB_VERSION", ""),
        vega=os.environ.get("STUB_VEGA", ""),
    )
    add_path(Path(__file__).resolve().parent / "cml-bin")
    return 0


def uv(args: list[str]) -> int:
    real = os.environ.get("MODELCI_REAL_UV", "")
    record("uv", args=args, cwd=os.getcwd(), real=bool(real))
    if real:
        return subprocess.run([real, *args], check=False).returncode
    if not args or args[0] != "sync":
        print(f"uv stub: only 'uv sync' is supported, not {args}", file=sys.stderr)
        return 2
    venv = Path(os.environ["MODELCI_TEST_VENV"])
    link = Path.cwd() / ".venv"
    if not link.exists():
        link.symlink_to(venv, target_is_directory=True)
    print(f"uv stub: {link} -> {venv} (the locked environment of the checkout under test)")
    return 0


WATERMARK_URL = "https://cml.dev/watermark.png"


def _parse_cml(args: list[str]) -> dict[str, Any]:
    """``comment create|update FILE [options]`` or ``asset publish FILE --url URL``."""
    commands = {("comment", "create"), ("comment", "update"), ("asset", "publish")}
    if len(args) < 2 or (args[0], args[1]) not in commands:
        raise SystemExit(f"cml stub: unsupported command {args[:2]}")
    options: dict[str, Any] = {"command": args[0], "action": args[1], "publish": True, "files": []}
    known = {"--target", "--watermark-title", "--publish-url", "--repo", "--token", "--url"}
    rest = args[2:]
    while rest:
        item = rest.pop(0)
        if item in known:
            if not rest:
                raise SystemExit(f"cml stub: {item} needs a value")
            options[item[2:]] = rest.pop(0)
        elif item == "--publish":
            options["publish"] = True
        elif item == "--no-publish":
            options["publish"] = False
        elif item.startswith("--"):
            raise SystemExit(f"cml stub: unknown option {item}")
        else:
            options["files"].append(item)
    if len(options["files"]) != 1:
        raise SystemExit("cml stub: exactly one file is expected")
    return options


def _repo_url(options: dict[str, Any]) -> str | None:
    """The repository URL as CML 0.20.6 finds it (src/cml.js:129): ``--repo``, ``CML_REPO``
    (bin/cml.js:36-49), else the git remote of the working folder; None when that fails, as
    ``git config --get remote.origin.url`` does outside a checkout."""
    repo = options.get("repo") or os.environ.get("CML_REPO")
    if repo:
        return str(repo).rstrip("/").removesuffix(".git")
    done = subprocess.run(
        ["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip().rstrip("/").removesuffix(".git") if done.returncode == 0 else None


def _in_checkout() -> bool:
    done = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


def _api_url(repo: str) -> str:
    """CML's octokit base URL (src/drivers/github.js:75-80): api.github.com for github.com, else
    ``https://HOST/api/v3``; GITHUB_API_URL is ignored. Under act, ``MODELCI_GITHUB_API_URL``
    routes the calls to the test's API stand-in instead."""
    routed = os.environ.get("MODELCI_GITHUB_API_URL")
    if routed:
        return routed
    host = urllib.parse.urlsplit(repo).netloc
    return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"


def _upload(data: bytes, target: str, path: Path | None, base: Path) -> dict[str, Any]:
    return {
        "target": target[:200],
        "path": str(path) if path else None,
        "inside": path.is_relative_to(base) if path else False,
        "png": data.startswith(b"\x89PNG\r\n\x1a\n"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def _asset_url(upload: dict[str, Any]) -> str:
    return f"https://asset.invalid/{upload['sha256']}?cml=png&cache-bypass=1"


def _publish_body(body: str, base: Path, published: list[dict[str, Any]]) -> str:
    """CML's --publish: upload every local path and data:image URL of a link node, re-serialise."""
    import base64
    import binascii

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cml_markdown import link_targets, reserialise

    for target in dict.fromkeys(link_targets(body)):
        if target.startswith("data:image/"):
            try:
                data = base64.b64decode(target[target.index(",") + 1 :])
            except (ValueError, binascii.Error):
                continue
            upload = _upload(data, target, None, base)
        else:
            # node's path.resolve(dirname(file), url), as CML does: lexical, so `x:/../f` is ../f
            path = Path(os.path.normpath(os.path.join(base, target)))
            if not path.is_file():
                continue
            upload = _upload(path.read_bytes(), target, path, base)
        published.append(upload)
        body = body.replace(f"({target}", f"({_asset_url(upload)}").replace(
            f"]: {target}", f"]: {_asset_url(upload)}"
        )
    return reserialise(body)


def _post_asset(url: str, path: Path) -> str:
    """``cml asset publish FILE --url URL`` (src/utils.js:77-98): POST the bytes, print the URL
    the endpoint answers, with ``cml=png`` and a cache-bypass parameter (src/cml.js:349-356)."""
    import urllib.request
    import uuid

    data = path.read_bytes()
    mime = "image/png" if data.startswith(b"\x89PNG\r\n\x1a\n") else "application/octet-stream"
    request = urllib.request.Request(  # noqa: S310 - a test's endpoint
        url,
        method="POST",
        data=data,
        headers={
            "Content-Type": mime,
            "Content-Disposition": f'inline; filename="{path.name}"',
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        uri = response.read().decode()
    joiner = "&" if "?" in uri else "?"
    return f"{uri}{joiner}cml={mime.split('/')[1]}&cache-bypass={uuid.uuid4()}"


def _api(base: str, method: str, path: str, body: Any = None) -> Any:
    """A call to the GitHub API at ``base``, with REPO_TOKEN or GITHUB_TOKEN (src/cml.js:57-67)."""
    import urllib.request

    token = os.environ.get("REPO_TOKEN") or os.environ.get("GITHUB_TOKEN", "")
    request = urllib.request.Request(  # noqa: S310 - the test's 127.0.0.1 server
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def _telemetry_user(api: str) -> bool:
    """CML's telemetry payload, built even with ITERATIVE_DO_NOT_TRACK (bin/cml.js:75-98): on a
    GitHub runner (GITHUB_SERVER_URL set) it reads ``GET /users/$GITHUB_ACTOR``, ignoring any
    failure (src/analytics.js:84-137). True when a user id could be made from it."""
    import urllib.error

    actor = os.environ.get("GITHUB_ACTOR")
    if not os.environ.get("GITHUB_SERVER_URL") or os.environ.get("CODESPACES") or not actor:
        return False
    try:
        return isinstance(_api(api, "GET", f"/users/{urllib.parse.quote(actor, safe='')}"), dict)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _telemetry_send(has_user: bool) -> None:
    """After the command, CML POSTs the event to its telemetry host through the environment's
    proxy, unless ITERATIVE_DO_NOT_TRACK is set or it has no user id (src/analytics.js:187-228)."""
    import urllib.request

    if os.environ.get("ITERATIVE_DO_NOT_TRACK") or not has_user:
        return
    if os.environ.get("GITHUB_REPOSITORY", "").startswith("iterative/"):
        return
    endpoint = os.environ.get(
        "ITERATIVE_ANALYTICS_ENDPOINT",
        "https://telemetry.cml.dev/api/v1/s2s/event?ip_policy=strict",
    )
    request = urllib.request.Request(endpoint, method="POST", data=b"{}")  # noqa: S310
    with contextlib.suppress(OSError, ValueError):
        urllib.request.urlopen(request, timeout=5).close()  # noqa: S310


def _watermark_title(label: str) -> str:
    title = f"CML watermark {label}".strip()
    for char in "_*[<":
        title = title.replace(char, "\\" + char)
    return title


def cml(args: list[str]) -> int:
    """CML 0.20.6's ``comment create|update`` and ``asset publish``: the repository is found (or
    not) first, then the telemetry user is read, the command runs, and telemetry is sent."""
    options = _parse_cml(args)
    repo = _repo_url(options)
    if repo is None:
        record("cml", args=args, done="failed", error="no git remote", in_checkout=_in_checkout())
        message = "Command failed: git config --get remote.origin.url"
        print(json.dumps({"level": "error", "message": message}), file=sys.stderr)
        return 1
    has_user = _telemetry_user(_api_url(repo))
    try:
        return _command(args, options, repo)
    finally:
        _telemetry_send(has_user)


def _command(args: list[str], options: dict[str, Any], repo: str) -> int:
    """The command itself, against the API of ``repo``'s host.

    As the real one: ``update`` lists the pull request's comments once, without pagination (the
    first 30), takes the last one holding the watermark whoever wrote it and PATCHes it (GitHub
    answers 403 for another user's comment, and cml fails); with ``--publish`` (the default) the
    body goes through ``_publish_body``.
    """
    import urllib.error

    checkout = _in_checkout()
    source = Path(options["files"][0]).resolve()
    published: list[dict[str, Any]] = []
    if options["command"] == "asset":
        upload = _upload(source.read_bytes(), options["files"][0], source, Path.cwd())
        published.append(upload)
        url = _post_asset(options.get("url") or "https://asset.cml.dev", source)
        record(
            "cml",
            args=args,
            done="published",
            published=published,
            cwd=os.getcwd(),
            in_checkout=checkout,
        )
        print(url)
        return 0
    body = source.read_text(encoding="utf-8")
    title = _watermark_title(options.get("watermark-title", ""))
    sha = os.environ.get("GITHUB_SHA") or "0"
    body += f'\n\n![]({WATERMARK_URL}#{sha} "{title}")'
    if options["publish"]:
        body = _publish_body(body, source.parent, published)
    target = options.get("target", "")
    if not target.startswith("pr/"):
        raise SystemExit(f"cml stub: only --target pr/N is supported, not {target!r}")
    # OWNER/NAME from the repository URL, as CML's ownerRepo() reads it (github.js:39-51)
    api = _api_url(repo)
    prefix = f"/repos/{'/'.join(urllib.parse.urlsplit(repo).path.split('/')[1:3])}/issues"
    marker = re.compile(rf'!\[\]\({re.escape(WATERMARK_URL)}#[0-9a-fA-F]+ "{re.escape(title)}"\)')
    done, error = "created", None
    try:
        existing = []
        if options["action"] == "update":
            existing = [
                c
                for c in _api(api, "GET", f"{prefix}/{target[3:]}/comments")
                if marker.search(c["body"])
            ]
        if existing:
            comment = _api(api, "PATCH", f"{prefix}/comments/{existing[-1]['id']}", {"body": body})
            done = "updated"
        else:
            comment = _api(api, "POST", f"{prefix}/{target[3:]}/comments", {"body": body})
    except urllib.error.HTTPError as failure:
        # octokit's RequestError carries the API's message (@octokit/request toErrorMessage)
        try:
            message = str(json.loads(failure.read() or b"{}").get("message"))
        except (ValueError, AttributeError):
            message = f"HTTP {failure.code}"
        done, error, comment = "failed", message, {}
    record(
        "cml",
        args=args,
        done=done,
        error=error,
        comment_id=comment.get("id"),
        target=target,
        repo=repo,
        publish=options["publish"],
        published=published,
        has_token=bool(os.environ.get("REPO_TOKEN") or os.environ.get("GITHUB_TOKEN")),
        do_not_track=os.environ.get("ITERATIVE_DO_NOT_TRACK"),
        cwd=os.getcwd(),
        in_checkout=checkout,
    )
    if error:
        print(json.dumps({"level": "error", "message": error}), file=sys.stderr)
        return 1
    print(comment["html_url"])
    return 0


def create_github_app_token() -> int:
    client_id, key = os.environ.get("STUB_CLIENT_ID", ""), os.environ.get("STUB_PRIVATE_KEY", "")
    if not client_id or not key:
        print("create-github-app-token stub: client-id and private-key are required")
        return 1
    record(
        "create-github-app-token",
        client_id=client_id,
        contents=os.environ.get("STUB_CONTENTS", ""),
        pull_requests=os.environ.get("STUB_PULL_REQUESTS", ""),
    )
    print(f"::add-mask::{APP_TOKEN}")
    output(token=APP_TOKEN)
    return 0


COMMANDS = {
    "cache": cache,
    "upload-artifact": upload_artifact,
    "download-artifact": download_artifact,
    "pypi-publish": pypi_publish,
    "setup-python": setup_python,
    "setup-uv": setup_uv,
    "setup-cml": setup_cml,
    "create-github-app-token": create_github_app_token,
}


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: stubtool.py COMMAND [ARGS]")
    if argv[0] == "uv":
        return uv(argv[1:])
    if argv[0] == "cml":
        return cml(argv[1:])
    return COMMANDS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
