"""The Directory's state machine, with a hand-driven clock."""

import pytest

from mwkit.directory import validate
from mwkit.directory.registry import MAX_INSTANCES_PER_SERVICE, Registry, ServiceFull
from mwkit.directory.validate import BadRequest


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def registry(clock):
    return Registry(clock=clock, history=3)


def test_register_pushes_only_the_new_instance_and_bumps_the_version(registry):
    first = registry.register("popularity", "a", "127.0.0.1:5001", {}, 10)
    second = registry.register("popularity", "b", "127.0.0.1:5002", {"tag": "v1"}, 10)
    assert (first.version, second.version) == (1, 2)
    assert (second.kind, second.instance_id) == ("put", "b")
    assert second.to_json() == {"version": 2, "service": "popularity",
                                "instance": registry.instances("popularity")[1]}
    assert second.instance["url"] == "http://127.0.0.1:5002"
    assert second.instance["metadata"] == {"tag": "v1"}


def test_renewal_by_registering_again_is_not_a_change(registry):
    registry.register("popularity", "a", "127.0.0.1:5001", {}, 10)
    assert registry.register("popularity", "a", "127.0.0.1:5001", {}, 10) is None
    moved = registry.register("popularity", "a", "127.0.0.1:5009", {}, 10)
    assert moved.version == 2 and registry.events[-1].kind == "updated"


def test_lease_expires_unless_renewed(registry, clock):
    registry.register("popularity", "a", "127.0.0.1:5001", {}, 2)
    registry.register("popularity", "b", "127.0.0.1:5002", {}, 2)
    clock.now += 1.5
    assert registry.heartbeat("popularity", "a")
    clock.now += 1.0
    changes = registry.expire()
    assert [(c.kind, c.instance_id) for c in changes] == [("delete", "b")]
    assert changes[0].to_json() == {"version": 3, "service": "popularity", "id": "b"}
    assert [i["id"] for i in registry.instances("popularity")] == ["a"]
    assert registry.events[-1].kind == "expired"
    clock.now += 5
    assert [(c.kind, c.instance_id) for c in registry.expire()] == [("delete", "a")]
    assert registry.snapshot()["services"] == {}
    assert not registry.heartbeat("popularity", "a")


def test_deregister_removes_at_once_and_empties_the_service(registry):
    registry.register("popularity", "a", "127.0.0.1:5001", {}, 10)
    change = registry.deregister("popularity", "a")
    assert (change.kind, change.instance_id) == ("delete", "a")
    assert registry.snapshot()["services"] == {}
    assert registry.deregister("popularity", "a") is None


def test_changes_since_replays_every_change_missed_in_order(registry):
    big = Registry(history=100)
    for n in range(5):
        big.register("popularity", f"i{n}", f"127.0.0.1:{5000 + n}", {}, 10)
    big.register("echo", "e", "127.0.0.1:6000", {}, 10)  # version 6
    big.deregister("popularity", "i0")  # version 7
    epoch = big.epoch
    replay = big.changes_since(epoch, 3)
    assert [(c.version, c.service, c.kind, c.instance_id) for c in replay] == [
        (4, "popularity", "put", "i3"), (5, "popularity", "put", "i4"),
        (6, "echo", "put", "e"), (7, "popularity", "delete", "i0")]
    assert big.changes_since(epoch, 7) == []
    assert big.changes_since("another-epoch", 4) is None
    assert big.changes_since(epoch, 99) is None
    assert big.changes_since(epoch, -1) is None


def test_a_subscriber_further_behind_than_the_history_needs_a_snapshot(registry):
    for n in range(5):  # history=3: versions 3, 4 and 5 are kept
        registry.register("popularity", f"i{n}", "127.0.0.1:5000", {}, 10)
    assert registry.changes_since(registry.epoch, 1) is None
    assert [c.version for c in registry.changes_since(registry.epoch, 2)] == [3, 4, 5]


