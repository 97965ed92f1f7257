"""The fault filter on its own: a real HTTP/1.1 keep-alive server behind it, real sockets."""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mwkit.wizard.fault_filter import FaultFilter, FilterFaults, body_framing, internal_port


class Echo(BaseHTTPRequestHandler):
    """Answers how many body bytes it got, keeping the connection open (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the http.server API
        size = len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = f"{size} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def relay():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    relay = FaultFilter("127.0.0.1", internal_port(), server.server_address[1], seed=1).start()
    yield relay
    relay.stop()
    server.shutdown()
    server.server_close()


def test_without_faults_bodies_and_answers_pass_on_one_kept_connection(relay):
    url = f"http://127.0.0.1:{relay.port}"
    with requests.Session() as session:
        assert session.post(f"{url}/a", data=b"x" * 300_000, timeout=5).text == "300000 /a"
        assert session.get(f"{url}/b", timeout=5).text == "0 /b"


def test_an_error_answer_swallows_the_body_and_the_connection_stays_in_step(relay):
    url = f"http://127.0.0.1:{relay.port}"
    with requests.Session() as session:
        relay.faults = FilterFaults(error_fraction=1.0, error_status=502)
        failed = session.post(f"{url}/a", data=b"y" * 100_000, timeout=5)
        assert (failed.status_code, failed.headers["X-Mwkit-Fault"]) == (502, "502")
        relay.faults = FilterFaults()
        assert session.post(f"{url}/c", data=b"z" * 10, timeout=5).text == "10 /c"


def test_latency_is_added_before_the_call_and_fast_fail_answers_at_once(relay):
    url = f"http://127.0.0.1:{relay.port}/"
    relay.faults = FilterFaults(latency=0.2, latency_fraction=1.0)
    started = time.perf_counter()
    assert requests.get(url, timeout=5).status_code == 200
    assert time.perf_counter() - started >= 0.2
    relay.faults = FilterFaults(latency=0.2, latency_fraction=1.0, fast_fail=True)
    started = time.perf_counter()
    assert requests.get(url, timeout=5).status_code == 503
    assert time.perf_counter() - started < 0.15


def test_fractions_hit_about_their_share_of_calls():
    rng = random.Random(7)
    faults = FilterFaults(latency=1.0, latency_fraction=0.3, error_fraction=0.1)
    verdicts = [faults.decide(rng) for _ in range(2000)]
    assert 520 <= sum(wait > 0 for wait, _ in verdicts) <= 680
    assert 140 <= sum(status == 500 for _, status in verdicts) <= 260
    assert not FilterFaults().active and FilterFaults(fast_fail=True).active


def test_body_framing_reads_the_head_without_parsing_it_all():
    assert body_framing(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n") == (12, False)
    assert body_framing(b"POST / HTTP/1.1\r\ncontent-length:x\r\n\r\n") == (0, False)
    assert body_framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == (0, True)


def test_a_service_that_does_not_listen_is_refused_like_a_closed_port():
    relay = FaultFilter("127.0.0.1", internal_port(), internal_port()).start()
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{relay.port}/", timeout=2)
    finally:
        relay.stop()
