"""Stamp a release build: record the repository and commit that ``modelci init`` pins.

Run by the publish workflow before ``uv build``, as a plain script (``python3 -I``; standard
library only), on the tag's checkout. It refuses a tag that is not ``v`` + the version in
pyproject.toml, the one source of the version.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

RELEASE_FILE = Path(__file__).with_name("release.json")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def project_version(pyproject: Path) -> str:
    with pyproject.open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def stamp(repository: str, commit: str, tag: str, pyproject: Path, out: Path) -> str:
    """Write ``out``; returns an error message, or "" on success."""
    if not _REPO.match(repository):
        return f"--repository: {repository!r} is not OWNER/NAME"
    if not _SHA.match(commit):
        return f"--commit: {commit!r} is not a full 40-hex commit SHA"
    version = project_version(pyproject)
    if tag != f"v{version}":
        return f"tag {tag!r} does not match {pyproject}'s version {version!r} (expected v{version})"
    out.write_text(json.dumps({"repository": repository, "commit": commit}, indent=2) + "\n")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stamp.py", description=__doc__)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--pyproject", default="pyproject.toml", type=Path)
    parser.add_argument("--out", default=RELEASE_FILE, type=Path)
    args = parser.parse_args(argv)
    error = stamp(args.repository, args.commit, args.tag, args.pyproject, args.out)
    if error:
        print(f"stamp: error: {error}", file=sys.stderr)
        return 2
    print(f"stamp: {args.out}: {args.repository}@{args.commit} ({args.tag})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
