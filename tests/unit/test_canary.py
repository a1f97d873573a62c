"""The canary decision from given numbers, the bake loop, and the command's error paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelci.cli import main
from modelci.config import CanaryParams, SloParams
from modelci.monitor import canary
from modelci.monitor.canary import CanaryError, Prometheus, ServerNumbers, evaluate
from tests.http_support import serve_in_thread
from tests.process_support import free_port

pytestmark = pytest.mark.unit

SLO = SloParams()
CANARY = CanaryParams(min_requests=100)
BOUNDS = (0.2, 0.4, 0.6, 0.8, 1.0, float("inf"))


def numbers(
    requests: float = 1000, errors: float = 0, p99: float | None = 0.01, cdf: Any = None
) -> ServerNumbers:
    shares = cdf or (0.2, 0.4, 0.6, 0.8, 1.0, 1.0)
    counts = (share * requests for share in shares)
    return ServerNumbers(requests, errors, p99, tuple(zip(BOUNDS, counts, strict=True)))


def test_a_healthy_challenger_is_promoted() -> None:
    verdict = evaluate(numbers(), numbers(errors=1, p99=0.012), SLO, CANARY, 300)
    assert verdict.decision == "promote"
    assert verdict.conclusive
    assert not verdict.failed


@pytest.mark.parametrize(
    ("challenger", "failing"),
    [
        (numbers(errors=50), {"error_ratio", "error_ratio_increase"}),
        (numbers(p99=0.4), {"p99_latency_seconds", "p99_latency_ratio"}),
        (numbers(p99=0.2), {"p99_latency_ratio"}),  # within the SLO, 8x the champion (floor)
        (numbers(cdf=(0.0, 0.1, 0.3, 0.6, 1.0, 1.0)), {"prediction_shift"}),
    ],
)
def test_each_breach_rolls_back_naming_its_numbers(
    challenger: ServerNumbers, failing: set[str]
) -> None:
    verdict = evaluate(numbers(), challenger, SLO, CANARY, 300)
    assert verdict.decision == "rollback"
    assert {check.name for check in verdict.failed} == failing
    for check in verdict.failed:
        assert check.name in verdict.reason
    assert json.loads(json.dumps(verdict.to_dict()))["checks"]


def test_the_prediction_shift_is_the_largest_cdf_gap() -> None:
    shifted = numbers(cdf=(0.0, 0.1, 0.3, 0.6, 1.0, 1.0))
    gaps = [abs(a - b) for a, b in zip((0.2, 0.4, 0.6, 0.8), (0.0, 0.1, 0.3, 0.6), strict=True)]
    assert canary.prediction_shift(numbers(), shifted) == pytest.approx(max(gaps))
    assert canary.prediction_shift(numbers(), numbers(requests=0)) is None


def test_the_p99_ratio_uses_the_floor_for_a_fast_champion() -> None:
    verdict = evaluate(numbers(p99=0.001), numbers(p99=0.02), SLO, CANARY, 300)
    ratio = next(check for check in verdict.checks if check.name == "p99_latency_ratio")
    assert ratio.value == pytest.approx(0.02 / CANARY.p99_ratio_floor_seconds)
    assert verdict.decision == "promote"


@pytest.mark.parametrize("fallback", ["rollback", "promote"])
def test_too_little_traffic_is_inconclusive(fallback: str) -> None:
    params = CanaryParams(min_requests=100, on_inconclusive=fallback)  # type: ignore[arg-type]
    verdict = evaluate(numbers(), numbers(requests=20), SLO, params, 60)
    assert verdict.decision == fallback
    assert not verdict.conclusive
    assert "challenger answered 20 scored requests (< 100)" in verdict.reason


class _Fake:
    """Stands in for Prometheus: the challenger turns bad after ``bad_after`` evaluations."""

    def __init__(self, bad_after: int | None) -> None:
        self.bad_after = bad_after
        self.calls = 0

    def numbers(self, selector: str, window: float, at: float) -> ServerNumbers:
        if selector == CANARY.champion_selector:
            return numbers()
        self.calls += 1
        bad = self.bad_after is not None and self.calls > self.bad_after
        return numbers(errors=100 if bad else 0)


def _bake(fake: _Fake, params: CanaryParams) -> tuple[canary.Verdict, list[float]]:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    verdict = canary.run(fake, SLO, params, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    return verdict, slept


def test_the_bake_runs_to_its_end_when_healthy() -> None:
    params = CanaryParams(bake_seconds=100, interval_seconds=30, min_requests=100)
    verdict, slept = _bake(_Fake(None), params)
    assert verdict.decision == "promote"
    assert slept == [30, 30, 30, 10]
    assert verdict.window_seconds == 100


def test_a_breach_ends_the_bake_early() -> None:
    params = CanaryParams(bake_seconds=100, interval_seconds=30, min_requests=100)
    verdict, slept = _bake(_Fake(bad_after=1), params)
    assert verdict.decision == "rollback"
    assert slept == [30, 30]


class _Answers(BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def answering() -> Iterator[tuple[str, type[_Answers]]]:
    handler = type("Handler", (_Answers,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = serve_in_thread(server)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"not json", "cannot query Prometheus"),
        (200, b'{"status": "error", "error": "bad"}', "unexpected answer"),
        (200, b'{"status": "success", "data": {"resultType": "matrix", "result": []}}', "vector"),
        (400, b'{"error": "parse error"}', 'failed (400): {"error": "parse error"}'),
    ],
)
def test_bad_prometheus_answers_are_clear_errors(
    answering: tuple[str, type[_Answers]], status: int, body: bytes, message: str
) -> None:
    url, handler = answering
    handler.status, handler.body = status, body
    with pytest.raises(CanaryError) as caught:
        Prometheus(url).query("up", 0)
    assert url in str(caught.value)
    assert message in str(caught.value)


def test_a_result_vector_is_read(answering: tuple[str, type[_Answers]]) -> None:
    url, handler = answering
    handler.status, handler.body = 200, json.dumps(
        {"status": "success", "data": {"resultType": "vector",
         "result": [{"metric": {"le": "0.5"}, "value": [0, "12"]}]}}
    ).encode()  # fmt: skip
    assert Prometheus(url).query("x", 0) == [({"le": "0.5"}, 12.0)]


def test_a_non_http_url_is_refused() -> None:
    with pytest.raises(CanaryError, match="expected an http"):
        Prometheus("file:///etc/passwd")


def _params(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "params.yaml"
    quick = "canary: {bake_seconds: 0.1, interval_seconds: 0.1}\n"
    path.write_text(text or quick, encoding="utf-8")
    return path


def test_an_unreachable_prometheus_fails_the_command_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["monitor", "canary", "--params", str(_params(tmp_path)), "--prometheus",
                 f"http://127.0.0.1:{free_port()}", "--out", str(out)])  # fmt: skip
    assert code == CanaryError.exit_code  # not 1: no verdict was reached
    assert "cannot query Prometheus" in capsys.readouterr().err
    assert not out.exists()


def test_command_line_overrides_are_validated_with_the_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["monitor", "canary", "--params", str(_params(tmp_path)), "--prometheus", "http://x",
                 "--challenger", "canary"])  # fmt: skip
    assert code != 0
    error = capsys.readouterr().err
    assert "challenger_selector" in error
    assert "expected PromQL label matchers" in error


def test_apply_rolls_the_registry_back_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--apply on a roll back calls the registry's rollback, recording the deciding numbers."""
    from modelci.registry import rollback as rollback_module

    calls: list[str] = []

    class Done:
        to_version = type("V", (), {"version": 3})()

    def fake_rollback(params: Any, reason: str = "", **kwargs: Any) -> Done:
        calls.append(reason)
        return Done()

    bad = canary.evaluate(numbers(), numbers(errors=100), SLO, CANARY, 10)
    monkeypatch.setattr(canary, "run", lambda *args, **kwargs: bad)
    monkeypatch.setattr(rollback_module, "rollback", fake_rollback)
    params = _params(tmp_path, "data: {source: x.csv, target: y, task: binary, columns: "
                     "{x: {type: float}, y: {type: int}}}\n")  # fmt: skip
    out = tmp_path / "out"
    code = main(["monitor", "canary", "--params", str(params), "--prometheus", "http://x",
                 "--apply", "--out", str(out)])  # fmt: skip
    assert code == 1
    assert calls == [f"canary: {bad.reason}"]
    assert json.loads((out / "canary.json").read_text("utf-8"))["rolled_back_to"] == 3
