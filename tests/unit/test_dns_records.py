"""The DNS approaches' pure logic: the records dnsmasq is given, the caller's TTL cache on a
moved clock, and the weighted pick among SRV records."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from mwkit.approaches.dns import (
    Lookup,
    PureDns,
    Record,
    Target,
    TtlCache,
    label,
    parse_target,
    pick,
    render_records,
)
from mwkit.errors import InvalidInput


def test_records_carry_each_instance_port_and_the_ttl():
    text = render_records("popularity", [Target("popularity-v1-2", "127.0.0.1", 41002),
                                         Target("popularity-v1-1", "127.0.0.1", 41001),
                                         Target("popularity-v1-1", "127.0.0.1", 41001)], ttl=7)
    lines = text.splitlines()
    assert "local=/mwkit.test/" in lines and "local-ttl=7" in lines
    # one SRV record per instance (duplicates once), in a stable order, and its A record
    assert [line for line in lines if line.startswith(("srv-host", "host-record"))] == [
        "host-record=popularity-v1-1.popularity.mwkit.test,127.0.0.1",
        "srv-host=_popularity._tcp.mwkit.test,popularity-v1-1.popularity.mwkit.test,41001,0,10",
        "host-record=popularity-v1-2.popularity.mwkit.test,127.0.0.1",
        "srv-host=_popularity._tcp.mwkit.test,popularity-v1-2.popularity.mwkit.test,41002,0,10",
    ]


def test_no_instance_no_record():
    assert "srv-host" not in render_records("popularity", [], ttl=5)


def test_addresses_and_instance_ids_become_targets_and_labels():
    assert parse_target("a", "127.0.0.1:8080") == Target("a", "127.0.0.1", 8080)
    assert parse_target("a", "http://127.0.0.1:8080") == Target("a", "127.0.0.1", 8080)
    assert parse_target("a", None) is None and parse_target("a", "127.0.0.1") is None
    assert label("Popularity_V1.2") == "popularity-v1-2"
    assert len(label("x" * 100)) == 63


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ANSWER = Lookup((Record("a.popularity.mwkit.test", 8080, 0, 10, "127.0.0.1"),), ttl=5)


def test_an_answer_is_kept_for_its_ttl_and_not_a_moment_longer():
    clock = Clock()
    cache = TtlCache(clock)
    key = ("_popularity._tcp.mwkit.test", "SRV")
    assert cache.get(key) is None
    cache.put(key, ANSWER)
    clock.now += 4.99
    assert cache.get(key) is ANSWER
    clock.now += 0.01  # the TTL is over: ask the server again
    assert cache.get(key) is None
    cache.put(key, ANSWER)  # the new answer counts from now
    clock.now += 4.0
    assert cache.get(key) is ANSWER


@pytest.mark.parametrize("answer", [Lookup(ANSWER.records, ttl=0), Lookup((), ttl=5)],
                         ids=["ttl 0", "no record"])
def test_a_ttl_of_zero_and_an_empty_answer_are_not_kept(answer):
    cache = TtlCache(Clock())
    cache.put(("name", "SRV"), answer)
    assert cache.get(("name", "SRV")) is None


def test_the_pick_follows_priority_then_weight():
    rng = random.Random(15)
    records = [Record("a", 1, 0, 10), Record("b", 2, 0, 30), Record("backup", 3, 1, 100)]
    picked = Counter(pick(records, rng).target for _ in range(4000))
    assert "backup" not in picked  # only when no record of priority 0 is left
    assert 0.7 < picked["b"] / 4000 < 0.8  # weight 30 of 40
    assert pick([Record("backup", 3, 1, 100)], rng).target == "backup"
    zeros = Counter(pick([Record("a", 1, 0, 0), Record("b", 2, 0, 0)], rng).target
                    for _ in range(1000))
    assert set(zeros) == {"a", "b"}  # every weight 0: uniform


@pytest.mark.parametrize("ttl", [-1, 2.5, "5"])
def test_a_ttl_is_whole_seconds(ttl, tmp_path):
    with pytest.raises(InvalidInput, match="whole number of seconds"):
        PureDns(SimpleNamespace(workdir=tmp_path), ttl=ttl)
