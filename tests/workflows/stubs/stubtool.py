#!/usr/bin/env python3
"""Local stand-ins for the third-party actions and tools the workflows use, for runs under act.

Each stub action under ``tests/workflows/stubs/<name>/action.yml`` is a composite action that calls
one subcommand here; ``cml`` and ``uv`` are shims on PATH that call it too. Everything a stub does
is appended to ``$MODELCI_STUB_ROOT/calls.jsonl`` so the tests can assert what the workflows asked
for. Stdlib only (it runs with the host's python3, before the project's environment exists).

- ``cache``: restores ``$MODELCI_STUB_ROOT/cache/<key>`` (exact key, then each restore-key as a
  prefix) into ``path``; it does not save (a composite action has no post step).
- ``upload-artifact`` / ``download-artifact``: copy to and from
  ``$MODELCI_STUB_ROOT/artifacts/<name>`` (uploads) and ``artifacts/runs/<run-id>/<name>``
  (downloads, so a test decides which upload belongs to which run id).
- ``setup-python``: records the version; the host's python3 stays on PATH.
- ``setup-uv``: puts a ``uv`` shim on PATH whose ``uv sync`` links ``.venv`` to the locked
  environment of the checkout under test (``$MODELCI_TEST_VENV``) instead of installing, or,
  when ``$MODELCI_REAL_UV`` names a uv, runs it (an adopter's repository installs for real).
- ``setup-cml``: puts a recording ``cml`` on PATH. ``cml comment create|update`` keeps the
  pull-request comments in ``$MODELCI_STUB_ROOT/cml/comments.json`` the way CML does: a hidden
  watermark per ``--watermark-title``, ``update`` edits the last comment carrying it, and with
  ``--publish`` every local file a link or image points to is "uploaded" (recorded, and its URL
  replaced), which lets the tests check that nothing outside the comment directory is published.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MODELCI_STUB_ROOT", "/nonexistent-stub-root"))
LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)")
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


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
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    if not files and os.environ.get("STUB_IF_NO_FILES_FOUND") == "error":
        print(f"upload-artifact stub: no files found at {path}", file=sys.stderr)
        return 1
    target = ROOT / "artifacts" / name
    if target.exists():
        shutil.rmtree(target)
    copy_tree(path, target)
    record("upload-artifact", name=name, path=str(path), files=files)
    return 0


def download_artifact() -> int:
    name, run_id = os.environ["STUB_NAME"], os.environ.get("STUB_RUN_ID", "")
    source = ROOT / "artifacts" / "runs" / run_id / name
    record(
        "download-artifact",
        name=name,
        run_id=run_id,
        has_token=bool(os.environ.get("STUB_TOKEN")),
        found=source.is_dir(),
    )
    if not source.is_dir():
        print(f"download-artifact stub: no artifact {name!r} for run {run_id!r}", file=sys.stderr)
        return 1
    copy_tree(source, Path(os.environ["STUB_PATH"]))
    return 0


def setup_python() -> int:
    record("setup-python", python_version=os.environ.get("STUB_PYTHON_VERSION", ""))
    return 0


def setup_uv() -> int:
    record("setup-uv", inputs={k: v for k, v in os.environ.items() if k.startswith("STUB_")})
    add_path(Path(__file__).resolve().parent / "uv-bin")
    return 0


def setup_cml() -> int:
    record("setup-cml", version=os.environ.get("STUB_VERSION", ""))
    add_path(Path(__file__).resolve().parent / "cml-bin")
    return 0


def uv(args: list[str]) -> int:
    real = os.environ.get("MODELCI_REAL_UV", "")
    record("uv", args=args, cwd=os.getcwd(), real=bool(real))
    if not args or args[0] != "sync":
        print(f"uv stub: only 'uv sync' is supported, not {args}", file=sys.stderr)
        return 2
    if real:
        return subprocess.run([real, *args], check=False).returncode
    venv = Path(os.environ["MODELCI_TEST_VENV"])
    link = Path.cwd() / ".venv"
    if not link.exists():
        link.symlink_to(venv, target_is_directory=True)
    print(f"uv stub: {link} -> {venv} (the locked environment of the checkout under test)")
    return 0


def _parse_cml(args: list[str]) -> dict[str, Any]:
    if len(args) < 2 or args[0] != "comment" or args[1] not in ("create", "update"):
        raise SystemExit(f"cml stub: unsupported command {args[:2]}")
    options: dict[str, Any] = {"action": args[1], "publish": True, "files": []}
    known = {"--target", "--watermark-title", "--publish-url", "--repo", "--token", "--driver"}
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
        raise SystemExit("cml stub: exactly one Markdown file is expected")
    return options


def cml(args: list[str]) -> int:
    options = _parse_cml(args)
    markdown = Path(options["files"][0]).resolve()
    body = markdown.read_text(encoding="utf-8")
    published = []
    if options["publish"]:
        base = markdown.parent

        def publish(target: str) -> str | None:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                return None
            path = (base / target).resolve()
            if not path.is_file():
                return None
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            published.append(
                {
                    "target": target,
                    "path": str(path),
                    "inside": path.is_relative_to(base),
                    "png": data.startswith(b"\x89PNG\r\n\x1a\n"),
                    "sha256": digest,
                    "bytes": len(data),
                }
            )
            return f"https://asset.invalid/{digest}"

        def replace(match: re.Match[str]) -> str:
            url = publish(match.group(1))
            return match.group(0) if url is None else match.group(0).replace(match.group(1), url)

        body = DEFINITION.sub(replace, LINK_TARGET.sub(replace, body))
    title = options.get("watermark-title", "")
    watermark = f"CML watermark {title}".strip()
    sha = os.environ.get("GITHUB_SHA", "0")
    body += f'\n\n![](https://cml.dev/watermark.png#{sha} "{watermark}")'
    state_file = ROOT / "cml" / "comments.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    comments: list[dict[str, Any]] = (
        json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else []
    )
    target = options.get("target", "auto")
    marker = f'"{watermark}")'
    existing = [c for c in comments if c["target"] == target and marker in c["body"]]
    if options["action"] == "update" and existing:
        comment = existing[-1]
        comment["body"] = body
        comment["updates"] += 1
        done = "updated"
    else:
        comment = {"id": len(comments) + 1, "target": target, "body": body, "updates": 0}
        comments.append(comment)
        done = "created"
    state_file.write_text(json.dumps(comments, indent=2), encoding="utf-8")
    record(
        "cml",
        args=args,
        done=done,
        comment_id=comment["id"],
        target=target,
        repo=options.get("repo"),
        publish_url=options.get("publish-url"),
        published=published,
        has_token=bool(os.environ.get("REPO_TOKEN") or os.environ.get("GITHUB_TOKEN")),
        cwd=os.getcwd(),
    )
    print(f"https://github.invalid/comments/{comment['id']}")
    return 0


COMMANDS = {
    "cache": cache,
    "upload-artifact": upload_artifact,
    "download-artifact": download_artifact,
    "setup-python": setup_python,
    "setup-uv": setup_uv,
    "setup-cml": setup_cml,
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
