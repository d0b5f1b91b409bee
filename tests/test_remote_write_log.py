"""Remote write logs what a receiver answers without letting it forge log lines or leak
credentials: a real HTTP receiver on loopback answers 400 with ANSI escapes, line breaks and
the request's own Authorization header echoed back."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import last9

USER, PASSWORD = "pusher", "s3cret-pa55"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TOKEN = "tok-0123456789abcdef"


class EchoingReceiver(BaseHTTPRequestHandler):
    """Answers every push with 400 and a hostile body."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            "\x1b[2J\x1b[31mbad request\x1b[0m\n"
            "2026-01-01 ERROR root: forged line\r\n"
            f"you sent Authorization: {self.headers.get('Authorization')}\n"
            f"also {self.headers.get('Authorization', '').split(' ')[-1]} and \u202etxt.exe"
        ).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("credentials", "secrets"),
    [
        ({"username": USER, "password": PASSWORD}, [BASIC, PASSWORD]),
        ({"bearer_token": TOKEN}, [TOKEN]),
    ],
)
def test_a_hostile_error_body_is_logged_escaped_and_redacted(caplog, credentials, secrets):
    caplog.set_level(logging.INFO, logger="last9.remote_write")
    registry = last9.Registry()
    recorder = last9.Recorder(registry, hostname="h", program="p")
    recorder.observe(None, "/x", "example.com", "GET", 200, 1_000_000)
    with receiver() as url:
        writer = last9.start_remote_write(url, registry=registry, **credentials)
        writer.flush(timeout=10)  # 400: dropped, not retried, and logged
        writer.stop(timeout=5)
    messages = [r.getMessage() for r in caplog.records if r.name == "last9.remote_write"]
    rejected = [m for m in messages if "rejected with HTTP 400" in m]
    assert rejected, messages  # one per push: the flush's and the stop's last snapshot
    for logged in rejected:
        assert "bad request" in logged and "forged line" in logged, logged
        for forbidden in ("\x1b", "\n", "\r", "\u202e", *secrets):
            assert forbidden not in logged, (forbidden, logged)
        assert "Authorization [redacted]" in logged
        assert url in logged  # the URL, without credentials, still says where
