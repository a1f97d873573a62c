"""Recording stand-ins for the cloud CLIs (``gcloud``, ``aws``): each call's arguments are
appended to a log, and the answer is the one configured for the longest matching argument prefix
(its stdout and exit status), as the kubernetes target's kubectl stand-in records its calls."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["STANDIN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
with open(os.environ["STANDIN_ANSWERS"], encoding="utf-8") as handle:
    answers = json.load(handle)
words = [name, *sys.argv[1:]]
best = None
for prefix, answer in answers.items():
    parts = prefix.split()
    if words[: len(parts)] == parts and (best is None or len(parts) > len(best[0])):
        best = (parts, answer)
stdout, status = (best[1]["stdout"], best[1]["exit"]) if best else ("", 0)
sys.stdout.write(stdout)
if status:
    sys.stderr.write("stand-in: configured to fail\\n")
sys.exit(status)
"""


@dataclass
class StandIns:
    root: Path

    def answer(self, prefix: str, stdout: object = "", exit: int = 0) -> None:
        """``prefix`` (e.g. "gcloud run services describe") prints ``stdout`` (JSON unless a
        string) and exits ``exit``."""
        path = self.root / "answers.json"
        answers = json.loads(path.read_text(encoding="utf-8"))
        text = stdout if isinstance(stdout, str) else json.dumps(stdout)
        answers[prefix] = {"stdout": text, "exit": exit}
        path.write_text(json.dumps(answers), encoding="utf-8")

    def calls(self, name: str) -> list[list[str]]:
        log = self.root / "calls.jsonl"
        if not log.exists():
            return []
        lines = log.read_text(encoding="utf-8").splitlines()
        return [call[1:] for call in map(json.loads, lines) if call[0] == name]


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    """Put ``gcloud`` and ``aws`` stand-ins first on PATH for this test."""
    root = tmp_path / "standins"
    (root / "bin").mkdir(parents=True)
    for name in ("gcloud", "aws"):
        script = root / "bin" / name
        script.write_text(SCRIPT.format(python=sys.executable), encoding="utf-8")
        script.chmod(0o755)
    (root / "answers.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_LOG", str(root / "calls.jsonl"))
    monkeypatch.setenv("STANDIN_ANSWERS", str(root / "answers.json"))
    return StandIns(root)