def test_a_change_costs_the_same_in_a_service_of_any_size():
    """A change holds one instance, shared with its registration (no copy, no list), so
    the work and the bytes of a change do not grow with the service's size; the history is
    bounded in changes."""
    big = Registry(history=100)
    for n in range(2000):
        change = big.register("popularity", f"i{n}", "127.0.0.1:5000", {}, 10)
    assert change.instance is big._services["popularity"]["i1999"].to_json()
    assert len(change.to_json()) == 3 and len(big._history) == 100
    assert len(big.changes_since(big.epoch, 1990)) == 10


def test_a_service_holds_at_most_max_instances_and_a_refusal_changes_nothing(clock):
    registry = Registry(clock=clock, max_instances=2)
    registry.register("popularity", "a", "127.0.0.1:5001", {}, 10)
    registry.register("popularity", "b", "127.0.0.1:5002", {}, 10)
    before = (registry.snapshot(), list(registry.events))
    with pytest.raises(ServiceFull, match="'popularity' already has 2 instances"):
        registry.register("popularity", "c", "127.0.0.1:5003", {}, 10)
    assert (registry.snapshot(), list(registry.events)) == before
    assert registry.register("popularity", "b", "127.0.0.1:5009", {}, 10)  # an update: fine
    assert registry.register("other", "c", "127.0.0.1:5003", {}, 10)  # another service
    registry.deregister("popularity", "a")
    assert registry.register("popularity", "c", "127.0.0.1:5003", {}, 10)  # room again
    assert MAX_INSTANCES_PER_SERVICE == 10_000


@pytest.mark.parametrize("body, message", [
    ([], "must be a JSON object"),
    ({}, "missing field 'address'"),
    ({"address": "127.0.0.1"}, "needs a port"),
    ({"address": "127.0.0.1:0"}, "needs a port"),
    ({"address": "127.0.0.1:70000"}, "outside 1-65535"),
    ({"address": "bad host:80"}, "invalid host"),
    ({"address": "h\nx:1"}, "control character"),
    ({"address": "host.\n:80"}, "control character"),
    ({"address": "x:80", "metadata": {"a": float("nan")}}, "finite"),
    ({"address": "x:80", "metadata": {"a": float("inf")}}, "finite"),
    ({"address": "http://x:80/path"}, "without a path"),
    ({"address": "ftp://x:80"}, "must be host:port"),
    ({"address": 5}, "must be a string"),
    ({"address": "x:80", "ttl": 0}, "'ttl'"),
    ({"address": "x:80", "ttl": True}, "'ttl'"),
    ({"address": "x:80", "metadata": []}, "'metadata'"),
    ({"address": "x:80", "metadata": {"a": {"nested": 1}}}, "metadata 'a'"),
    ({"address": "x:80", "metadata": {"a": "x" * 5000}}, "larger than"),
    ({"address": "x:80", "color": "red"}, "unknown field"),
])
def test_bad_registrations_say_what_is_wrong(body, message):
    with pytest.raises(BadRequest, match=message):
        validate.registration(body)


def test_addresses_are_normalised():
    assert validate.address("http://127.0.0.1:80/") == "127.0.0.1:80"
    assert validate.address("[::1]:80") == "[::1]:80"
    assert validate.address("popularity-1:5000") == "popularity-1:5000"


@pytest.mark.parametrize("name", ["Popularity", "1abc", "-x", "a/b", "..", "a" * 101, "",
                                  "svcnl\n"])
def test_bad_service_names(name):
    with pytest.raises(BadRequest):
        validate.service_name(name)


@pytest.mark.parametrize("value", ["id\n", "a\nb"])
def test_bad_instance_ids(value):
    with pytest.raises(BadRequest):
        validate.instance_id(value)


@pytest.mark.parametrize("value", ["\u00b2", "-1", "1.5", "x", "1" * 19, "1" * 5000])
def test_a_version_is_a_few_ascii_digits(value):
    with pytest.raises(BadRequest, match="'since'"):
        validate.version(value)
