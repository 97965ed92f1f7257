"""The Directory over real HTTP: reads, writes, push, bad input, the token."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from mwkit.directory import DirectoryClient, DirectoryError, ServiceTable, run_directory
from mwkit.directory.registry import MAX_INSTANCES_PER_SERVICE
from mwkit.directory.server import WRITE_TIMEOUT


def put(url, service, instance, body, **kwargs):
    return requests.put(f"{url}/v1/services/{service}/instances/{instance}", json=body,
                        timeout=2, **kwargs)


def test_registration_reaches_a_subscriber(directory):
    client = DirectoryClient(directory)
    messages, subscribed, got_put = [], threading.Event(), threading.Event()

    def follow():
        for message in DirectoryClient(directory).watch():
            messages.append(message)
            subscribed.set()
            if message.kind == "put":
                got_put.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    assert subscribed.wait(5)
    client.register("popularity", "p1", "127.0.0.1:5001", {"tag": "v1"})
    assert got_put.wait(5)
    snapshot, put_ = messages
    assert (snapshot.kind, snapshot.data["services"]) == ("snapshot", {})
    assert put_.data["service"] == "popularity"
    assert put_.data["instance"]["metadata"] == {"tag": "v1"}
    assert put_.version == snapshot.version + 1 and put_.epoch is None


def test_a_reconnecting_subscriber_gets_what_it_missed(directory):
    """Every change since the version it saw, in order; applied to the table it kept, they
    give the Directory's table. Another epoch (a restarted Directory) gets a snapshot."""
    client = DirectoryClient(directory)
    client.register("popularity", "p1", "127.0.0.1:5001")
    table = ServiceTable()
    first = next(iter(client.watch()))
    table.apply(first)
    client.register("popularity", "p2", "127.0.0.1:5002")
    client.register("echo", "e1", "127.0.0.1:6001")
    client.deregister("popularity", "p1")
    stream = client.watch(since=first.version, epoch=first.epoch)
    replay = [next(stream) for _ in range(3)]
    assert [(m.kind, m.data["service"], m.version) for m in replay] == [
        ("put", "popularity", first.version + 1), ("put", "echo", first.version + 2),
        ("delete", "popularity", first.version + 3)]
    for message in replay:
        table.apply(message)
    assert table.services() == client.services()
    assert table.version == first.version + 3 and table.epoch == first.epoch
    stale = next(iter(client.watch(since=first.version, epoch="another-life")))
    assert stale.kind == "snapshot"


def test_lease_expiry_removes_a_silent_instance(directory):
    client = DirectoryClient(directory)
    client.register("popularity", "silent", "127.0.0.1:5001", ttl=0.5)
    client.register("popularity", "renewed", "127.0.0.1:5002", ttl=0.5)
    stream = client.watch()
    next(stream)  # the snapshot
    for _ in range(8):  # keep one lease alive for about 0.8 s
        client.heartbeat("popularity", "renewed")
        threading.Event().wait(0.1)
    assert [i["id"] for i in client.instances("popularity")] == ["renewed"]
    assert (lambda m: (m.kind, m.data["id"]))(next(stream)) == ("delete", "silent")
    kinds = [(e["instance"], e["kind"]) for e in client.events()]
    assert ("silent", "expired") in kinds
    assert not client.heartbeat("popularity", "silent")


BAD = [
    ("popularity", "p1", b"{not json", 400, "not valid JSON"),
    ("popularity", "p1", b'{"metadata": {}}', 400, "missing field 'address'"),
    ("popularity", "p1", b'{"address": "127.0.0.1:99999"}', 400, "outside 1-65535"),
    ("Popularity", "p1", b'{"address": "127.0.0.1:5001"}', 400, "must match"),
    ("a" * 101, "p1", b'{"address": "127.0.0.1:5001"}', 400, "longer than 100"),
    ("popularity", "%2E%2E", b'{"address": "127.0.0.1:5001"}', 400, "instance id"),
    ("popularity", "p1", b"[1, 2]", 400, "JSON object"),
    ("popularity", "p1", b"x" * 70_000, 413, "larger than"),
    ("popularity", "p1", b'{"address": "127.0.0.1:5001", "ttl": ' + b"1" * 5000 + b"}", 400,
     "too long"),
    ("popularity", "p1", b"[" * 60_000, 400, "nested too deeply"),
    ("popularity", "p1", b'{"address": "h\\nx:1"}', 400, "control character"),
    ("popularity", "p1", b'{"address": "127.0.0.1:5001", "metadata": {"a": NaN}}', 400,
     "finite"),
    ("popularity", "svcnl%0A", b'{"address": "127.0.0.1:5001"}', 400, "instance id"),
    ("svcnl%0A", "p1", b'{"address": "127.0.0.1:5001"}', 400, "must match"),
    ("popularity", "p1", b'{"address": "https://127.0.0.1:5001"}', 400, "plain http"),
]


