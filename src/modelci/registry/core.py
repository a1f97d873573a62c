"""The MLflow Model Registry as modelci uses it: versions with lineage tags, and two aliases.

Every call goes through :class:`Registry`, which turns transport and MLflow errors into a
:class:`~modelci.errors.TrackingError` naming the server and the step, so a server that stops
mid-release gives one clear line instead of a traceback.

Who is champion is decided from tags, not from the order in which processes happen to write the
alias: a version is *eligible* when its gate tag says ``passed``; the champion is the eligible
version with the newest commit (commit time, then version number); ``@previous`` is the newest
eligible version older than it. :meth:`Registry.settle` writes the aliases to that state and
re-reads them until they hold it, so concurrent promotions converge (see README, "Races").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelci.errors import ModelCIError, TrackingError

T = TypeVar("T")

# Version tags (besides the run's lineage tags, which are copied onto the version).
TAG_COMMIT = "modelci.git_commit"
TAG_COMMIT_TIME = "modelci.commit_time"
TAG_SHA256 = "modelci.model_sha256"
TAG_GATE = "modelci.gate"  # passed | rejected | rolled_back
TAG_GATE_DETAIL = "modelci.gate.detail"
TAG_GATE_AGAINST = "modelci.gate.against"
TAG_PR_REPORT = "modelci.pr_report"
METRIC_PREFIX = "modelci.metric."
EVAL_PREFIX = "modelci.eval."
DVC_PREFIX = "modelci.dvc."
PASSED, REJECTED, ROLLED_BACK = "passed", "rejected", "rolled_back"
MODEL_FILE = "model_file/model.skops"
SETTLE_ROUNDS = 10


class RegistryError(ModelCIError):
    """A registry request that cannot be satisfied: unknown version, no champion, a conflict."""


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


@dataclass
class Aliases:
    champion: Version | None
    previous: Version | None
    extra: dict[str, int] = field(default_factory=dict)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _is_not_found(error: BaseException) -> bool:
    code = getattr(error, "error_code", "")
    return (
        code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
        or "not found" in str(error).lower()
    )


class Registry:
    """A thin, error-translating wrapper over ``MlflowClient`` for one registered model."""

    def __init__(self, name: str, champion_alias: str, previous_alias: str) -> None:
        from modelci import tracking

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        self.uri = tracking.tracking_uri()
        tracking.probe(self.uri)
        import mlflow
        from mlflow import MlflowClient

        tracking.quiet_mlflow()
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        self.name = name
        self.champion_alias = champion_alias
        self.previous_alias = previous_alias

    # -- plumbing ---------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ModelCIError:
            raise
        except Exception as error:  # MlflowException, requests and OS errors alike
            raise TrackingError(
                f"MLflow registry at {self.uri}: {what} failed: {_short(error)}"
            ) from None

    def _version(self, mv: Any) -> Version:
        return Version(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or "",
            tags=dict(mv.tags or {}),
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
            created_ms=int(mv.creation_timestamp or 0),
            source=mv.source or "",
        )

    # -- reads ------------------------------------------------------------------------------

    def ensure_model(self) -> None:
        def create() -> None:
            try:
                self.client.create_registered_model(self.name)
            except Exception as error:
                if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise

        self.call(f"creating registered model {self.name!r}", create)

    def versions(self, **tags: str) -> list[Version]:
        """All versions of the model (optionally with these exact tag values), oldest first."""
        query = f"name='{_quote(self.name)}'"
        for key, value in tags.items():
            query += f" and tags.`{key}`='{_quote(value)}'"
        found = self.call(
            f"listing versions of {self.name!r}", self.client.search_model_versions, query
        )
        return sorted((self._version(mv) for mv in found), key=lambda v: v.version)

    def get(self, version: int | str) -> Version:
        try:
            number = int(version)
        except ValueError:
            raise RegistryError(f"{version!r} is not a version number") from None

        def fetch() -> Any:
            try:
                return self.client.get_model_version(self.name, str(number))
            except Exception as error:
                if _is_not_found(error):
                    raise RegistryError(
                        f"model {self.name!r} has no version {number} in {self.uri}"
                    ) from None
                raise

        return self._version(self.call(f"reading version {number}", fetch))

    def alias(self, alias: str) -> Version | None:
        def fetch() -> Any:
            try:
                return self.client.get_model_version_by_alias(self.name, alias)
            except Exception as error:
                if _is_not_found(error):
                    return None
                raise

        mv = self.call(f"reading alias @{alias}", fetch)
        return None if mv is None else self._version(mv)

    def aliases(self) -> Aliases:
        return Aliases(self.alias(self.champion_alias), self.alias(self.previous_alias))

    # -- writes -----------------------------------------------------------------------------

    def set_tags(self, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.call(
                f"tagging version {version} ({key})",
                self.client.set_model_version_tag,
                self.name,
                str(version),
                key,
                value,
            )

    def set_alias(self, alias: str, version: int | None) -> None:
        if version is None:

            def delete() -> None:
                try:
                    self.client.delete_registered_model_alias(self.name, alias)
                except Exception as error:
                    if not _is_not_found(error):
                        raise

            self.call(f"removing alias @{alias}", delete)
        else:
            self.call(
                f"moving alias @{alias} to version {version}",
                self.client.set_registered_model_alias,
                self.name,
                alias,
                str(version),
            )

    # -- the champion rule ------------------------------------------------------------------

    def target_state(self) -> tuple[Version | None, Version | None]:
        """(champion, previous) as the tags say they should be."""
        eligible = sorted(self.versions(**{TAG_GATE: PASSED}), key=lambda v: v.order)
        if not eligible:
            return None, None
        champion = eligible[-1]
        previous = eligible[-2] if len(eligible) > 1 else None
        return champion, previous

    def settle(self) -> tuple[Version | None, Version | None]:
        """Write the aliases to the tag-derived state, re-reading until they hold it.

        Each round reads the tags *after* its own writes, so whichever process writes last has
        seen every other process's gate tag and writes the same answer (README, "Races").
        """
        for _ in range(SETTLE_ROUNDS):
            champion, previous = self.target_state()
            current = self.aliases()
            want = (_num(champion), _num(previous))
            if (_num(current.champion), _num(current.previous)) == want:
                return champion, previous
            # previous first: a crash in between leaves @champion unchanged and reachable.
            self.set_alias(self.previous_alias, want[1])
            self.set_alias(self.champion_alias, want[0])
        raise RegistryError(
            f"aliases of {self.name!r} did not settle after {SETTLE_ROUNDS} rounds: other "
            "processes keep moving them; re-run when the other releases have finished"
        )

    # -- artifacts --------------------------------------------------------------------------

    def model_bytes(self, version: Version, expected_sha256: str | None = None) -> bytes:
        """Download the version's model file, verified against its sha256 tag before any load."""
        from modelci import model_source
        from modelci.modelfile import verify_sha256

        if not version.sha256:
            raise RegistryError(
                f"version {version.version} has no {TAG_SHA256} tag; it was not registered by "
                "modelci and cannot be verified, refusing to use it"
            )
        uri = f"models:/{self.name}/{version.version}"
        data, _ = model_source.fetch(uri, tracking_uri=self.uri)
        verify_sha256(data, version.sha256, f"{uri} ({MODEL_FILE})")
        if expected_sha256 is not None:
            verify_sha256(data, expected_sha256, f"{uri} ({MODEL_FILE}), the reviewed model")
        return data


def _num(version: Version | None) -> int | None:
    return None if version is None else version.version


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_registry(params: Any) -> Registry:
    """The registry of ``params.tracking.model_name`` with the configured aliases."""
    return Registry(
        params.tracking.model_name,
        params.registry.champion_alias,
        params.registry.previous_alias,
    )


def format_version(version: Version | None) -> str:
    if version is None:
        return "none"
    return f"version {version.version} (commit {version.commit[:12]})"


def newest_first(versions: Iterable[Version]) -> list[Version]:
    return sorted(versions, key=lambda v: v.order, reverse=True)
