"""The charts of a real report, as the comment job passes them on, drawn by the real renderer.

``@mermaid-js/mermaid-cli`` of GitHub's Mermaid major version (10; ``make mermaid`` installs the
version tests/tools/mermaid pins into .tools/mermaid) drives Debian's chromium headless
(``make system-deps``), offline. The SVG must hold each line of each chart, drawn from the
report's numbers, and the axis titles: a chart that Mermaid 10 does not parse fails here.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from modelci.ci.mermaid import GRID_POINTS
from tests.conftest import REPO_ROOT, run
from tests.workflows.test_comment_validator import mc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MMDC = REPO_ROOT / ".tools" / "mermaid" / "node_modules" / ".bin" / "mmdc"
PUPPETEER_CONFIG = REPO_ROOT / "tests" / "tools" / "mermaid" / "puppeteer-config.json"
CHROMIUM = "/usr/bin/chromium"
SVG = "{http://www.w3.org/2000/svg}"
CHART = re.compile(r"```mermaid\n(.*?)\n```", re.DOTALL)


def _renderer() -> Path:
    if not MMDC.exists():
        pytest.skip(f"{MMDC.relative_to(REPO_ROOT)} missing: run `make mermaid` (needs npm)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run `make system-deps` as root (Debian's chromium)")
    return MMDC


@pytest.fixture(scope="module")
def comment(rerun_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The comment body the comment job writes from a real report: the pipeline rerun with
    another max_iter, against the committed baseline."""
    repo = tmp_path_factory.mktemp("mermaid") / "repo"
    shutil.copytree(rerun_repo, repo, symlinks=True)
    run(["modelci", "pr", "report", "--base", "HEAD"], repo)
    report = (repo / ".modelci/report/report.md").read_text(encoding="utf-8")
    return str(mc.sanitize_markdown(report, set()))


def _points(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+),([-\d.]+)", path)]


def test_the_real_renderer_draws_every_line_of_the_report(comment: str, tmp_path: Path) -> None:
    mmdc = _renderer()
    charts = CHART.findall(comment)
    assert len(charts) == 2  # ROC and precision-recall; the confusion matrix is a table
    assert "| actual ↓ predicted → |" in comment
    (tmp_path / "comment.md").write_text(comment, encoding="utf-8")
    env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(mmdc), "-q", "-p", str(PUPPETEER_CONFIG), "-i", "comment.md", "-o", "out.md"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for number, chart in enumerate(charts, start=1):
        svg = ET.parse(tmp_path / f"out-{number}.svg").getroot()  # noqa: S314 - ours
        texts = {"".join(node.itertext()).strip() for node in svg.iter(f"{SVG}text")}
        title, x_title, y_title = re.findall(r'"([^"]*)"', chart)
        assert {title, x_title, y_title} <= texts
        values = [
            [float(v) for v in found.split(", ")] for found in re.findall(r"line \[(.*)\]", chart)
        ]
        drawn = [
            _points(group.find(f"{SVG}path").get("d", ""))  # type: ignore[union-attr]
            for group in svg.iter(f"{SVG}g")
            if re.fullmatch(r"line-plot-\d+", group.get("class", ""))
        ]
        assert len(drawn) == len(values) == 3  # the reference line, base, PR
        assert values[1] != values[2]  # the PR's model differs from the base's
        # each line: one vertex per value, evenly spaced in x, its height a linear map of the value
        for points, line in zip(drawn, values, strict=True):
            assert len(points) == len(line) == GRID_POINTS
            xs = [x for x, _ in points]
            steps = {round(b - a, 1) for a, b in itertools.pairwise(xs)}
            assert len(steps) == 1
        pairs = [
            (v, y)
            for points, line in zip(drawn, values, strict=True)
            for v, (_, y) in zip(line, points, strict=True)
        ]
        (v0, y0), (v1, y1) = min(pairs), max(pairs)
        scale = (y1 - y0) / (v1 - v0)
        assert scale < 0  # higher values are drawn higher up
        for value, y in pairs:
            assert y == pytest.approx(y0 + (value - v0) * scale, abs=0.5)