@pytest.mark.parametrize("service, instance, body, status, message", BAD)
def test_bad_input_is_rejected_without_changing_state(directory, service, instance, body,
                                                      status, message):
    before = requests.get(f"{directory}/v1/services", timeout=2).json()
    response = requests.put(f"{directory}/v1/services/{service}/instances/{instance}",
                            data=body, timeout=2)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert requests.get(f"{directory}/v1/services", timeout=2).json() == before
    assert requests.get(f"{directory}/health", timeout=2).json()["status"] == "ok"


def test_unknown_routes_and_methods_answer_json(directory):
    assert requests.get(f"{directory}/nope", timeout=2).json() == {"error": "Not Found"}
    response = requests.post(f"{directory}/v1/services", timeout=2)
    assert response.status_code == 405 and "error" in response.json()
    for since in ("abc", "%C2%B2", "1" * 5000):  # "²" is a digit to str.isdigit
        response = requests.get(f"{directory}/v1/watch?since={since}", timeout=2)
        assert response.status_code == 400 and "'since'" in response.json()["error"]


def test_the_token_guards_writes_but_not_reads(tmp_path):
    with run_directory(token="s3cret", log_path=tmp_path / "d.log") as url:
        body = {"address": "127.0.0.1:5001"}
        denied = put(url, "popularity", "p1", body)
        assert denied.status_code == 401 and "token" in denied.json()["error"]
        wrong = put(url, "popularity", "p1", body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        raw = put(url, "popularity", "p1", body, headers={"Authorization": b"Bearer \xff"})
        assert raw.status_code == 401 and "token" in raw.json()["error"]
        assert requests.get(f"{url}/v1/services", timeout=2).json()["services"] == {}
        assert requests.delete(f"{url}/v1/services/popularity/instances/p1",
                               timeout=2).status_code == 401
        DirectoryClient(url, token="s3cret").register("popularity", "p1", "127.0.0.1:5001")
        assert [i["id"] for i in DirectoryClient(url).instances("popularity")] == ["p1"]


def test_a_subscription_waits_with_a_limit_and_says_no_change(directory):
    client = DirectoryClient(directory)
    with client.subscribe() as stream:
        assert stream.next(timeout=5).kind == "snapshot"
        started = time.monotonic()
        assert stream.next(timeout=0.3) is None  # nothing changed: no endless wait
        assert 0.3 <= time.monotonic() - started < 1.5
        client.register("popularity", "p1", "127.0.0.1:5001")
        put_ = stream.next(timeout=5)
        assert (put_.kind, put_.data["instance"]["id"]) == ("put", "p1")
        client.register("popularity", "p1", "127.0.0.1:5001")  # a renewal: no push
        assert stream.next(timeout=0.3) is None
    closed = time.monotonic()
    assert not stream.open and time.monotonic() - closed < 2


def test_a_subscription_says_when_the_directory_is_gone(tmp_path):
    with run_directory(log_path=tmp_path / "directory.log") as url:
        stream = DirectoryClient(url).subscribe()
        assert stream.next(timeout=5).kind == "snapshot"
    with pytest.raises(DirectoryError, match="ended"):
        stream.next(timeout=5)
    with pytest.raises(DirectoryError):  # and again, at once
        stream.next(timeout=5)
    stream.close()


def test_a_service_holds_at_most_the_cap_and_the_refusal_changes_nothing(directory):
    def fill(first: int) -> list[bool]:  # every 8th instance, on a keep-alive session
        with requests.Session() as session:  # leases longer than the filling takes
            return [session.put(f"{directory}/v1/services/crowd/instances/i{n}",
                                json={"address": "127.0.0.1:5001", "ttl": 600}, timeout=5).ok
                    for n in range(first, MAX_INSTANCES_PER_SERVICE, 8)]

    with ThreadPoolExecutor(8) as pool:
        assert all(ok for oks in pool.map(fill, range(8)) for ok in oks)
    before = requests.get(f"{directory}/v1/services", timeout=2).json()
    refused = put(directory, "crowd", "one-more", {"address": "127.0.0.1:5001"})
    assert refused.status_code == 409
    assert refused.json() == {"error": f"service 'crowd' already has "
                                       f"{MAX_INSTANCES_PER_SERVICE} instances, the most one "
                                       "service may have: deregister some first"}
    assert requests.get(f"{directory}/v1/services", timeout=2).json() == before
    assert put(directory, "crowd", "i0", {"address": "127.0.0.1:5009"}).ok  # an update
    assert put(directory, "other", "i0", {"address": "127.0.0.1:5001"}).ok


def health(url):
    return requests.get(f"{url}/health", timeout=2).json()


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def raw_watch(url):
    """A subscriber on a bare socket (a tiny receive buffer) that sends its GET and reads
    nothing until told."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((urlsplit(url).hostname, urlsplit(url).port))
    sock.sendall(b"GET /v1/watch HTTP/1.1\r\nHost: directory\r\n\r\n")
    assert wait_until(lambda: health(url)["subscribers"] == 1, 5)
    return sock


def closed_by_peer(sock, seconds):
    """Whether the Directory closes the connection within ``seconds`` (what it sends
    meanwhile is read and thrown away)."""
    deadline = time.monotonic() + seconds
    with sock:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                if not sock.recv(1 << 20):
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
    return False


def directory_process(url):
    port = str(urlsplit(url).port)
    return next(p for p in psutil.Process().children(recursive=True)
                if p.cmdline()[-2:] == ["--port", port])


def register_big(url, count, service="big"):
    """``count`` instances with 4 KB of metadata each (about the most a registration may
    carry): each push carries one of them."""
    session = requests.Session()
    for n in range(count):
        response = session.put(f"{url}/v1/services/{service}/instances/i{n}", timeout=5,
                               json={"address": "127.0.0.1:5001", "metadata": {"b": "x" * 4000}})
        assert response.ok
        yield n


def test_a_subscriber_that_stops_reading_is_cut_off_with_bounded_memory(directory, tmp_path):
    """3,000 pushes of 4 KB each (12 MB in all) for a reader that reads nothing: the
    Directory queues at most 1,000 messages for it, cuts it off, and says so in one line."""
    process = directory_process(directory)
    stalled = raw_watch(directory)
    before = peak = process.memory_info().rss
    for _ in register_big(directory, 3000):
        peak = max(peak, process.memory_info().rss)
    assert (peak - before) / 2**20 < 50, f"grew {(peak - before) / 2**20:.0f} MB"
    assert closed_by_peer(stalled, WRITE_TIMEOUT + 5)
    assert health(directory)["subscribers"] == 0
    log = (tmp_path / "directory.log").read_text()
    assert "disconnected" in log and "Traceback" not in log


def test_a_write_that_waits_too_long_cuts_the_subscriber_off(directory, tmp_path):
    """800 pushes (3.3 MB in all) fill the socket's buffers but not the queue's bounds: the
    write timeout alone ends the stream."""
    stalled = raw_watch(directory)
    started = time.monotonic()
    for _ in register_big(directory, 800):
        pass
    # Not a byte read meanwhile (reading would let the write finish):
    assert wait_until(lambda: health(directory)["subscribers"] == 0, WRITE_TIMEOUT + 5)
    assert WRITE_TIMEOUT <= time.monotonic() - started
    assert closed_by_peer(stalled, 5)
    assert "read nothing for" in (tmp_path / "directory.log").read_text()


def test_a_subscriber_that_closes_is_forgotten_at_once(directory, tmp_path):
    sock = raw_watch(directory)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()
    assert wait_until(lambda: health(directory)["subscribers"] == 0, 1.0)
    DirectoryClient(directory).register("popularity", "p1", "127.0.0.1:5001")
    time.sleep(0.3)  # a push after the close: nobody to send it to, nothing to log
    assert "Traceback" not in (tmp_path / "directory.log").read_text()
