"""``modelci._http``: the one HTTP client (timeouts, bounded retries, size caps, redirects and
where the Authorization header may go), against a loopback server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelci import _http
from tests.http_support import Answer, Loopback, redirect

pytestmark = pytest.mark.unit

AUTH = "Bearer secret-token"


def test_an_answer_of_any_status_is_returned_with_its_body_and_headers() -> None:
    routes = {"/teapot": Answer(418, b'{"a": 1}', (("X-Kind", "tea"),))}
    with Loopback(routes) as server:
        answer = _http.request("GET", server.url("/teapot"))
    assert (answer.status, answer.ok, answer.json(), answer.headers["x-kind"]) == (
        418, False, {"a": 1}, "tea"
    )  # fmt: skip


def test_json_bodies_are_sent_with_their_content_type() -> None:
    with Loopback({"/post": Answer(201, b"")}) as server:
        answer = _http.request("POST", server.url("/post"), json_body={"x": 1})
    assert (answer.status, answer.json()) == (201, None)


def test_authorization_goes_to_its_own_origin_only() -> None:
    """Same origin keeps it; another host name, port or scheme never gets it."""
    with (
        Loopback({"/final": Answer()}) as other,
        Loopback(
            {
                "/same": redirect(lambda s: "/final"),
                "/host": redirect(lambda s: s.url("/final", host="localhost")),
                "/port": redirect(lambda s: other.url("/final")),
                "/final": Answer(),
            }
        ) as server,
    ):
        for path in ("/same", "/host", "/port"):
            assert _http.request("GET", server.url(path), authorization=AUTH).body == b"ok"
    got = [(s.path, s.authorization) for s in server.seen + other.seen]
    assert got == [
        ("/same", AUTH), ("/final", AUTH), ("/host", AUTH), ("/final", None), ("/port", AUTH),
        ("/final", None),
    ]  # fmt: skip


def test_a_303_after_a_post_is_followed_with_a_get_and_307_keeps_the_method() -> None:
    routes = {
        "/see-other": redirect(lambda s: "/final", 303),
        "/temporary": redirect(lambda s: "/final", 307),
        "/final": Answer(),
    }
    with Loopback(routes) as server:
        _http.request("POST", server.url("/see-other"), body=b"x")
        _http.request("PATCH", server.url("/temporary"), body=b"x")
    assert [(s.method, s.path) for s in server.seen] == [
        ("POST", "/see-other"), ("GET", "/final"), ("PATCH", "/temporary"), ("PATCH", "/final"),
    ]  # fmt: skip


def test_redirects_are_bounded_and_stay_on_http() -> None:
    routes = {
        "/loop": redirect(lambda s: "/loop"),
        "/file": redirect(lambda s: "file:///etc/passwd"),
    }
    with Loopback(routes) as server:
        with pytest.raises(_http.HttpError, match=r"/loop: more than 5 redirects"):
            _http.request("GET", server.url("/loop"))
        with pytest.raises(_http.HttpError, match="refusing a non-http"):
            _http.request("GET", server.url("/file"))
    with pytest.raises(_http.HttpError, match="refusing a non-http"):
        _http.request("GET", "ftp://example.invalid/x")


def test_the_size_cap_is_checked_while_reading() -> None:
    with Loopback({"/big": Answer(body=b"x" * 5000)}) as server:
        assert len(_http.request("GET", server.url("/big"), max_bytes=5000).body) == 5000
        with pytest.raises(_http.HttpError, match=r"/big: answer larger than 4999 bytes"):
            _http.request("GET", server.url("/big"), max_bytes=4999)


def test_retries_are_bounded_and_only_of_idempotent_requests() -> None:
    with Loopback({"/busy": Answer(503, b"busy")}) as server:
        # the last attempt's answer is returned when no retry is left
        assert _http.request("GET", server.url("/busy"), retries=2, backoff=0.01).status == 503
        assert _http.request("POST", server.url("/busy"), retries=2, backoff=0.01).status == 503
    assert [s.method for s in server.seen] == ["GET", "GET", "GET", "POST"]
    with pytest.raises(_http.HttpError, match=r"Connection refused"):
        _http.request("GET", "http://127.0.0.1:9/", retries=1, backoff=0.01)


def test_nothing_answering_is_one_line_without_the_query() -> None:
    with pytest.raises(_http.HttpError, match=r"^http://127\.0\.0\.1:9/x: Connection refused$"):
        _http.request("GET", "http://127.0.0.1:9/x?token=abc")


def test_no_credentials_come_from_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password pass\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with Loopback({"/x": Answer()}) as server:
        _http.request("GET", server.url("/x"))
    assert server.seen[0].authorization is None
