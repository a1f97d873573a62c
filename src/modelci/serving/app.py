"""The serving app: a small raw ASGI application (no framework on the request path).

Endpoints: ``POST /predict``, ``POST /invocations`` (MLflow scoring protocol), ``GET /health``,
``GET /ready``, ``GET /metrics`` (Prometheus), ``GET /model``, ``GET /openapi.json``,
``POST /admin/reload`` and ``GET /admin/model`` (bearer token) and the Open Inference Protocol's
``/v2`` routes (:mod:`modelci.serving.v2`). With a separate admin listener (``--admin-port``)
``/admin/*`` and ``/metrics`` are served only there, and the public listener answers 404 for
them. Client mistakes get a 4xx JSON body
``{"error_code", "message", "problems"?}``; only a failure inside the model itself is a 500.

The served model is one immutable :class:`ServedModel` referenced by ``app.served``: a request
reads that reference once, so a reload swaps it atomically and in-flight requests finish on the
model they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from modelci import __version__
from modelci.errors import ModelCIError
from modelci.model_source import ModelInfo
from modelci.serving import defaults
from modelci.serving.input_monitor import InputMonitor
from modelci.serving.payload import (
    batch_from_body,
    batch_from_csv,
    batch_from_invocation,
    bound_json_structure,
    parse_paused,
)
from modelci.serving.predlog import PredictionLog
from modelci.serving.requestid import RecentIds, client_request_id, prediction_id, request_id
from modelci.serving.runtime import Prediction, Predictor
from modelci.serving.schema import Batch, InputError, InputSchema, RawBatch, short
from modelci.serving.workers import METRICS_DIR_ENV, in_worker, restarted_worker

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_orjson: Any
try:
    _orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - orjson is in the locked environment
    _orjson = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(body: bytes) -> Any:
    """Parse JSON strictly: NaN and Infinity literals are refused."""
    if _orjson is not None:
        return _orjson.loads(body)
    return json.loads(body, parse_constant=_reject_constant)


def dumps(payload: Any) -> bytes:
    if _orjson is not None:
        return bytes(_orjson.dumps(payload, option=_orjson.OPT_SERIALIZE_NUMPY))
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class ServedModel:
    """Everything a request needs, swapped as one reference on reload."""

    info: ModelInfo
    schema: InputSchema
    predictor: Predictor
    runtime_note: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def log_fields(self) -> dict[str, Any]:
        return {
            "model_version": self.info.version,
            "model_sha256": self.info.sha256,
            "runtime": self.predictor.runtime,
        }


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    max_rows: int = defaults.MAX_ROWS
    # Batches above this many rows run in a worker thread so /health keeps answering meanwhile;
    # smaller ones run inline, which is faster than a thread hop.
    inline_rows: int = 64
    # Bodies over large_body_bytes are large: each needs one of large_body_slots parse slots
    # (waiting at most large_body_wait seconds for one, else 503) and is parsed in a thread.
    large_body_bytes: int = defaults.LARGE_BODY_BYTES
    large_body_slots: int = defaults.LARGE_BODY_SLOTS
    large_body_wait: float = defaults.LARGE_BODY_WAIT
    admin_token: str | None = None
    poll_seconds: float = 0.0
    # The least time between two reloads asked for through POST /admin/reload (429 sooner).
    reload_interval: float = defaults.RELOAD_INTERVAL
    # GET /model on the public listener: "public" (digests, version, runtime, input schema) or
    # "full" (also the source URI, run id, git commit, metrics; GET /admin/model always is).
    model_info: str = "public"


class ReloadError(ModelCIError):
    """A reload the admin asked for cannot run; the message is the answer's reason."""


