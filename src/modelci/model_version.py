"""One registered model version, as the registry, the deploy targets and the smoke test see it."""

from __future__ import annotations

from dataclasses import dataclass

from modelci.tags import TAG_COMMIT, TAG_COMMIT_TIME, TAG_GATE, TAG_SHA256


@dataclass(frozen=True)
class Version:
    """One registered model version, as read from the registry."""

    name: str
    version: int
    run_id: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()
    created_ms: int = 0
    source: str = ""

    @property
    def commit(self) -> str:
        return self.tags.get(TAG_COMMIT, "unknown")

    @property
    def sha256(self) -> str:
        return self.tags.get(TAG_SHA256, "")

    @property
    def gate(self) -> str:
        return self.tags.get(TAG_GATE, "")

    @property
    def order(self) -> tuple[int, int]:
        """Newer sorts later: commit time first, registration order to break ties."""
        try:
            when = int(self.tags.get(TAG_COMMIT_TIME, "0"))
        except ValueError:
            when = 0
        return (when, self.version)

    def prefixed(self, prefix: str) -> dict[str, str]:
        return {k.removeprefix(prefix): v for k, v in self.tags.items() if k.startswith(prefix)}
