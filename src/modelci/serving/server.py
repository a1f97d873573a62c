"""Load the model, build the app and run it on uvicorn with reload and drain-on-SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from modelci import model_source
from modelci.layout import PARAMS
from modelci.serving import defaults, workers
from modelci.serving.app import ServedModel, ServingApp, Settings
from modelci.serving.exported import find_export
from modelci.serving.predlog import PredictionLog
from modelci.serving.runtime import (
    OnnxPredictor,
    Predictor,
    Runtime,
    RuntimeUnavailableError,
    build_predictor,
)
from modelci.serving.schema import InputSchema

log = logging.getLogger(__name__)

# Seconds a connection idle when a drain starts stays open for a request in flight on the wire.
DRAIN_IDLE_GRACE = 0.5


@dataclass(frozen=True)
class ServeConfig:
    model_uri: str
    params_path: Path = PARAMS
    runtime: Runtime = "auto"
    host: str = "127.0.0.1"
    port: int = 8080
    # a separate listener for /admin/* and /metrics (None: they are on the public one)
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    tracking_uri: str | None = None
    expected_sha256: str | None = None
    expected_onnx_sha256: str | None = None
    metrics_file: Path | None = None
    settings: Settings = field(default_factory=Settings)
    prediction_log: Path | None = None
    log_sample_rate: float = 0.1
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 3
    drain_seconds: float = 0.0
    graceful_timeout: float = 30.0
    threads: int = 1
    batch_threads: int = 1  # intra-op threads for a large batch (OnnxPredictor)
    workers: int = 1
    header_timeout: float = defaults.HEADER_TIMEOUT
    body_timeout: float = defaults.BODY_TIMEOUT
    keepalive_timeout: float = defaults.KEEPALIVE_TIMEOUT
    max_connections: int = defaults.MAX_CONNECTIONS
    max_client_connections: int = defaults.MAX_CLIENT_CONNECTIONS
    access_log: bool = False


def load_served(config: ServeConfig) -> ServedModel:
    """Resolve and verify the model; serve its build-time ONNX export when one matches it (no
    scikit-learn import, no conversion), else load it and pick the runtime; one warm-up
    prediction either way.

    The export's manifest vouches for nothing (whoever edits ``model.onnx`` can rewrite it), so
    when the model's bytes are pinned (``--sha256``, or always from a registry or run) the export
    is served only when its own sha256 is pinned too (``--onnx-sha256`` or the version's tag),
    and one that differs from its pin stops the start."""
    from modelci.config import load_service_params

    params = load_service_params(config.params_path)
    schema = InputSchema.from_params(params.data)
    data, info = model_source.fetch(config.model_uri, config.tracking_uri, config.expected_sha256)
    if config.metrics_file is not None and not info.metrics:
        info = replace(info, metrics=model_source.read_metrics(config.metrics_file))
    predictor: Predictor | None = None
    why_not = "the scikit-learn runtime was asked for (--runtime sklearn)"
    onnx_pin = config.expected_onnx_sha256 or info.pinned_onnx_sha256
    model_pinned = bool(config.expected_sha256) or info.kind != "file"
    if config.runtime != "sklearn":
        if model_pinned and not onnx_pin:
            export, why_not = None, "the build-time export is not pinned (--onnx-sha256)"
        else:
            export, why_not = find_export(
                info.kind, info.uri, info.run_id, info.sha256, config.tracking_uri
            )
        if export is not None and onnx_pin and export.sha256 != onnx_pin:
            raise model_source.ModelSourceError(
                f"{info.uri}: the build-time ONNX export has sha256 {export.sha256}, not the "
                f"pinned {onnx_pin}; the export was modified or replaced, refusing to start"
            )
        if export is not None:
            try:
                predictor = OnnxPredictor(export.onnx, export.classes, schema, config.batch_threads)
                note = f"ONNX Runtime ({export.note})"
            except RuntimeUnavailableError as error:  # e.g. an image built without onnxruntime
                if config.runtime == "onnx":
                    raise
                why_not = str(error)
    if predictor is None:
        require_model_loader(info.uri, why_not)
        from modelci.modelfile import load_model_bytes

        model = load_model_bytes(data, info.uri, params.trusted_types)
        if config.threads > 0:
            from threadpoolctl import threadpool_limits

            # Single-row requests are slower with an OpenMP/BLAS pool than without one (much
            # slower on a busy machine). threadpoolctl limits only libraries already loaded, so
            # this runs after the model (and with it scikit-learn's OpenMP runtime) is loaded.
            threadpool_limits(limits=config.threads)
        predictor, note = build_predictor(model, schema, config.runtime, config.batch_threads)
        if config.runtime != "sklearn" and predictor.runtime == "onnx":
            note += f"; converted at start-up: {why_not}"
    predictor.predict(schema.columns_from_records(schema.example_rows(1)))  # warm-up
    info = replace(
        info, onnx_sha256=predictor.sha256 if isinstance(predictor, OnnxPredictor) else None
    )
    return ServedModel(info=info, schema=schema, predictor=predictor, runtime_note=note)


def require_model_loader(uri: str, why_not: str) -> None:
    """Stop the start, saying why, where the model itself cannot be loaded because scikit-learn
    or skops is not installed: the serving image's default (onnx) variant holds neither and
    serves only a verified build-time export."""
    missing = [
        name
        for module, name in (("sklearn", "scikit-learn"), ("skops", "skops"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise RuntimeUnavailableError(
            f"{uri}: no verified ONNX export to serve ({why_not}), and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed to "
            "load the model itself; build the serving image's scikit-learn variant "
            "(--build-arg SERVE_VARIANT=sklearn, docs/deploy.md)"
        )


def _alias_poller(config: ServeConfig) -> Callable[[], str | None] | None:
    """For ``models:/NAME@ALIAS``: a function returning the alias's current version."""
    ref = model_source.parse(config.model_uri)
    if ref.kind != "registry" or ref.alias is None:
        return None

    def current_version() -> str | None:
        return model_source.resolve(ref, config.tracking_uri).version

    return current_version


def build_app(
    config: ServeConfig, served: ServedModel | None = None, admin_port: int | None = None
) -> ServingApp:
    """The app serving ``served`` (loaded from ``config`` when not given); ``admin_port``: the
    bound port of the admin listener, when there is one."""
    served = served if served is not None else load_served(config)
    log = None
    if config.prediction_log is not None:
        log = PredictionLog(
            config.prediction_log,
            sample_rate=config.log_sample_rate,
            max_bytes=config.log_max_bytes,
            backups=config.log_backups,
        )
    return ServingApp(
        served,
        config.settings,
        loader=lambda: load_served(config),
        current_version=_alias_poller(config),
        prediction_log=log,
        on_admin_reload=workers.reload_siblings,
        admin_port=admin_port,
    )


def _server_class() -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On SIGTERM: /ready turns 503 at once, new requests are still served for
        ``drain_seconds`` (so a load balancer stops sending), then uvicorn stops accepting
        connections and waits for in-flight requests before exiting 0."""

        def __init__(self, config: Any, app: ServingApp, drain_seconds: float) -> None:
            super().__init__(config)
            self.serving_app = app
            self.drain_seconds = drain_seconds

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
                return
            if self.serving_app.draining:
                return
            self.serving_app.draining = True
            log.info("draining in-flight requests")
            self._close_idle()
            if self.drain_seconds > 0:
                timer = threading.Timer(self.drain_seconds, self._exit)
                timer.daemon = True
                timer.start()
            else:
                self._exit()

        def _close_idle(self) -> None:
            """Connections between requests close after a short grace (a request that arrives
            meanwhile is answered with ``Connection: close``, like every response now)."""
            try:  # signal handlers run on the event loop's (main) thread
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            grace = min(float(self.config.timeout_keep_alive), DRAIN_IDLE_GRACE)
            for connection in list(self.server_state.connections):
                drain = getattr(connection, "drain", None)
                if drain is not None:
                    loop.call_soon_threadsafe(drain, grace)

        def _exit(self) -> None:
            self.should_exit = True

    return DrainingServer


def _run_one(
    config: ServeConfig, socks: list[socket.socket], served: ServedModel | None = None
) -> int:
    """One server process: run uvicorn on ``socks`` (the public listener, then the admin one
    when there is one) serving ``served``."""
    import uvicorn
    from prometheus_client import disable_created_metrics

    from modelci.serving.connections import ClientSlots, ReadTimeouts, timed_protocol

    disable_created_metrics()  # type: ignore[no-untyped-call] # no *_created series: half the /metrics size, nothing lost
    admin = socks[1].getsockname() if len(socks) > 1 else None
    app = build_app(config, served, admin[1] if admin is not None else None)
    served = app.served
    protocol = timed_protocol(
        ReadTimeouts(config.header_timeout, config.body_timeout),
        lambda reason: app.metrics.connections_closed.labels(reason).inc(),
        ClientSlots(config.max_client_connections),
    )
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=protocol,
        lifespan="on",
        log_config=None,  # records go to the handler of modelci.logs
        log_level="warning",
        access_log=config.access_log,
        server_header=False,
        date_header=False,
        # uvicorn hands it to loop.call_later: fractions of a second work
        timeout_keep_alive=config.keepalive_timeout,  # type: ignore[arg-type]
        limit_concurrency=config.max_connections,
        timeout_graceful_shutdown=int(config.graceful_timeout),
    )
    if config.access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = _server_class()(uv_config, app, config.drain_seconds)
    log.info(
        "%s (version %s, sha256 %s, runtime %s) on http://%s:%s%s (pid %s)",
        served.info.uri,
        served.info.version,
        served.info.sha256[:12],
        served.predictor.runtime,
        config.host,
        socks[0].getsockname()[1],
        "" if admin is None else f", admin and metrics on http://{admin[0]}:{admin[1]}",
        os.getpid(),
    )
    server.run(sockets=socks)
    return 0


def serve(config: ServeConfig) -> int:
    addresses = [(config.host, config.port)]
    if config.admin_port is not None:
        addresses.append((config.admin_host, config.admin_port))
    with contextlib.ExitStack() as stack:
        if config.workers <= 1:
            # Bound here, not by uvicorn: a taken port is one clear error before anything is
            # printed.
            socks = [stack.enter_context(workers.exclusive_socket(*a)) for a in addresses]
            return _run_one(config, socks)
        # Loaded once, before forking: a bad model fails here with its own message, and the
        # workers share the loaded model's memory pages. Nothing loaded runs threads yet
        # (threadpool limits and ONNX Runtime's single-threaded session), so forking is safe.
        served = load_served(config)
        reserved = [stack.enter_context(workers.reserve_port(*a)) for a in addresses]
        bound = [
            (host, s.getsockname()[1]) for (host, _), s in zip(addresses, reserved, strict=True)
        ]
        return workers.run_workers(config.workers, bound, lambda own: _run_one(config, own, served))