class _Metrics:
    LATENCY_BUCKETS = (
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        2.5, 5.0,
    )  # fmt: skip

    def __init__(self, shared_dir: str | None = None) -> None:
        """``shared_dir``: prometheus_client's multiprocess directory when this process is one
        of several workers; samples then go to files there and :meth:`exposition` sums them."""
        self.shared_dir = shared_dir
        if shared_dir is not None:
            from prometheus_client import values

            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        labels = ("path", "method", "status")
        self.requests = Counter(
            "modelci_http_requests", "HTTP requests served", labels, registry=self.registry
        )
        self.errors = Counter(
            "modelci_http_errors",
            "HTTP requests answered with an error, by error code",
            ("path", "status", "error_code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelci_http_request_duration_seconds",
            "Time from request start to the last response byte",
            ("path",),
            buckets=self.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter("modelci_predicted_rows", "Rows predicted", registry=self.registry)
        self.labels = Counter(
            "modelci_predictions", "Predicted labels (classifiers)", ("label",),
            registry=self.registry,
        )  # fmt: skip
        self.scores = Histogram(
            "modelci_prediction_score",
            "Positive-class probability (binary), top probability (multiclass) or predicted value",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=self.registry,
        )
        self.inflight = Gauge(
            "modelci_inflight_requests",
            "Requests being processed",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "modelci_model_info",
            "The served model (value 1; one series per worker pid with several workers)",
            ("version", "sha256", "runtime"),
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.connections_closed = Counter(
            "modelci_connections_closed",
            "Connections closed by the server for a timeout: header_timeout, body_timeout, idle",
            ("reason",),
            registry=self.registry,
        )
        self._served_labels: tuple[str, str, str] | None = None
        self.reloads = Counter(
            "modelci_model_reloads", "Model reload attempts", ("outcome",), registry=self.registry
        )
        self.large_bodies = Gauge(
            "modelci_large_bodies_active",
            "Requests holding a parse slot for a large body",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.worker_restarts = Counter(
            "modelci_worker_restarts",
            "Worker processes started in place of one that died",
            registry=self.registry,
        )
        self.duplicate_ids = Counter(
            "modelci_duplicate_request_ids",
            "Scored requests whose client X-Request-ID this worker saw recently (flagged in the "
            "prediction log)",
            registry=self.registry,
        )
        self.log_dropped = Gauge(
            "modelci_prediction_log_dropped",
            "Prediction log entries dropped because the writer fell behind",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def exposition(self) -> bytes:
        if self.shared_dir is None:
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, self.shared_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(combined))

    def serving(self, served: ServedModel) -> None:
        if self._served_labels is not None:
            if self.shared_dir is None:
                self.model_info.clear()
            else:  # multiprocess mode cannot clear a series: zero the old one
                self.model_info.labels(*self._served_labels).set(0)
        self._served_labels = (
            served.info.version or "",
            served.info.sha256,
            served.predictor.runtime,
        )
        self.model_info.labels(*self._served_labels).set(1)

    def observe_prediction(self, prediction: Prediction, classifier: bool) -> None:
        """Count a batch with one increment per distinct label and per score bucket, not per
        row (one increment per row took 21 ms for 10,000 rows, 40 ms in multiprocess mode, where
        each is a locked write to a shared file; see docs/benchmarks.md)."""
        rows = len(prediction.labels)
        if not rows:
            return
        self.rows.inc(rows)
        if classifier:
            distinct, counts = np.unique(prediction.labels, return_counts=True)
            for label, count in zip(distinct.tolist(), counts.tolist(), strict=True):
                self.labels.labels(str(label)).inc(count)
        _observe_many(self.scores, prediction.scores)


def _observe_many(histogram: Histogram, amounts: np.ndarray) -> None:
    """``histogram.observe`` of every amount, as one update per bucket and one of the sum.

    prometheus_client (0.26) has no batch observe; this updates the same value objects its
    ``observe`` does (``_sum`` and the non-cumulative ``_buckets``, one per upper bound, +Inf
    last), so the exposition is the same, in one process and in multiprocess mode, where each
    value is a slot in the worker's file. The bucket is the first bound >= the amount (``le``),
    which ``searchsorted(side="left")`` gives; NaN sorts past +Inf and, as in ``observe``,
    lands in no bucket. The sum adds the batch's total at once, so it may differ from
    one-at-a-time addition in the last bits of a float."""
    bounds = np.asarray(histogram._upper_bounds, dtype="float64")
    values = np.asarray(amounts, dtype="float64")
    per_bucket = np.bincount(np.searchsorted(bounds, values), minlength=len(bounds) + 1)
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, per_bucket[: len(bounds)].tolist(), strict=True):
        if count:
            bucket.inc(count)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ServingApp:
    """The ASGI application; ``loader`` builds a fresh ServedModel for reloads."""

    def __init__(
        self,
        served: ServedModel,
        settings: Settings | None = None,
        loader: Callable[[], ServedModel] | None = None,
        current_version: Callable[[], str | None] | None = None,
        prediction_log: PredictionLog | None = None,
        on_admin_reload: Callable[[], None] | None = None,
        admin_port: int | None = None,
    ) -> None:
        """``admin_port``: the local port of a separate admin listener, which alone serves
        ``/admin/*`` and ``/metrics`` (None: every endpoint on every listener)."""
        self.served = served
        self.settings = settings or Settings()
        self.loader = loader
        self.current_version = current_version
        self.prediction_log = prediction_log
        self.on_admin_reload = on_admin_reload
        self.draining = False
        self.metrics = _Metrics(os.environ.get(METRICS_DIR_ENV) if in_worker() else None)
        if restarted_worker():
            self.metrics.worker_restarts.inc()
        self.input_monitor = InputMonitor(
            served.schema.fields, served.predictor.classes, self.metrics.registry,
            ready=lambda: not self.draining,
        )  # fmt: skip
        self._serving(served)
        self._reload_lock: asyncio.Lock | None = None
        self._last_reload = -math.inf  # time.monotonic() when the last reload started
        self._large_slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recent_ids = RecentIds()
        self._openapi: tuple[ServedModel, bytes] | None = None
        # (imported here: the v2 module builds on this one)
        from modelci.serving.v2 import OpenInference

        self.v2 = OpenInference(self)
        self._routes: dict[str, dict[str, Callable[..., Awaitable[tuple[int, str | None]]]]] = {
            "/predict": {"POST": self._predict},
            "/invocations": {"POST": self._invocations},
            "/health": {"GET": self._health},
            "/ready": {"GET": self._ready},
            "/metrics": {"GET": self._metrics},
            "/model": {"GET": self._model},
            "/openapi.json": {"GET": self._openapi_json},
            "/admin/reload": {"POST": self._admin_reload},
            "/admin/model": {"GET": self._admin_model},
            **self.v2.routes(),
        }
        self.admin_port = admin_port
        admin = {
            p: r for p, r in self._routes.items() if p == "/metrics" or p.startswith("/admin/")
        }
        # the routes of the admin listener, and of the public one when there is an admin one
        self._split_routes = (admin, {p: r for p, r in self._routes.items() if p not in admin})

    # -- ASGI entry point -------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        method = scope["method"]
        given = _header(scope, b"x-request-id")
        scope["modelci.client_request_id"] = client_request_id(given)
        scope["modelci.request_id"] = rid = request_id(given)
        send = self._framed(send, rid)
        routes = self._routes_of(scope)
        route = routes.get(path)
        label = path if route is not None else "other"
        if self.v2.owns(path):
            send = self.v2.errors(send)
            admin = routes is self._split_routes[0]  # the admin listener serves no model route
            if route is None and not admin and (found := self.v2.model_route(path)) is not None:
                label, route = found
        self.metrics.inflight.inc()
        try:
            if route is None:
                status, code = await self._error(
                    send, InputError(404, "NOT_FOUND", f"no such endpoint: {short(path, 80)}")
                )
            elif method not in route:
                allowed = ", ".join(route)
                status, code = await self._error(
                    send,
                    InputError(405, "METHOD_NOT_ALLOWED", f"{short(path, 80)} accepts {allowed}"),
                    [(b"allow", allowed.encode())],
                )
            else:
                status, code = await route[method](scope, receive, send)
        finally:
            self.metrics.inflight.dec()
        method_label = method if route is not None and method in route else "other"
        self.metrics.requests.labels(label, method_label, str(status)).inc()
        if code is not None:
            self.metrics.errors.labels(label, str(status), code).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)

    def _routes_of(
        self, scope: Scope
    ) -> dict[str, dict[str, Callable[..., Awaitable[tuple[int, str | None]]]]]:
        """The routes of the listener that accepted this request (by its local port)."""
        if self.admin_port is None:
            return self._routes
        server = scope.get("server")
        admin, public = self._split_routes
        return admin if server is not None and server[1] == self.admin_port else public

    def _framed(self, send: Send, rid: str) -> Send:
        """``send`` adding ``X-Request-ID`` to the response, and ``Connection: close`` while
        draining (the client's next request then opens a connection to another replica)."""

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                if self.draining:
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        return framed

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in list(self._tasks):
                    task.cancel()
                if self.prediction_log is not None:
                    await asyncio.to_thread(self.prediction_log.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _serving(self, served: ServedModel) -> None:
        self.metrics.serving(served)
        self.input_monitor.model_loaded(
            served.schema.fields, served.predictor.classes, served.info.version, served.loaded_at
        )

    def _start_background(self) -> None:
        self._reload_lock = asyncio.Lock()
        self._spawn(self.input_monitor.run_flusher())
        loop = asyncio.get_running_loop()
        if self.loader is not None:
            # Not available off the main thread (an embedded server); reload then via the API.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._spawn_reload, "SIGHUP")
        if self.settings.poll_seconds > 0 and self.current_version is not None:
            self._spawn(self._poll())

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_reload(self, reason: str) -> None:
        self._spawn(self._reload_logged(reason))

    # -- reload ---------------------------------------------------------------------------
    async def reload(self, reason: str) -> ServedModel:
        """Load the model again (in a thread) and swap it in; the old one keeps serving
        until the swap, and whatever it was serving finishes on it."""
        if self.loader is None:
            raise ReloadError("this server has no model source to reload from")
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        if self._reload_lock.locked():
            raise ReloadError("a reload is already running")
        self._last_reload = time.monotonic()
        async with self._reload_lock:
            try:
                fresh = await asyncio.to_thread(self.loader)
            except Exception as error:
                self.metrics.reloads.labels("failed").inc()
                raise ReloadError(
                    str(error).splitlines()[0] if str(error) else repr(error)
                ) from None
            old = self.served
            self.served = fresh  # the atomic swap
            self._serving(fresh)
            self.metrics.reloads.labels("ok").inc()
            log.info(
                "reloaded (%s): version %s -> %s, sha256 %s -> %s",
                reason,
                old.info.version,
                fresh.info.version,
                old.info.sha256[:12],
                fresh.info.sha256[:12],
            )
            return fresh

    async def _reload_logged(self, reason: str) -> None:
        try:
            await self.reload(reason)
        except ReloadError as error:
            log.warning("reload (%s) failed: %s", reason, error)

    async def _poll(self) -> None:
        if self.current_version is None:
            return
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                version = await asyncio.to_thread(self.current_version)
            except Exception as error:
                log.warning("polling the registry failed: %s", error)
                continue
            if version is not None and version != self.served.info.version:
                await self._reload_logged(f"alias now points at version {version}")

    # -- responses --------------------------------------------------------------------------
    @staticmethod
    async def _send(
        send: Send,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _json(self, send: Send, status: int, payload: Any) -> tuple[int, str | None]:
        await self._send(send, status, dumps(payload))
        return status, None

    async def _error(
        self, send: Send, error: InputError, headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, str | None]:
        extra = list(headers or [])
        if error.status == 413:
            extra.append((b"connection", b"close"))
        await self._send(send, error.status, dumps(error.body()), headers=extra)
        return error.status, error.code

    # -- request bodies ---------------------------------------------------------------------
    @staticmethod
    def _media_type(scope: Scope) -> bytes:
        content_type = (_header(scope, b"content-type") or b"").lower()
        return content_type.split(b";", 1)[0].strip()

    @staticmethod
    def _unsupported(scope: Scope, expected: str) -> InputError:
        content_type = _header(scope, b"content-type")
        shown = short(content_type.decode("latin-1"), 60) if content_type else "none"
        return InputError(
            415, "UNSUPPORTED_MEDIA_TYPE", f"expected Content-Type {expected}, got {shown}"
        )

    async def _read_body(self, scope: Scope, receive: Receive, stack: AsyncExitStack) -> bytes:
        """The whole body, at most ``max_body_bytes`` (413 beyond: from ``Content-Length``
        before reading, else while reading). A body over ``large_body_bytes`` first takes a
        parse slot, held in ``stack`` until the request is done, so at most
        ``large_body_slots`` large bodies are in memory at once."""
        limit = self.settings.max_body_bytes
        large = self.settings.large_body_bytes
        declared = _header(scope, b"content-length")
        expected = int(declared) if declared is not None and declared.isdigit() else 0
        if expected > limit:
            raise InputError(
                413,
                "PAYLOAD_TOO_LARGE",
                f"body of {expected} bytes over the limit of {limit} bytes",
            )
        slotted = expected > large
        if slotted:
            await self._parse_slot(stack)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InputError(413, "PAYLOAD_TOO_LARGE", f"body over the limit of {limit} bytes")
            if size > large and not slotted:
                await self._parse_slot(stack)
                slotted = True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        if not body or body.isspace():  # (strip() would copy a large body)
            raise InputError(400, "BAD_REQUEST", "empty body: expected JSON or CSV")
        return body

    async def _parse_slot(self, stack: AsyncExitStack) -> None:
        """Take one of the large-body parse slots, waiting at most ``large_body_wait``."""
        slots = self._large_slots
        if slots is None:
            slots = self._large_slots = asyncio.Semaphore(self.settings.large_body_slots)
        wait = self.settings.large_body_wait
        if slots.locked():
            if wait <= 0:
                raise _BusyError(self.settings.large_body_slots)
            try:
                await asyncio.wait_for(slots.acquire(), wait)
            except TimeoutError:
                raise _BusyError(self.settings.large_body_slots) from None
        else:
            await slots.acquire()
        self.metrics.large_bodies.inc()
        stack.callback(self.metrics.large_bodies.dec)
        stack.callback(slots.release)

    def _parser(
        self, scope: Scope, schema: InputSchema, invocation: bool = False
    ) -> Callable[[bytes], RawBatch]:
        """The function turning this request's body into a RawBatch: JSON on both endpoints,
        CSV on /invocations (as MLflow); 415 for another content type, before reading."""
        media = self._media_type(scope)
        rows = self.settings.max_rows
        if media == b"application/json":
            to_batch = batch_from_invocation if invocation else batch_from_body

            def from_json(body: bytes) -> RawBatch:
                bound_json_structure(body, len(schema.fields), rows)
                return parse_paused(len(body), lambda: to_batch(_parse_json(body), schema, rows))

            return from_json
        if invocation and media == b"text/csv":
            return lambda body: batch_from_csv(body, schema, rows)
        raise self._unsupported(
            scope, "application/json or text/csv" if invocation else "application/json"
        )

    # -- handlers ---------------------------------------------------------------------------
    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        return await self._scored(scope, receive, send, self._parser, _predict_payload)

    async def _invocations(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        return await self._scored(
            scope, receive, send, self._invocation_parser, _invocations_payload
        )

    def _invocation_parser(self, scope: Scope, schema: InputSchema) -> Callable[[bytes], RawBatch]:
        return self._parser(scope, schema, invocation=True)

    async def _scored(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        parser: Callable[[Scope, InputSchema], Callable[[bytes], RawBatch]],
        to_payload: Callable[[ServedModel, Prediction, str], dict[str, Any]],
    ) -> tuple[int, str | None]:
        """Read the body, predict on the model being served now, answer with ``to_payload``;
        ``parser`` gives the function turning this request's body into rows (415 before
        reading if the content type is not one it takes)."""
        served = self.served
        try:
            async with AsyncExitStack() as stack:
                parse = parser(scope, served.schema)
                body = await self._read_body(scope, receive, stack)
                if len(body) > self.settings.large_body_bytes:
                    # parsing, validation and prediction of a large body off the event loop
                    batch, prediction = await asyncio.to_thread(_parse_score, served, parse, body)
                else:
                    raw = parse(body)
                    del body
                    if raw.rows > self.settings.inline_rows:
                        batch, prediction = await asyncio.to_thread(_score, served, raw)
                    else:
                        batch, prediction = _score(served, raw)
        except InputError as error:
            self.input_monitor.reject(error)
            return await self._error(send, error)
        except _BusyError as busy:
            await self._send(
                send, 503, dumps(busy.body()),
                headers=[(b"retry-after", b"1"), (b"connection", b"close")],
            )  # fmt: skip
            return 503, busy.code
        except _ClientGoneError:
            return 499, "CLIENT_CLOSED_REQUEST"
        except _ModelFailureError as failure:
            return await self._model_failure(send, failure)
        pid = prediction_id()
        payload = to_payload(served, prediction, pid)
        client = scope["modelci.client_request_id"]
        duplicate = client is not None and self._recent_ids.seen(client)
        if duplicate:
            self.metrics.duplicate_ids.inc()
        self._after(served, batch, prediction, scope["modelci.request_id"], pid, duplicate)
        await self._send(send, 200, dumps(payload), headers=[(b"x-prediction-id", pid.encode())])
        return 200, None

    async def _model_failure(
        self, send: Send, failure: _ModelFailureError
    ) -> tuple[int, str | None]:
        error = failure.error
        log.error("prediction failed: %s: %s", type(error).__name__, short(str(error), 300))
        body = {"error_code": "INTERNAL_ERROR", "message": "the model failed on this input"}
        await self._send(send, 500, dumps(body))
        return 500, "INTERNAL_ERROR"

    def _after(
        self,
        served: ServedModel,
        batch: Batch,
        prediction: Prediction,
        rid: str,
        pid: str,
        duplicate: bool,
    ) -> None:
        self.metrics.observe_prediction(prediction, served.predictor.classes is not None)
        self.input_monitor.observe(batch, prediction.scores, prediction.labels)
        log = self.prediction_log
        if log is not None and log.sampled():
            log.submit(served.log_fields, batch, prediction, rid, pid, duplicate)
            self.metrics.log_dropped.set(log.dropped)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        return await self._json(send, 200, {"status": "ok"})

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        if self.draining:
            await self._send(send, 503, dumps({"status": "draining", "message": "shutting down"}))
            return 503, "DRAINING"
        served = self.served
        return await self._json(
            send,
            200,
            {
                "status": "ready",
                "model_version": served.info.version,
                "model_sha256": served.info.sha256,
                "onnx_sha256": served.info.onnx_sha256,
                "runtime": served.predictor.runtime,
            },
        )

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        body = self.metrics.exposition()
        await self._send(send, 200, body, content_type=CONTENT_TYPE_LATEST.encode())
        return 200, None

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        return await self._json(send, 200, _describe(self.served, self.settings.model_info))

    async def _admin_model(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        refused = await self._refuse_admin(scope, send)
        if refused is not None:
            return refused
        return await self._json(send, 200, _describe(self.served, "full"))

    async def _openapi_json(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        served = self.served
        if self._openapi is None or self._openapi[0] is not served:
            from modelci.serving.openapi import openapi_document

            document = openapi_document(served.schema, self.settings.max_rows)
            self.v2.describe(document, served)
            if self.admin_port is not None:  # served on the admin listener only
                del document["paths"]["/metrics"]
            self._openapi = (served, dumps(document))
        await self._send(send, 200, self._openapi[1])
        return 200, None

    async def _refuse_admin(self, scope: Scope, send: Send) -> tuple[int, str | None] | None:
        """The answer refusing an ``/admin/*`` request without the bearer token (None: it has
        it): 403 when no token is set (the endpoints are off), else 401."""
        token = self.settings.admin_token
        if not token:
            return await self._error(
                send,
                InputError(
                    403, "FORBIDDEN", "admin endpoints disabled (MODELCI_ADMIN_TOKEN unset)"
                ),
            )
        given = _header(scope, b"authorization") or b""
        if not hmac.compare_digest(given, b"Bearer " + token.encode()):
            return await self._error(
                send,
                InputError(401, "UNAUTHENTICATED", "missing or wrong bearer token"),
                [(b"www-authenticate", b"Bearer")],
            )
        return None

    def _reload_wait(self) -> float | None:
        """Seconds before ``POST /admin/reload`` may start a reload (None: now). One reload
        runs at a time, and admin reloads start at least ``reload_interval`` apart."""
        lock = self._reload_lock
        elapsed = time.monotonic() - self._last_reload
        remaining = self.settings.reload_interval - elapsed
        if lock is not None and lock.locked():
            return max(remaining, 1.0)
        return remaining if remaining > 0 else None

    async def _admin_reload(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        refused = await self._refuse_admin(scope, send)
        if refused is not None:
            return refused
        wait = self._reload_wait()
        if wait is not None:
            seconds = math.ceil(wait)
            running = self._reload_lock is not None and self._reload_lock.locked()
            why = (
                "a reload is running"
                if running
                else f"the last reload started less than {self.settings.reload_interval:g} s ago"
            )
            return await self._error(
                send,
                InputError(429, "TOO_MANY_RELOADS", f"{why}; retry in {seconds} s"),
                [(b"retry-after", str(seconds).encode())],
            )
        try:
            fresh = await self.reload("POST /admin/reload")
        except ReloadError as error:
            body = {
                "error_code": "RELOAD_FAILED",
                "message": f"reload failed, still serving the previous model: {error}",
                "model": self.served.info.to_dict(),
            }
            await self._send(send, 502, dumps(body))
            return 502, "RELOAD_FAILED"
        if self.on_admin_reload is not None:
            self.on_admin_reload()  # e.g. the other workers of this server
        return await self._json(send, 200, {"reloaded": True, "model": fresh.info.to_dict()})


def _describe(served: ServedModel, detail: str) -> dict[str, Any]:
    """``GET /model``'s body: with ``detail`` "public" only what a client needs (the digests,
    version, runtime and input schema); "full" adds where the model came from (source URI,
    run id, git commit), its metrics, the runtime's notes and modelci's version."""
    info = served.info
    payload: dict[str, Any] = {
        "version": info.version,
        "sha256": info.sha256,
        "onnx_sha256": info.onnx_sha256,
        "runtime": served.predictor.runtime,
        "classes": served.predictor.classes,
        "inputs": served.schema.describe(),
    }
    if detail == "full":
        payload.update(info.to_dict())
        payload.update(
            {
                "runtime_note": served.runtime_note,
                "loaded_at": served.loaded_at,
                "modelci_version": __version__,
            }
        )
    return payload


def _parse_json(body: bytes) -> Any:
    try:
        return loads(body)
    except (ValueError, RecursionError) as error:
        raise InputError(400, "BAD_REQUEST", f"malformed JSON: {short(str(error), 120)}") from None


def _parse_score(
    served: ServedModel, parse: Callable[[bytes], RawBatch], body: bytes
) -> tuple[Batch, Prediction]:
    return _score(served, parse(body))


def _score(served: ServedModel, raw: RawBatch) -> tuple[Batch, Prediction]:
    batch = served.schema.validate(raw)
    try:
        return batch, served.predictor.predict(batch)
    except Exception as error:
        raise _ModelFailureError(error) from None


def _predict_payload(served: ServedModel, prediction: Prediction, pid: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"predictions": prediction.labels.tolist()}
    if prediction.probabilities is not None:
        payload["probabilities"] = prediction.probabilities.tolist()
        payload["classes"] = served.predictor.classes
    payload["model_version"] = served.info.version
    payload["model_sha256"] = served.info.sha256
    payload["prediction_id"] = pid  # row i's id is f"{pid}-{i}" (see requestid)
    return payload


def _invocations_payload(served: ServedModel, prediction: Prediction, pid: str) -> dict[str, Any]:
    # MLflow's pyfunc calls predict(): labels for classifiers, values for regressors. MLflow's
    # shape exactly: the prediction id is only in the X-Prediction-ID header.
    return {"predictions": prediction.labels.tolist()}


class _ClientGoneError(Exception):
    pass


class _BusyError(Exception):
    """Every large-body parse slot stayed taken: 503, try again."""

    code = "BUSY"

    def __init__(self, slots: int) -> None:
        super().__init__(slots)
        self.slots = slots

    def body(self) -> dict[str, Any]:
        return {
            "error_code": self.code,
            "message": f"all {self.slots} parse slots for large bodies are taken; retry shortly",
        }


class _ModelFailureError(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
