"""Page reloads against a real (tiny) HTTP server and the real monolith, summaries, and the
event log of a real Directory."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from lobsters import create_app
from mwkit import traffic
from mwkit.directory import DirectoryClient
from mwkit.errors import NoInstances
from mwkit.procs import free_port
from mwkit.sherlock import Sherlock
from mwkit.traffic import (
    EventLog,
    PageReloads,
    Reload,
    format_table,
    outcome_of,
    percentile,
    summarize,
    to_markdown,
)
from tests.helpers.services import seeded_sqlite, serving

SERVICE_A = "aaaaaaaa-0000-4000-8000-000000000001"
SERVICE_B = "bbbbbbbb-0000-4000-8000-000000000002"


class FakeMonolith:
    """Answers ``/popular.json`` like the monolith, from a script of replies by request number.

    ``script(n)`` (n = 1, 2, ...) returns ``(delay_seconds, body_or_status)``.
    """

    def __init__(self, script) -> None:
        self.script, self.requests = script, 0
        self.release = threading.Event()  # ends every pending delay at teardown
        lock, fake = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                with lock:
                    fake.requests += 1
                    number = fake.requests
                delay, reply = fake.script(number)
                fake.release.wait(delay)
                status, body = (reply, {"error": "boom"}) if isinstance(reply, int) else (
                    200, reply)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/popular.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def answer(service_id: str | None, error: str | None = None, reason: str | None = None) -> dict:
    return {"service_id": service_id, "call_ms": 1.5, "users": [], "error": error,
            "reason": reason}


NO_SERVICE = answer(None, "NoInstances: no instances of popularity (none registered)",
                    "no_instances")


def alternating(number: int):
    """Two processes taking turns; reply 3 is slow (0.4 s), reply 5 is "no service"."""
    if number == 5:
        return 0, NO_SERVICE
    return (0.4 if number == 3 else 0), answer(SERVICE_A if number % 2 else SERVICE_B)


@pytest.fixture
def monolith():
    servers = []

    def make(script=alternating) -> FakeMonolith:
        servers.append(FakeMonolith(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_count_bound_and_what_each_reload_records(monolith):
    server = monolith()
    before = time.time()
    records = PageReloads(server.url, rate=50, count=8).run()
    assert len(records) == 8 == server.requests
    assert all(before <= r.time <= time.time() for r in records)
    assert [r.time for r in records] == sorted(r.time for r in records)
    assert {r.service_id for r in records} == {SERVICE_A, SERVICE_B, None}
    no_service = [r for r in records if r.outcome == "no_service"]
    assert len(no_service) == 1 and no_service[0].error.startswith("NoInstances")
    assert no_service[0].status == 200 and no_service[0].service_id is None
    slow = [r for r in records if r.latency >= 0.4]
    assert len(slow) == 1 and slow[0].ok
    assert all(r.call_ms == 1.5 and r.status == 200 for r in records)
    assert sum(r.ok for r in records) == 7


def test_duration_bound_sends_on_schedule(monolith):
    server = monolith(lambda n: (0, answer(SERVICE_A)))
    started = time.monotonic()
    reloads = PageReloads(server.url, rate=20, duration=0.5)
    records = reloads.run()
    elapsed = time.monotonic() - started
    assert len(records) == 10  # ticks at 0, 0.05, ..., 0.45 s
    assert 0.4 <= elapsed < 1.0
    spread = records[-1].time - records[0].time
    assert 0.4 <= spread < 0.6
    summary = reloads.summary()
    assert summary["reloads"] == summary["ok"] == 10 and summary["skipped"] == 0


def test_hard_caps_hold_whatever_is_asked(monolith, monkeypatch):
    reloads = PageReloads("http://127.0.0.1:9/popular.json", count=10**9, duration=10**9)
    assert (reloads.count, reloads.duration) == (100_000, 1800.0)
    server = monolith(lambda n: (0, answer(SERVICE_A)))
    monkeypatch.setattr(traffic, "MAX_COUNT", 5)
    assert len(PageReloads(server.url, rate=100, count=1000).run()) == 5
    monkeypatch.setattr(traffic, "MAX_DURATION", 0.3)
    started = time.monotonic()
    records = PageReloads(server.url, rate=20, duration=3600).run()
    assert time.monotonic() - started < 0.8
    assert len(records) == 5  # MAX_COUNT still holds too


def test_bad_arguments_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="needs a bound"):
        PageReloads("http://127.0.0.1:9/popular.json")
    with pytest.raises(ValueError, match="loopback"):
        PageReloads("http://192.0.2.1/popular.json", count=1)
    with pytest.raises(ValueError, match="loopback"):
        PageReloads("http://example.org/popular.json", count=1)
    with pytest.raises(ValueError, match="not an http URL"):
        PageReloads("127.0.0.1:8000", count=1)
    with pytest.raises(ValueError, match="rate"):
        PageReloads("http://localhost:9/", rate=0, count=1)


def test_background_run_stops_promptly_and_keeps_pending_reloads(monolith):
    server = monolith(lambda n: (5 if n == 4 else 0, answer(SERVICE_A)))
    reloads = PageReloads(server.url, rate=20, duration=60, timeout=0.5)
    with reloads:
        time.sleep(0.4)
        assert reloads.running
        with pytest.raises(RuntimeError, match="already running"):
            reloads.start()
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.0  # the slow reply waits at most `timeout`
    assert not reloads.running
    records = reloads.records()
    assert 6 <= len(records) <= 10
    timeouts = [r for r in records if r.outcome == "timeout"]
    assert len(timeouts) == 1 and timeouts[0].status is None
    assert 0.5 <= timeouts[0].latency < 1.0
    count = len(records)
    time.sleep(0.2)
    assert len(reloads.records()) == count  # nothing runs after stop()


def test_saturated_reloads_are_skipped_not_queued(monolith):
    server = monolith(lambda n: (0.8, answer(SERVICE_A)))
    reloads = PageReloads(server.url, rate=50, duration=0.5, max_in_flight=2)
    started = time.monotonic()
    records = reloads.run()
    assert time.monotonic() - started < 1.2  # the schedule went on; only 2 slow answers
    assert len(records) == 2 == server.requests
    assert reloads.skipped == 23  # 25 ticks in 0.5 s, 2 sent
    assert reloads.summary()["skipped"] == 23


def test_failures_are_recorded_not_raised(monolith):
    server = monolith(lambda n: (0, 500) if n == 1 else (
        0, answer(None, "ReadTimeout: x", "timeout")))
    records = PageReloads(server.url, rate=50, count=2).run()
    assert [(r.outcome, r.status) for r in records] == [("error", 500), ("timeout", 200)]
    assert "HTTP 500" in records[0].error
    refused = PageReloads(f"http://127.0.0.1:{free_port()}/popular.json", count=1).run()
    assert refused[0].outcome == "error" and refused[0].status is None
    assert "ConnectionError" in refused[0].error


@pytest.mark.parametrize("body, outcome", [
    (answer(SERVICE_A), "ok"),
    (NO_SERVICE, "no_service"),
    (answer(None, "no Sherlock: MWKIT_DIRECTORY_URL is not set", "no_instances"),
     "no_service"),
    (answer(None, "ConnectTimeout: too slow", "timeout"), "timeout"),
    (answer(None, "ConnectionError: refused", "error"), "error"),
    # only `reason` counts, never the class name in the human text
    (answer(None, "SomethingRenamed: no instances of popularity", "no_instances"),
     "no_service"),
    (answer(None, "NoInstances: no instances of popularity"), "error"),  # no reason given
    (answer(None, "ReadTimeout: x", "a reason from the future"), "error"),
    (answer(None, "x", ["not", "a", "string"]), "error"),
    ({"service_id": None}, "error"),
])
def test_outcome_of(body, outcome):
    assert outcome_of(body) == outcome


def test_outcomes_survive_renaming_the_monoliths_exception_class(directory, tmp_path):
    """The real monolith, its real Sherlock and no instance registered: the reload is
    "no_service" even when NoInstances is renamed, since traffic reads ``reason``."""
    name, NoInstances.__name__ = NoInstances.__name__, "NobodyHome"  # as if renamed
    try:
        with Sherlock(directory) as sherlock, requests.Session() as session, \
                serving(create_app(seeded_sqlite(tmp_path), sherlock=sherlock)) as address:
            record = PageReloads.reload_once(session, f"http://{address}/popular.json", 5.0)
    finally:
        NoInstances.__name__ = name
    assert record.error.startswith("NobodyHome:")  # the human text follows the new name
    assert record.outcome == "no_service" and record.status == 200


def reload(service_id, ms, outcome="ok") -> Reload:
    return Reload(0.0, ms / 1000, service_id, None, outcome, 200)


def known_records() -> list[Reload]:
    return ([reload(SERVICE_A, ms) for ms in range(10, 0, -1)]
            + [reload(SERVICE_B, ms) for ms in range(1, 101)]
            + [reload(None, 3, "no_service"), reload(None, 4, "no_service")])


def test_summarize_hand_computed():
    rows = summarize(known_records(), labels={SERVICE_B: "popularity-v1-2"})
    assert rows == [
        {"service": "popularity-v1-2", "calls": 100, "share": 89.3, "failures": 0,
         "p50_ms": 50.0, "p99_ms": 99.0},
        {"service": "aaaaaaaa", "calls": 10, "share": 8.9, "failures": 0,
         "p50_ms": 5.0, "p99_ms": 10.0},
        {"service": "no answer", "calls": 2, "share": 1.8, "failures": 2,
         "p50_ms": 3.0, "p99_ms": 4.0},
        # 112 latencies: the 56th smallest is 44 ms, the 111th is 99 ms
        {"service": "total", "calls": 112, "share": 100.0, "failures": 2,
         "p50_ms": 44.0, "p99_ms": 99.0},
    ]
    assert summarize([]) == []
    assert percentile([7.0], 99) == 7.0


def test_tables():
    rows = summarize(known_records())
    text = format_table(rows).splitlines()
    assert text[0].split() == ["service", "calls", "share", "%", "failures", "p50", "ms",
                               "p99", "ms"]
    assert len({len(line) for line in text}) == 1  # aligned
    assert text[-1].split() == ["total", "112", "100.0", "2", "44.0", "99.0"]
    markdown = to_markdown(rows).splitlines()
    assert markdown[0] == "| service | calls | share % | failures | p50 ms | p99 ms |"
    assert markdown[1].startswith("| --- | ---: |")
    assert markdown[2] == "| bbbbbbbb | 100 | 89.3 | 0 | 50.0 | 99.0 |"
    assert len(markdown) == 2 + len(rows)
    assert format_table([]) == "no reloads recorded"


def test_event_log_from_a_real_directory(directory):
    before = time.time()
    with DirectoryClient(directory) as client, EventLog(directory) as log:
        client.register("popularity", "popularity-v1-1", "127.0.0.1:5001")
        client.register("lobsters", "lobsters-1", "127.0.0.1:8000")  # another service
        client.deregister("popularity", "popularity-v1-1")
        first = log.poll()
        assert [(e["kind"], e["instance"]) for e in first] == [
            ("registered", "popularity-v1-1"), ("deregistered", "popularity-v1-1")]
        assert all(before <= e["time"] <= time.time() for e in first)
        assert log.poll() == []  # only what is new
        mark = log.mark("scale to 2")
        client.register("popularity", "popularity-v1-2", "127.0.0.1:5002")
        second = log.poll()
        assert [e["instance"] for e in second] == ["popularity-v1-2"]
        assert log.events() == first + second
        assert log.marks() == [mark] and before <= mark.time <= second[0]["time"]
        assert log.mark("earlier", at=before).time == before
    with EventLog(directory, service=None) as everything:  # read at once when made
        assert {e["service"] for e in everything.events()} == {"popularity", "lobsters"}
        assert everything.poll() == []
