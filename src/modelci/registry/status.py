"""``modelci registry status``: which version is champion, where it came from, and how it scored.

Read-only: against a server it reads the REST API (no MLflow import, well under 2 s); it never
creates a store (no default ``mlflow.db`` appears in the working directory).
"""

from __future__ import annotations

from typing import Any

from modelci import tags
from modelci.config import ReleaseParams
from modelci.model_version import Version
from modelci.registry.core import Registry, newest_first, open_registry
from modelci.tags import (
    DVC_PREFIX,
    EVAL_PREFIX,
    METRIC_PREFIX,
    TAG_GATE_DETAIL,
    TAG_GATE_FORCED_OVER,
)

LINEAGE_KEYS = (
    tags.TAG_COMMIT,
    tags.TAG_DIRTY,
    tags.TAG_MATCHES_LOCK,
    tags.TAG_RUN_COMMIT,
    tags.TAG_RUN_DIRTY,
    tags.TAG_COMMIT_TIME,
    tags.TAG_PARAMS_DIGEST,
    tags.data_md5_tag("train"),
    tags.data_md5_tag("test"),
    tags.TAG_SHA256,
    tags.TAG_PR_REPORT,
    tags.TAG_REGISTERED_BY,
    tags.TAG_REGISTERED_AT,
)


def _floats(mapping: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in mapping.items():
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def gate_text(version: Version) -> str:
    """The gate's verdict as shown: a forced rollback names what the gate had said."""
    over = version.tags.get(TAG_GATE_FORCED_OVER)
    gate = version.gate or "not evaluated"
    return f"{gate} (over: {over})" if over else gate


def describe(version: Version | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "version": version.version,
        "run_id": version.run_id,
        "commit": version.commit,
        "sha256": version.sha256,
        "gate": gate_text(version),
        "gate_detail": version.tags.get(TAG_GATE_DETAIL, ""),
        "lineage": {k: version.tags[k] for k in LINEAGE_KEYS if k in version.tags},
        "dvc_lock": version.prefixed(DVC_PREFIX),
        "metrics": _floats(version.prefixed(METRIC_PREFIX)),
        "metrics_on_current_test_set": _floats(version.prefixed(EVAL_PREFIX)),
        "rollback": version.prefixed(tags.ROLLBACK_PREFIX),
    }


def status(
    params: ReleaseParams, registry: Registry | None = None, limit: int = 10
) -> dict[str, Any]:
    reg = registry or open_registry(params, read_only=True)
    aliases = reg.aliases()
    versions = newest_first(reg.versions())
    # search results do not always carry aliases: take them from the alias lookups
    held: dict[int, list[str]] = {}
    for alias, version in (
        (reg.champion_alias, aliases.champion),
        (reg.previous_alias, aliases.previous),
    ):
        if version is not None:
            held.setdefault(version.version, []).append(alias)
    return {
        "model": reg.name,
        "tracking_uri": reg.uri,
        "aliases": {"champion": reg.champion_alias, "previous": reg.previous_alias},
        "champion": describe(aliases.champion),
        "previous": describe(aliases.previous),
        "versions": [
            {
                "version": v.version,
                "commit": v.commit,
                "sha256": v.sha256,
                "gate": gate_text(v),
                "aliases": held.get(v.version, []),
            }
            for v in versions[:limit]
        ],
        "version_count": len(versions),
    }


def render(state: dict[str, Any]) -> str:
    aliases = state["aliases"]
    lines = [f"model {state['model']} at {state['tracking_uri']}"]
    for key in ("champion", "previous"):
        info = state[key]
        if info is None:
            lines.append(f"@{aliases[key]}: none")
            continue
        lines.append(
            f"@{aliases[key]}: version {info['version']}  commit {info['commit'][:12]}  "
            f"sha256 {info['sha256'][:12]}  gate {info['gate']}"
        )
        if key == "champion":
            for name, value in sorted(info["lineage"].items()):
                lines.append(f"  {name}: {value}")
            for name, value in sorted(info["metrics"].items()):
                lines.append(f"  metric {name}: {value:.4f}")
            for name, value in sorted(info["rollback"].items()):
                lines.append(f"  rollback.{name}: {value}")
    lines.append(f"versions ({state['version_count']}, newest first):")
    for v in state["versions"]:
        tags = " ".join(f"@{a}" for a in v["aliases"])
        lines.append(
            f"  {v['version']:>4}  {v['commit'][:12]}  {v['sha256'][:12]}  {v['gate']}  {tags}"
        )
    return "\n".join(lines)
