"""Issue 19.6: one Markdown-defusing function (``modelci.judge.markdown``) for everything the bot
posts from untrusted values: the PR report, the monitor issue (drift.md), the retraining PR body
(drift.md again) and the job summaries (drift.md, appended by the monitor workflow). Categories
seen in production must not become links, cross-repository references or mentions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from modelci.judge.markdown import ZWSP, defuse_links, escape

pytestmark = pytest.mark.unit

HOSTILE = {
    "url": "https://evil.example/reset-password",
    "http": "see http://evil.example",
    "www": "www.evil.example/login",
    "cross-repo": "octo-org/octo-repo#1",
    "same-repo": "fixes #42",
    "mention": "@octocat please",
    "team": "@octo-org/admins",
    "email": "admin@evil.example",
}
# What GitHub links by itself in Markdown text (GFM autolinks, issue references, mentions).
LINKED = re.compile(r"(?i)\b(?:https?|ftp)://|\bwww\.|#\d|@[A-Za-z0-9]")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_autolinks_references_and_mentions_are_defused(name: str) -> None:
    text = HOSTILE[name]
    for out in (defuse_links(text), escape(text)):
        assert not LINKED.search(out), out
        assert out.replace(ZWSP, "").replace("\\", "") == text  # reads the same


def test_the_monitor_issue_shows_hostile_categories_inert() -> None:
    from modelci.config import MonitorParams
    from modelci.drift.engine import analyse
    from modelci.drift.render import markdown
    from tests.unit.test_drift_engine import DATA, population

    whole = population(np.random.default_rng(3), 8000)
    reference, held_out = whole.iloc[:6000], whole.iloc[6000:].reset_index(drop=True)
    current = held_out.copy()
    values = list(HOSTILE.values())
    current.loc[current.index[: 10 * len(values)], "c"] = values * 10
    result = analyse(reference, current, DATA, MonitorParams(psi=50.0))
    text = markdown(result, None, [], "window")
    assert "evil" in text  # the categories are listed ...
    assert not LINKED.search(text)  # ... and none links, references or mentions
