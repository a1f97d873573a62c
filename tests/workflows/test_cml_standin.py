"""The ``cml`` stand-in does what CML 0.20.6 does where it matters (see stubs/cml_markdown.py).

The comment action never lets CML parse the report (``--no-publish``), so these tests check the
stand-in itself: with ``--publish`` it uploads every local path a definition, image or link points
to, scheme-prefixed relative paths and ``data:image`` URLs included, and its re-serialised body
breaks a table cell holding an escaped ``|`` and turns ``\\~x\\~`` into strikethrough, as real CML
does. That is why ``post`` uses ``--no-publish``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.fake_github import FakeGitHub
from tests.workflows.gfm import struck, table_rows
from tests.workflows.harness import FAKE_GITHUB_TOKEN, STUBS

pytestmark = pytest.mark.workflows

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32
REPO = "acme/model"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[FakeGitHub, Path]]:
    with FakeGitHub(tmp_path / "github", REPO) as github:
        yield github, tmp_path / "stub-root"


def create(
    standin: tuple[FakeGitHub, Path], markdown: Path, *options: str
) -> tuple[str, list[dict[str, Any]]]:
    """``cml comment create`` on ``markdown``; returns the posted body and the uploads."""
    github, root = standin
    env = {
        **os.environ,
        "MODELCI_STUBS": str(STUBS),
        "MODELCI_STUB_ROOT": str(root),
        "MODELCI_TEST_VENV": sys.prefix,
        "MODELCI_GITHUB_API_URL": github.url,
        "REPO_TOKEN": FAKE_GITHUB_TOKEN,
    }
    args = [str(STUBS / "cml-bin" / "cml"), "comment", "create", markdown.name, *options]
    args += ["--target", "pr/7", "--repo", f"https://github.com/{REPO}"]
    done = subprocess.run(
        args, cwd=markdown.parent, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    (call,) = [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]
    return github.state.comments[-1]["body"], call["published"]


def test_publish_uploads_every_local_path_a_link_node_points_to(
    tmp_path: Path, standin: tuple[FakeGitHub, Path]
) -> None:
    secrets = {name: f"secret {name}".encode() for name in ("a", "b", "c", "d")}
    for name, data in secrets.items():
        (tmp_path / name).write_bytes(data)
    folder = tmp_path / "comment"
    folder.mkdir()
    inline = base64.b64encode(PNG).decode()
    markdown = folder / "comment.md"
    markdown.write_text(
        "![image](../a)\n\n[link](x:/../../b)\n\n[unused definition]: ../c\n\n"
        f"[ref][r]\n\n[r]: <../d>\n\n![inline](data:image/png;base64,{inline})\n",
        encoding="utf-8",
    )
    body, published = create(standin, markdown)
    digests = {hashlib.sha256(data).hexdigest() for data in [*secrets.values(), PNG]}
    assert {upload["sha256"] for upload in published} == digests
    assert not any(upload["inside"] for upload in published)
    assert "../a" not in body


def test_publish_reserialises_and_breaks_escaped_table_cells(
    tmp_path: Path, standin: tuple[FakeGitHub, Path]
) -> None:
    markdown = tmp_path / "comment.md"
    # (GitHub also strikes through single tildes; markdown-it needs two)
    text = "| model | note |\n|---|---|\n| titanic\\|v2 | ok |\n\nnot \\~\\~struck\\~\\~\n"
    markdown.write_text(text, encoding="utf-8")
    assert table_rows(text) == [["model", "note"], ["titanic|v2", "ok"]]
    assert struck(text) == []
    body, _ = create(standin, markdown)
    assert table_rows(body)[1] == ["titanic", "v2"]  # the row shifted, "ok" fell off
    assert struck(body) == ["struck"]


def test_no_publish_posts_the_body_as_written(
    tmp_path: Path, standin: tuple[FakeGitHub, Path]
) -> None:
    (tmp_path / "a").write_bytes(b"secret")
    markdown = tmp_path / "comment.md"
    text = "| model | note |\n|---|---|\n| titanic\\|v2 | \\~x\\~ |\n\n![x](a)\n"
    markdown.write_text(text, encoding="utf-8")
    body, published = create(standin, markdown, "--no-publish")
    assert published == []
    assert body.startswith(text)
    assert table_rows(body) == [["model", "note"], ["titanic|v2", "~x~"]]
