"""The Directory over real HTTP: reads, writes, push, bad input, the token."""

import threading
import time

import pytest
import requests

from mwkit.directory import DirectoryClient, DirectoryError, run_directory


def put(url, service, instance, body, **kwargs):
    return requests.put(f"{url}/v1/services/{service}/instances/{instance}", json=body,
                        timeout=2, **kwargs)


def test_registration_reaches_a_subscriber(directory):
    client = DirectoryClient(directory)
    messages, subscribed, got_update = [], threading.Event(), threading.Event()

    def follow():
        for message in DirectoryClient(directory).watch():
            messages.append(message)
            subscribed.set()
            if message.kind == "update":
                got_update.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    assert subscribed.wait(5)
    client.register("popularity", "p1", "127.0.0.1:5001", {"tag": "v1"})
    assert got_update.wait(5)
    snapshot, update = messages
    assert (snapshot.kind, snapshot.data["services"]) == ("snapshot", {})
    assert update.data["service"] == "popularity"
    assert update.data["instances"][0]["metadata"] == {"tag": "v1"}
    assert update.version == snapshot.version + 1


def test_a_reconnecting_subscriber_gets_what_it_missed(directory):
    client = DirectoryClient(directory)
    client.register("popularity", "p1", "127.0.0.1:5001")
    first = next(iter(client.watch()))
    client.register("popularity", "p2", "127.0.0.1:5002")
    client.deregister("popularity", "p1")
    stream = client.watch(since=first.version, epoch=first.epoch)
    replay = [next(stream), next(stream)]
    assert [m.kind for m in replay] == ["update", "update"]
    assert [m.version for m in replay] == [first.version + 1, first.version + 2]
    assert [i["id"] for i in replay[-1].data["instances"]] == ["p2"]
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
    assert next(stream).data["instances"][0]["id"] == "renewed"
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
        update = stream.next(timeout=5)
        assert (update.kind, [i["id"] for i in update.data["instances"]]) == ("update", ["p1"])
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
