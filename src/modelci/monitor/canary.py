"""Canary analysis: the challenger serves beside the champion; Prometheus' numbers decide.

During the bake period, every ``interval_seconds`` both servers' numbers over the window since
the bake started are read from Prometheus' HTTP API (PromQL instant queries, the same series the
alert rules use): scored requests, the 5xx ratio, the p99 latency from the latency histogram and
the prediction-score histogram. The challenger must hold the SLOs (``slo:``) and stay close to
the champion (``canary:``: error-ratio increase, p99 ratio, largest gap between the two score
CDFs). A failed check with enough traffic on both sides rolls back at once; otherwise the last
evaluation, over the whole bake, decides. Too little traffic is ``on_inconclusive``.

The pure part (:func:`evaluate`) takes the numbers; :class:`Prometheus` fetches them.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from modelci import _http
from modelci.config import CanaryParams, SloParams
from modelci.errors import ModelCIError

Decision = Literal["promote", "rollback"]
SCORED = 'path=~"/predict|/invocations"'


class CanaryError(ModelCIError):
    """Prometheus cannot be asked, or answers something that is not a PromQL result: no verdict
    (exit 3, distinct from a roll back's 1)."""

    exit_code = 3


@dataclass(frozen=True)
class ServerNumbers:
    """One server's numbers over the window."""

    requests: float
    errors: float
    p99_seconds: float | None
    # Cumulative prediction-score histogram: (upper bound, count), +Inf last.
    score_buckets: tuple[tuple[float, float], ...]

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    limit: float
    passed: bool


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    conclusive: bool
    window_seconds: float
    checks: tuple[Check, ...]
    champion: ServerNumbers
    challenger: ServerNumbers

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        def numbers(side: ServerNumbers) -> dict[str, Any]:
            return {**asdict(side), "error_ratio": side.error_ratio}

        return {
            "decision": self.decision,
            "reason": self.reason,
            "conclusive": self.conclusive,
            "window_seconds": self.window_seconds,
            "checks": [asdict(check) for check in self.checks],
            "champion": numbers(self.champion),
            "challenger": numbers(self.challenger),
        }


def prediction_shift(a: ServerNumbers, b: ServerNumbers) -> float | None:
    """Largest gap between the two score CDFs over their common bucket bounds (0..1): the
    Kolmogorov-Smirnov statistic of the binned distributions."""
    first, second = dict(a.score_buckets), dict(b.score_buckets)
    total_a, total_b = first.get(math.inf, 0.0), second.get(math.inf, 0.0)
    if total_a <= 0 or total_b <= 0:
        return None
    bounds = sorted(set(first) & set(second))
    return max(abs(first[le] / total_a - second[le] / total_b) for le in bounds)


def evaluate(
    champion: ServerNumbers,
    challenger: ServerNumbers,
    slo: SloParams,
    canary: CanaryParams,
    window_seconds: float,
) -> Verdict:
    """Promote only when every check passes with enough traffic on both servers."""
    ratio = challenger.error_ratio
    base_ratio = champion.error_ratio
    p99, base_p99 = challenger.p99_seconds, champion.p99_seconds
    shift = prediction_shift(champion, challenger)
    floor = canary.p99_ratio_floor_seconds

    def check(name: str, value: float | None, limit: float) -> Check:
        return Check(name, value, limit, value is not None and value <= limit)

    checks = (
        check("error_ratio", ratio, slo.max_error_ratio),
        check(
            "error_ratio_increase",
            None if ratio is None or base_ratio is None else ratio - base_ratio,
            canary.max_error_ratio_increase,
        ),
        check("p99_latency_seconds", p99, slo.max_p99_latency_seconds),
        check(
            "p99_latency_ratio",
            None if p99 is None or base_p99 is None else p99 / max(base_p99, floor),
            canary.max_p99_latency_ratio,
        ),
        check("prediction_shift", shift, canary.max_prediction_shift),
    )
    low = [
        f"{side} answered {numbers.requests:.0f} scored requests (< {canary.min_requests})"
        for side, numbers in (("champion", champion), ("challenger", challenger))
        if numbers.requests < canary.min_requests
    ]
    if low:
        return Verdict(
            canary.on_inconclusive,
            "inconclusive: " + "; ".join(low),
            False,
            window_seconds,
            checks,
            champion,
            challenger,
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.name} {_shown(c.value)} > {_shown(c.limit)}" for c in failed)
        return Verdict("rollback", reason, True, window_seconds, checks, champion, challenger)
    return Verdict("promote", "every check passed", True, window_seconds, checks, champion,
                   challenger)  # fmt: skip


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _matchers(selector: str, *extra: str) -> str:
    inner = selector.strip()[1:-1].strip()
    return "{" + ", ".join(part for part in (inner, *extra) if part) + "}"


class Prometheus:
    """Instant PromQL queries over the HTTP API (``GET /api/v1/query``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CanaryError(f"--prometheus: expected an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        address = f"{self.url}/api/v1/query?{params}"
        try:
            answer = _http.request("GET", address, timeout=self.timeout, retries=1)
        except _http.HttpError as error:
            raise CanaryError(f"{self.url}: cannot query Prometheus: {error}") from None
        if not answer.ok:
            detail = answer.text(300)
            raise CanaryError(f"{self.url}: query {expr!r} failed ({answer.status}): {detail}")
        try:
            payload = answer.json()
        except ValueError as error:
            raise CanaryError(f"{self.url}: cannot query Prometheus: {error}") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if payload.get("status") != "success" or not isinstance(data, dict):
            raise CanaryError(f"{self.url}: query {expr!r}: unexpected answer {str(payload)[:200]}")
        if data.get("resultType") != "vector":
            raise CanaryError(f"{self.url}: query {expr!r}: expected a vector result")
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def scalar(self, expr: str, at: float) -> float | None:
        result = self.query(expr, at)
        if not result or math.isnan(result[0][1]):
            return None
        return result[0][1]

    def numbers(self, selector: str, window_seconds: float, at: float) -> ServerNumbers:
        window = f"[{max(1, round(window_seconds))}s]"
        scored = _matchers(selector, SCORED)
        failed = _matchers(selector, SCORED, 'status=~"5.."')
        requests = self.scalar(f"sum(increase(modelci_http_requests_total{scored}{window}))", at)
        errors = self.scalar(f"sum(increase(modelci_http_requests_total{failed}{window}))", at)
        latency = f"increase(modelci_http_request_duration_seconds_bucket{scored}{window})"
        p99 = self.scalar(f"histogram_quantile(0.99, sum by (le) ({latency}))", at)
        scores = self.query(
            f"sum by (le) (increase(modelci_prediction_score_bucket{_matchers(selector)}{window}))",
            at,
        )
        buckets = tuple(sorted((float(labels["le"]), value) for labels, value in scores))
        return ServerNumbers(requests or 0.0, errors or 0.0, p99, buckets)


def run(
    prometheus: Prometheus,
    slo: SloParams,
    canary: CanaryParams,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Verdict], None] | None = None,
) -> Verdict:
    """Bake: evaluate every interval; a conclusive failure ends it early, else the last
    evaluation (over the whole bake) decides."""
    started = clock()
    end = started + canary.bake_seconds
    while True:
        sleep(max(0.0, min(canary.interval_seconds, end - clock())))
        now = clock()
        window = now - started
        verdict = evaluate(
            prometheus.numbers(canary.champion_selector, window, now),
            prometheus.numbers(canary.challenger_selector, window, now),
            slo,
            canary,
            window,
        )
        if progress is not None:
            progress(verdict)
        if now >= end or (verdict.conclusive and verdict.decision == "rollback"):
            return verdict


def summary_markdown(verdict: Verdict) -> str:
    """The job summary: the decision and every number that decided it."""
    head = "Promote" if verdict.decision == "promote" else "Roll back"
    lines = [
        f"## Canary analysis: {head}",
        "",
        f"- {verdict.reason} (window {verdict.window_seconds:.0f} s)",
        "",
        "| check | challenger | limit | |",
        "|---|---|---|---|",
    ]
    for check in verdict.checks:
        mark = "pass" if check.passed else "**fail**"
        lines.append(f"| {check.name} | {_shown(check.value)} | {_shown(check.limit)} | {mark} |")
    lines += ["", "| | champion | challenger |", "|---|---|---|"]
    rows: tuple[tuple[str, float | None, float | None], ...] = (
        ("scored requests", verdict.champion.requests, verdict.challenger.requests),
        ("error ratio", verdict.champion.error_ratio, verdict.challenger.error_ratio),
        ("p99 latency (s)", verdict.champion.p99_seconds, verdict.challenger.p99_seconds),
    )
    for name, champion, challenger in rows:
        lines.append(f"| {name} | {_shown(champion)} | {_shown(challenger)} |")
    return "\n".join(lines) + "\n"
