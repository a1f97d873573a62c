"""Default limits and timeouts of ``modelci serve`` (no imports: the CLI parser reads them)."""

from __future__ import annotations

# 100,000 rows of a schema like the default one (7 columns) take about 15 MB as JSON records.
MAX_ROWS = 100_000
# 32 MiB: 100,000 records of the default schema are 11 MB, so wider rows fit too, and two
# bodies being parsed at once stay well inside a 1 Gi pod (docs/serving.md, "Limits").
MAX_BODY_BYTES = 32 * 1024 * 1024
# Bodies over LARGE_BODY_BYTES are parsed in a thread, at most LARGE_BODY_SLOTS at once per
# worker; another waits up to LARGE_BODY_WAIT seconds for a slot, then gets 503.
LARGE_BODY_BYTES = 1024 * 1024
LARGE_BODY_SLOTS = 2
LARGE_BODY_WAIT = 5.0
# Seconds a client may take to send its request headers, then its body, and may stay idle
# between requests on a keep-alive connection; connections beyond MAX_CONNECTIONS are refused.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
# Connections one client address may hold at once (0: no per-address cap). Behind a reverse
# proxy every client has the proxy's address: raise it or set 0 there (docs/serving.md).
MAX_CLIENT_CONNECTIONS = 100
# Seconds between two reloads asked for through POST /admin/reload (429 with Retry-After
# sooner); a reload, whatever asked for it, also blocks another while it runs.
RELOAD_INTERVAL = 10.0
# What GET /model on the public listener tells: "public" (the digests, version, runtime and
# input schema) or "full" (also the source URI, run id, git commit, metrics and notes).
MODEL_INFO = ("public", "full")
