"""etcd as the Directory: real etcd members, real Watsons, a real Sherlock, real HTTP."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mwkit.directory import ServiceTable, directory_client
from mwkit.directory.etcd import EtcdDirectoryClient, lease_seconds
from mwkit.directory.etcd_cluster import EtcdCluster
from mwkit.errors import DirectoryError
from mwkit.sherlock import Sherlock
from mwkit.stack import Stack
from mwkit.traffic import EventLog
from tests.e2e.test_discovery import steady_calls
from tests.e2e.test_stack import leftovers

pytestmark = pytest.mark.etcd


@pytest.fixture
def cluster(tmp_path):
    with EtcdCluster(tmp_path / "etcd", size=3) as three:
        yield three


def test_the_client_registers_lists_watches_and_expires(cluster):
    client = directory_client(cluster.url)
    assert isinstance(client, EtcdDirectoryClient)
    client.register("popularity", "p1", "127.0.0.1:5001", {"tag": "v1"}, ttl=0.5)
    with client.subscribe() as stream:
        snapshot = stream.next(5)
        assert snapshot.kind == "snapshot"
        [listed] = snapshot.data["services"]["popularity"]
        assert (listed["address"], listed["metadata"], listed["ttl"]) == (
            "127.0.0.1:5001", {"tag": "v1"}, float(lease_seconds(0.5)))  # whole seconds, >= 2
        client.register("popularity", "p2", "127.0.0.1:5002")
        table = ServiceTable()
        table.apply(snapshot)
        put_ = stream.next(5)
        assert (put_.kind, put_.data["instance"]["address"]) == ("put", "127.0.0.1:5002")
        assert put_.version > snapshot.version
        assert [i["id"] for i in table.instances("popularity")] == ["p1"]
        table.apply(put_)
        assert [i["id"] for i in table.instances("popularity")] == ["p1", "p2"]
        assert client.deregister("popularity", "p2")
        gone = stream.next(5)
        assert (gone.kind, gone.data["service"], gone.data["id"]) == ("delete", "popularity", "p2")
        # p1 is never renewed: its lease runs out and etcd deletes its key
        expired = stream.next(lease_seconds(0.5) + 3)
        assert expired is not None and (expired.kind, expired.data["id"]) == ("delete", "p1")
        table.apply(gone)
        table.apply(expired)
        assert table.services() == {}
    assert client.heartbeat("popularity", "p1") is False  # Watson would register again
    assert client.services() == {}


def test_the_event_log_tells_a_goodbye_from_an_expiry(cluster):
    """etcd deletes the key in both cases; the goodbye put in the same revision is the
    difference. The events carry the time they were seen, for the plots."""
    with EventLog(cluster.url, service=None) as log, directory_client(cluster.url) as client:
        started = time.time()
        client.register("popularity", "polite", "127.0.0.1:5001")
        client.register("popularity", "crashed", "127.0.0.1:5002", ttl=0.5)
        client.register("popularity", "polite", "127.0.0.1:5003")  # moved: an update
        assert client.deregister("popularity", "polite")
        time.sleep(lease_seconds(0.5) + 2)
        log.poll()
        seen = [(e["kind"], e["instance"], e["address"]) for e in log.events()]
    assert seen == [("registered", "polite", "127.0.0.1:5001"),
                    ("registered", "crashed", "127.0.0.1:5002"),
                    ("updated", "polite", "127.0.0.1:5003"),
                    ("deregistered", "polite", "127.0.0.1:5003"),
                    ("expired", "crashed", "127.0.0.1:5002")]
    times = [e["time"] for e in log.events()]
    assert started <= times[0] <= times[-1] <= time.time()
    assert times[-1] - times[0] >= lease_seconds(0.5) - 0.5  # seen when it expired, not later
    with EventLog(cluster.url, service=None) as later:  # made afterwards, it replays etcd's
        replayed = later.events()                       # history, as the Directory's log
    assert [(e["kind"], e["instance"], e["address"]) for e in replayed] == seen
    assert [e["time"] for e in replayed[:4]] == pytest.approx(times[:4], abs=0.5)


def test_bad_input_is_refused_before_etcd_is_written(cluster):
    client = directory_client(cluster.url)
    for service, instance, address, message in [
        ("Popularity", "p1", "127.0.0.1:5001", "must match"),
        ("popularity", "../x", "127.0.0.1:5001", "instance id"),
        ("popularity", "p1", "127.0.0.1:99999", "outside 1-65535"),
        ("popularity", "p1", "https://127.0.0.1:5001", "plain http"),
    ]:
        with pytest.raises(DirectoryError, match=message):
            client.register(service, instance, address)
    assert client.services() == {}
    with pytest.raises(DirectoryError, match="not host:port"):
        directory_client("etcd://127.0.0.1:2379,/x")


def test_kill_9_of_an_etcd_member_loses_no_call(cluster, make_fleet):
    """Watsons register into etcd, Sherlock lists and watches it; kill -9 the member every
    client talks to first, under steady calls: no call fails, the table stays live (an
    instance killed afterwards still leaves it when its lease expires), and the member
    comes back."""
    fleet = make_fleet(cluster.url)
    instances = [fleet.start(name, ttl=2) for name in ("a", "b", "c")]
    with Sherlock(cluster.url) as sherlock:
        sherlock.wait_for("echo", 3)
        session = sherlock.session()
        answers = steady_calls(session, 200, during=lambda: cluster.kill(0), at=50)
        assert [a for a in answers if not isinstance(a, str)] == []
        assert set(answers[-50:]) == {"a", "b", "c"}

        # kill -9 an instance and its Watson: nothing deregisters it, only its lease ends
        os.killpg(instances[2].service.pid, signal.SIGKILL)
        os.killpg(instances[2].watson.pid, signal.SIGKILL)
        started = time.monotonic()
        sherlock.wait_for("echo", 2, timeout=15)
        assert time.monotonic() - started < lease_seconds(2) + 5
        assert {i.id for i in sherlock.instances("echo")} == {"a", "b"}

        cluster.restart(0)
        fleet.start("d", ttl=2)
        sherlock.wait_for("echo", 3, timeout=15)
        assert [a for a in steady_calls(session, 30) if not isinstance(a, str)] == []


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_stack_on_etcd_loses_no_reload_when_a_member_is_killed(tmp_path, runtime):
    """The whole demo stack with etcd as its Directory (member processes, or containers on
    the stack's network): Watsons register, the monolith's Sherlock routes, kill -9 of a
    member under steady page reloads fails none, the member comes back, and the stack's
    teardown removes the cluster with everything else."""
    with Stack(tmp_path / "work", runtime=runtime, registry="etcd") as stack:
        assert stack.directory_url.startswith("etcd://") and len(stack.etcd.members) == 3
        stack.scale(2)
        with stack.reloads(rate=20, duration=4) as reloads:
            time.sleep(1)
            stack.etcd.kill(0)
            reloads.wait(10)
        records = reloads.records()
        assert len(records) >= 60 and [r for r in records if not r.ok] == []
        assert {r.instance for r in records[-20:]} == {"popularity-v1-1", "popularity-v1-2"}
        stack.scale(3)  # registrations still work on two members of three
        assert {i["id"] for i in stack.directory().instances("popularity")} == {
            "popularity-v1-1", "popularity-v1-2", "popularity-v1-3"}
        stack.etcd.restart(0)
        assert stack.directory().health()["status"] == "ok"
    assert leftovers(stack) == []
