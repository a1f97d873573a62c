"""Default limits and timeouts of ``modelci serve`` (no imports: the CLI parser reads them)."""

from __future__ import annotations

# 100,000 rows of a schema like the default one (7 columns) take about 15 MB as JSON records.
MAX_ROWS = 100_000
MAX_BODY_BYTES = 64 * 1024 * 1024
# Seconds a client may take to send its request headers, then its body, and may stay idle
# between requests on a keep-alive connection; connections beyond MAX_CONNECTIONS are refused.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
