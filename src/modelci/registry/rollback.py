"""``modelci registry rollback``: put ``@champion`` back on the previous champion, or on a given
version.

The versions newer than the target that were eligible are tagged ``rolled_back`` (so the tag
rule no longer picks them), the target is tagged ``passed``, who/why/when go into tags on both
sides, and the aliases are settled. Promoting a rolled-back version again re-evaluates it.

A target the gate never passed (``rejected``, or never evaluated) is refused: rolling back is
meant to return to a model that was approved. ``force`` (with a reason) overrides that; the
target is then tagged ``forced``, not ``passed``, and ``modelci.gate.forced_over`` keeps what the
gate said, next to its untouched ``modelci.gate.detail``.
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import dataclass

from modelci.config import ReleaseParams
from modelci.model_version import Version
from modelci.registry.core import Registry, RegistryError, open_registry
from modelci.tags import (
    FORCED,
    PASSED,
    ROLLED_BACK,
    TAG_GATE,
    TAG_GATE_DETAIL,
    TAG_GATE_FORCED_OVER,
    TAG_ROLLBACK_AT,
    TAG_ROLLBACK_BY,
    TAG_ROLLBACK_FROM,
    TAG_ROLLBACK_REASON,
    TAG_ROLLBACK_TO,
)


@dataclass(frozen=True)
class Rollback:
    from_version: Version
    to_version: Version | None
    champion_after: Version | None
    previous_after: Version | None
    actor: str
    reason: str


def actor_name(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("GITHUB_ACTOR"):
        return f"{os.environ['GITHUB_ACTOR']} (GitHub Actions)"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def rollback(
    params: ReleaseParams,
    to: int | None = None,
    reason: str = "",
    actor: str | None = None,
    registry: Registry | None = None,
    allow_empty: bool = False,
    force: bool = False,
) -> Rollback:
    """Move ``@champion`` to ``to`` (default: ``@previous``); verifies the target's artifact.

    ``allow_empty``: with no previous champion, remove ``@champion`` instead of failing (the
    release's automatic rollback after a first deploy that failed its smoke test). ``force``:
    allow a target the gate did not pass (``reason`` required).
    """
    reg = registry or open_registry(params)
    who = actor_name(actor)
    why = reason or "no reason given"
    aliases = reg.aliases()
    current = aliases.champion
    if current is None:
        raise RegistryError(f"{reg.name!r} has no @{reg.champion_alias}: nothing to roll back")
    target = reg.get(to) if to is not None else aliases.previous
    if target is None and not allow_empty:
        raise RegistryError(
            f"{reg.name!r} has no @{reg.previous_alias} to roll back to; pass --to VERSION"
        )
    if target is not None and target.version == current.version:
        raise RegistryError(f"version {target.version} is already @{reg.champion_alias}")
    target_gate, override = PASSED, dict[str, str]()
    if target is not None:
        target_gate, override = _target_gate(target, force, reason)
        reg.model_bytes(target)  # refuse a tampered target before it is deployed
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = {
        TAG_ROLLBACK_BY: who,
        TAG_ROLLBACK_REASON: why[:500],
        TAG_ROLLBACK_AT: when,
    }
    cutoff = target.order if target is not None else (-1, -1)
    for version in reg.eligible():
        if version.order > cutoff:
            reg.set_tags(
                version.version,
                {
                    TAG_GATE: ROLLED_BACK,
                    **record,
                    TAG_ROLLBACK_TO: str(target.version) if target else "none",
                },
            )
    if current.gate != ROLLED_BACK and (target is None or current.order > cutoff):
        reg.set_tags(current.version, {TAG_GATE: ROLLED_BACK, **record})
    if target is not None:
        reg.set_tags(
            target.version,
            {
                TAG_GATE: target_gate,
                **record,
                **override,
                TAG_ROLLBACK_FROM: str(current.version),
            },
        )
    champion, previous = reg.settle()
    if target is not None and (champion is None or champion.version != target.version):
        raise RegistryError(
            f"rolled back to version {target.version}, but a concurrent promotion moved "
            f"@{reg.champion_alias} to {champion.version if champion else 'none'}"
        )
    return Rollback(current, target, champion, previous, who, why)


def _target_gate(target: Version, force: bool, reason: str) -> tuple[str, dict[str, str]]:
    """The gate tag a rollback target gets (and the tags of a new override).

    ``rolled_back`` versions passed the gate before they were rolled back (rolling forward is
    allowed); a version once forced stays ``forced``, so an override never turns into
    ``passed``. A version the gate rejected or never evaluated is refused unless ``force``.
    """
    if target.gate in (PASSED, ROLLED_BACK, FORCED):
        forced_before = target.gate == FORCED or TAG_GATE_FORCED_OVER in target.tags
        return (FORCED if forced_before else PASSED), {}
    said = f"the gate {target.gate} it" if target.gate else "the gate never evaluated it"
    if not force:
        detail = target.tags.get(TAG_GATE_DETAIL, "")
        raise RegistryError(
            f"version {target.version}: {said}"
            + (f" ({detail[:200]})" if detail else "")
            + "; refusing to make it the champion: promote a version that passes, or pass "
            "--force with --reason to override (recorded on the version)"
        )
    if not reason.strip():
        raise RegistryError(
            f"version {target.version}: {said}; --force needs a --reason, recorded on the version"
        )
    return FORCED, {TAG_GATE_FORCED_OVER: target.gate or "not evaluated"}


def summary_markdown(done: Rollback, alias: str) -> str:
    """The job summary of ``modelci registry rollback``."""
    to = done.to_version.version if done.to_version else None
    return (
        f"## Rollback\n\n- @{alias}: version {done.from_version.version} -> {to}\n"
        f"- by {done.actor}\n- reason: {done.reason}\n"
    )
