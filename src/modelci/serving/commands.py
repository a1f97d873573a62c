"""``modelci serve``: argparse only here; the server is imported when the command runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.serving.server import ServeConfig

from modelci.layout import DEFAULT_PATHS
from modelci.logs import FORMATS
from modelci.options import DEFAULT_PARAMS, add_params
from modelci.serving import defaults

ENV_PREFIX = "MODELCI_"


def _env(name: str, default: str | None) -> str | None:
    """``MODELCI_<name>`` or ``default``, as a string: argparse applies the option's ``type`` to
    a string default only when ``serve`` runs, so a malformed variable is a usage error of
    ``modelci serve`` (exit 2) instead of a crash of every command while building the parser."""
    return os.environ.get(ENV_PREFIX + name, default)


def register(sub: Any) -> None:
    help_text = "serve the champion model (or a model URI or local file) over HTTP"
    parser = sub.add_parser(
        "serve",
        help=help_text,
        description=help_text + ". Every option can also be set with the environment variable "
        "shown; the admin token for POST /admin/reload is read only from MODELCI_ADMIN_TOKEN.",
    )
    add = parser.add_argument
    add(
        "--model",
        default=_env("MODEL_URI", None),
        metavar="URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID or a .skops path "
        "(MODELCI_MODEL_URI; default models:/<tracking.model_name>@<registry.champion_alias>)",
    )
    add_params(parser, "the input schema (data.columns)",
               os.environ.get(ENV_PREFIX + "PARAMS", DEFAULT_PARAMS), "MODELCI_PARAMS")  # fmt: skip
    add("--host", default=_env("HOST", "127.0.0.1"), help="bind address (MODELCI_HOST)")
    add("--port", type=int, default=_env("PORT", os.environ.get("PORT") or "8080"),
        help="port (MODELCI_PORT, else PORT as Cloud Run and the image set it)")  # fmt: skip
    add("--admin-port", type=int, default=_env("ADMIN_PORT", None), metavar="N",
        help="serve /admin/* and /metrics on this port only (the public port answers 404 for "
        "them); default: on the public port (MODELCI_ADMIN_PORT)")  # fmt: skip
    add("--admin-host", default=_env("ADMIN_HOST", "127.0.0.1"),
        help="bind address of --admin-port (MODELCI_ADMIN_HOST)")  # fmt: skip
    add("--model-info", choices=defaults.MODEL_INFO, default=_env("MODEL_INFO", "public"),
        help="what GET /model tells: public (digests, version, runtime, input schema) or full "
        "(also source URI, run id, git commit, metrics); GET /admin/model is always full "
        "(MODELCI_MODEL_INFO)")  # fmt: skip
    add("--reload-interval", type=float,
        default=_env("RELOAD_INTERVAL", str(defaults.RELOAD_INTERVAL)),
        help="seconds between two POST /admin/reload (429 with Retry-After sooner) "
        "(MODELCI_RELOAD_INTERVAL)")  # fmt: skip
    add(
        "--runtime",
        choices=("auto", "sklearn", "onnx"),
        default=_env("RUNTIME", "auto"),
        help="auto: ONNX Runtime when the model converts and matches scikit-learn "
        "(MODELCI_RUNTIME)",
    )
    add("--sha256", default=_env("MODEL_SHA256", None), metavar="HEX",
        help="refuse a model whose sha256 differs (MODELCI_MODEL_SHA256)")  # fmt: skip
    add("--onnx-sha256", default=_env("ONNX_SHA256", None), metavar="HEX",
        help="the build-time ONNX export's sha256: with the model pinned, the export is "
        "served only when pinned too; a mismatch is refused at start "
        "(MODELCI_ONNX_SHA256)")  # fmt: skip
    add("--metrics-file", default=_env("METRICS_FILE", None), metavar="FILE",
        help="metrics /model shows for a local file (default: ./metrics.json)")  # fmt: skip
    add("--max-body-bytes", type=int, default=_env("MAX_BODY_BYTES", str(defaults.MAX_BODY_BYTES)),
        help="larger bodies get 413 (MODELCI_MAX_BODY_BYTES)")  # fmt: skip
    add("--max-rows", type=int, default=_env("MAX_ROWS", str(defaults.MAX_ROWS)),
        help="more rows per request get 413 (MODELCI_MAX_ROWS)")  # fmt: skip
    add("--large-body-bytes", type=int,
        default=_env("LARGE_BODY_BYTES", str(defaults.LARGE_BODY_BYTES)),
        help="bodies over this size are parsed in a thread and need a parse slot "
        "(MODELCI_LARGE_BODY_BYTES)")  # fmt: skip
    add("--large-body-slots", type=int,
        default=_env("LARGE_BODY_SLOTS", str(defaults.LARGE_BODY_SLOTS)),
        help="large bodies read and parsed at once, per worker "
        "(MODELCI_LARGE_BODY_SLOTS)")  # fmt: skip
    add("--large-body-wait", type=float,
        default=_env("LARGE_BODY_WAIT", str(defaults.LARGE_BODY_WAIT)),
        help="seconds a large body waits for a slot before a 503 with Retry-After "
        "(MODELCI_LARGE_BODY_WAIT)")  # fmt: skip
    add("--prediction-log", default=_env("PREDICTION_LOG", None), metavar="DIR",
        help="log sampled predictions here as JSON Lines (MODELCI_PREDICTION_LOG)")  # fmt: skip
    add("--log-sample-rate", type=float, default=_env("LOG_SAMPLE_RATE", "0.1"),
        help="fraction of requests logged (MODELCI_LOG_SAMPLE_RATE)")  # fmt: skip
    add("--log-max-bytes", type=int, default=_env("LOG_MAX_BYTES", str(10 * 1024 * 1024)),
        help="rotate the log at this size, keep 3 (MODELCI_LOG_MAX_BYTES)")  # fmt: skip
    add("--log-format", choices=FORMATS, default=_env("LOG_FORMAT", "text"),
        help="the server's own log lines: plain text, or one JSON object per line "
        "(MODELCI_LOG_FORMAT)")  # fmt: skip
    add("--access-log", action="store_true",
        default=_env("ACCESS_LOG", "") in ("1", "true", "yes", "on"),
        help="log one line per request (MODELCI_ACCESS_LOG=1)")  # fmt: skip
    add("--poll-seconds", type=float, default=_env("POLL_SECONDS", "0"),
        help="reload when the alias moves, checked at this interval; 0 = off "
        "(MODELCI_POLL_SECONDS)")  # fmt: skip
    add("--drain-seconds", type=float, default=_env("DRAIN_SECONDS", "0"),
        help="after SIGTERM, keep serving (with /ready 503) this long before stopping "
        "(MODELCI_DRAIN_SECONDS)")  # fmt: skip
    add("--graceful-timeout", type=float, default=_env("GRACEFUL_TIMEOUT", "30"),
        help="then wait this long for in-flight requests (MODELCI_GRACEFUL_TIMEOUT)")  # fmt: skip
    add("--threads", type=int, default=_env("THREADS", "1"),
        help="OpenMP/BLAS threads per worker; 0 = library default (MODELCI_THREADS)")  # fmt: skip
    add("--batch-threads", type=int, default=_env("BATCH_THREADS", "0"),
        help="ONNX Runtime threads for a batch of 1,000 rows or more, one such batch at a time "
        "per worker; 0 = the available CPUs, 1 = off (MODELCI_BATCH_THREADS)")  # fmt: skip
    add("--workers", type=int, default=_env("WORKERS", "0"),
        help="worker processes; 0 = the CPUs the cgroup quota and affinity allow "
        "(MODELCI_WORKERS)")  # fmt: skip
    add("--header-timeout", type=float,
        default=_env("HEADER_TIMEOUT", str(defaults.HEADER_TIMEOUT)),
        help="seconds to receive a request's headers (MODELCI_HEADER_TIMEOUT)")  # fmt: skip
    add("--body-timeout", type=float, default=_env("BODY_TIMEOUT", str(defaults.BODY_TIMEOUT)),
        help="seconds to receive a request's body (MODELCI_BODY_TIMEOUT)")  # fmt: skip
    add("--keepalive-timeout", type=float,
        default=_env("KEEPALIVE_TIMEOUT", str(defaults.KEEPALIVE_TIMEOUT)),
        help="close a keep-alive connection idle this long "
        "(MODELCI_KEEPALIVE_TIMEOUT)")  # fmt: skip
    add("--max-connections", type=int,
        default=_env("MAX_CONNECTIONS", str(defaults.MAX_CONNECTIONS)),
        help="per worker; beyond it requests get 503 (MODELCI_MAX_CONNECTIONS)")  # fmt: skip
    add("--max-client-connections", type=int,
        default=_env("MAX_CLIENT_CONNECTIONS", str(defaults.MAX_CLIENT_CONNECTIONS)),
        help="per worker and client address, beyond it 503 at once; 0 = no cap (behind a "
        "reverse proxy, see docs/serving.md) (MODELCI_MAX_CLIENT_CONNECTIONS)")  # fmt: skip
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from modelci.model_source import ModelSourceError
    from modelci.serving.server import serve

    config = serve_config(args)
    configure_logs(args)
    try:
        return serve(config)
    except ModelSourceError as error:
        if args.model or not DEFAULT_PATHS.model.is_file():
            raise
        # The champion exists only after a release; a new repository has the pipeline's file.
        raise ModelSourceError(
            f"{error} (nothing released yet? serve the pipeline's model: "
            f"modelci serve --model {DEFAULT_PATHS.model})"
        ) from None


def configure_logs(args: argparse.Namespace) -> None:
    """The server's log records to stderr, in the format ``--log-format`` names."""
    from modelci import logs
    from modelci.errors import ConfigError

    try:  # argparse does not check a default taken from the environment against its choices
        logs.configure("modelci serve", args.log_format)
    except ValueError as error:
        raise ConfigError(f"--log-format: {error}") from None


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The :class:`~modelci.serving.server.ServeConfig` of parsed ``serve`` options (also what
    the AWS Lambda adapter builds from the environment alone)."""
    from modelci import model_source
    from modelci.config import load_service_params
    from modelci.errors import ConfigError
    from modelci.serving.app import Settings
    from modelci.serving.server import ServeConfig
    from modelci.serving.workers import cpu_quota

    params_path = Path(args.params)
    if args.model:
        model_uri = args.model
    else:
        params = load_service_params(params_path)
        model_uri = f"models:/{params.tracking.model_name}@{params.registry.champion_alias}"
    ref = model_source.parse(model_uri)
    tracking_uri = None
    if ref.kind != "file":
        from modelci.tracking import probe
        from modelci.tracking import tracking_uri as default_uri

        tracking_uri = default_uri()
        probe(tracking_uri)
    metrics_file = Path(args.metrics_file) if args.metrics_file else None
    if metrics_file is None and ref.kind == "file" and DEFAULT_PATHS.metrics.is_file():
        metrics_file = DEFAULT_PATHS.metrics
    for name in ("max_body_bytes", "max_rows", "log_max_bytes", "max_connections",
                 "large_body_bytes", "large_body_slots"):  # fmt: skip
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("header_timeout", "body_timeout", "keepalive_timeout"):
        if not getattr(args, name) > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be more than 0 seconds")
    for name in ("large_body_wait", "reload_interval"):
        if not getattr(args, name) >= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be 0 seconds or more")
    if args.model_info not in defaults.MODEL_INFO:  # a value from the environment
        raise ConfigError(f"--model-info must be one of {', '.join(defaults.MODEL_INFO)}")
    if args.admin_port is not None and (
        not 0 <= args.admin_port < 65536 or args.admin_port == args.port != 0
    ):
        raise ConfigError(
            f"--admin-port {args.admin_port} must be a port (0-65535) other than --port"
        )
    if args.max_client_connections < 0:
        raise ConfigError("--max-client-connections must be 0 (no cap) or more")
    if args.workers < 0:
        raise ConfigError("--workers must be 0 (one per available CPU) or more")
    if args.batch_threads < 0:
        raise ConfigError("--batch-threads must be 0 (the available CPUs) or more")
    if not 0.0 <= args.log_sample_rate <= 1.0:
        raise ConfigError("--log-sample-rate must be between 0 and 1")
    settings = Settings(
        max_body_bytes=args.max_body_bytes,
        max_rows=args.max_rows,
        large_body_bytes=args.large_body_bytes,
        large_body_slots=args.large_body_slots,
        large_body_wait=args.large_body_wait,
        admin_token=os.environ.get("MODELCI_ADMIN_TOKEN") or None,
        poll_seconds=args.poll_seconds,
        reload_interval=args.reload_interval,
        model_info=args.model_info,
    )
    return ServeConfig(
        model_uri=model_uri,
        params_path=params_path,
        runtime=args.runtime,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        tracking_uri=tracking_uri,
        expected_sha256=args.sha256,
        expected_onnx_sha256=args.onnx_sha256,
        metrics_file=metrics_file,
        settings=settings,
        prediction_log=Path(args.prediction_log) if args.prediction_log else None,
        log_sample_rate=args.log_sample_rate,
        log_max_bytes=args.log_max_bytes,
        drain_seconds=args.drain_seconds,
        graceful_timeout=args.graceful_timeout,
        threads=args.threads,
        batch_threads=args.batch_threads or cpu_quota(),
        workers=args.workers or cpu_quota(),
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_connections=args.max_connections,
        max_client_connections=args.max_client_connections,
        access_log=args.access_log,
    )
