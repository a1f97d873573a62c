"""The MLflow Model Registry as modelci uses it: versions with lineage tags, and two aliases.

Every call goes through :class:`Registry`, which turns transport and MLflow errors into a
:class:`~modelci.errors.TrackingError` naming the server and the step, so a server that stops
mid-release gives one clear line instead of a traceback.

Who is champion is decided from tags, not from the order in which processes happen to write the
alias: a version is *eligible* when its gate tag says ``passed``; the champion is the eligible
version with the newest commit (commit time, then version number); ``@previous`` is the newest
eligible version older than it. ``forced`` (a rollback with ``--force`` onto a version the gate
rejected) is eligible too, and stays distinct from ``passed`` so the override is visible.
:meth:`Registry.settle` writes the aliases to that state and re-reads them until they hold it,
so concurrent promotions converge (see README, "Races").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from modelci.errors import ModelCIError, TrackingError
from modelci.model_version import Version
from modelci.tags import ELIGIBLE, TAG_SHA256

T = TypeVar("T")

MODEL_FILE = "model_file/model.skops"
SETTLE_ROUNDS = 10


class RegistryError(ModelCIError):
    """A registry request that cannot be satisfied: unknown version, no champion, a conflict."""


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
    """A thin, error-translating wrapper over the registry of one registered model.

    Reads from an MLflow server go through its REST API (:mod:`modelci.registry.rest`, no MLflow
    import); writes, and every call to a non-HTTP store, go through ``MlflowClient``, imported on
    first use. ``read_only``: refuse a local sqlite store that does not exist (MLflow would
    create it) instead of reading an empty registry into being.
    """

    def __init__(
        self, name: str, champion_alias: str, previous_alias: str, read_only: bool = False
    ) -> None:
        from modelci import tracking
        from modelci.registry.rest import RestReader

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        self.uri = tracking.tracking_uri()
        if read_only:
            _require_existing_store(self.uri)
        tracking.probe(self.uri)
        self.rest = RestReader(self.uri) if self.uri.startswith(("http://", "https://")) else None
        self.name = name
        self.champion_alias = champion_alias
        self.previous_alias = previous_alias

    @cached_property
    def client(self) -> Any:
        """``MlflowClient`` for this store (imports MLflow, seconds: only writes need it)."""
        import mlflow
        from mlflow import MlflowClient

        from modelci import tracking

        tracking.quiet_mlflow()
        mlflow.set_tracking_uri(self.uri)
        return MlflowClient(self.uri)

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
        if isinstance(mv, dict):  # a REST answer
            from modelci.registry.rest import tags_of

            return Version(
                name=str(mv["name"]),
                version=int(mv["version"]),
                run_id=str(mv.get("run_id") or ""),
                tags=tags_of(mv),
                aliases=tuple(mv.get("aliases", ())),
                created_ms=int(mv.get("creation_timestamp") or 0),
                source=str(mv.get("source") or ""),
            )
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
        search = self.rest.search_versions if self.rest else self.client.search_model_versions
        found = self.call(f"listing versions of {self.name!r}", search, query)
        return sorted((self._version(mv) for mv in found), key=lambda v: v.version)

    def eligible(self) -> list[Version]:
        """The versions the champion rule may pick (gate ``passed`` or ``forced``), oldest first."""
        return [v for v in self.versions() if v.gate in ELIGIBLE]

    def get(self, version: int | str) -> Version:
        try:
            number = int(version)
        except ValueError:
            raise RegistryError(f"{version!r} is not a version number") from None

        def fetch() -> Any:
            try:
                if self.rest:
                    return self.rest.get_version(self.name, str(number))
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
                if self.rest:
                    return self.rest.version_by_alias(self.name, alias)
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
        eligible = sorted(self.eligible(), key=lambda v: v.order)
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


def _require_existing_store(uri: str) -> None:
    """A read must not create a store: MLflow makes a missing sqlite file (and ``mlruns/``)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        where = uri.removeprefix("sqlite:///")
        setting = os.environ.get("MLFLOW_TRACKING_URI") or "unset"
        raise RegistryError(
            f"no MLflow registry to read: MLFLOW_TRACKING_URI is {setting} and {where} does not "
            "exist; set MLFLOW_TRACKING_URI to your tracking server"
        )


def _num(version: Version | None) -> int | None:
    return None if version is None else version.version


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_registry(params: Any, read_only: bool = False) -> Registry:
    """The registry of ``params.tracking.model_name`` with the configured aliases."""
    return Registry(
        params.tracking.model_name,
        params.registry.champion_alias,
        params.registry.previous_alias,
        read_only=read_only,
    )


def format_version(version: Version | None) -> str:
    if version is None:
        return "none"
    return f"version {version.version} (commit {version.commit[:12]})"


def newest_first(versions: Iterable[Version]) -> list[Version]:
    return sorted(versions, key=lambda v: v.order, reverse=True)
