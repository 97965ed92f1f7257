"""Pure DNS and DNS with health on a real dnsmasq, with real popularity instances (a stack
on processes) and a caller that resolves through the server with a TTL cache."""

from __future__ import annotations

import time
from types import SimpleNamespace

import dns.exception
import pytest
import requests

from mwkit import procs
from mwkit.approaches import Approach
from mwkit.approaches.dns import HealthDns, PureDns, lookup, srv_name
from mwkit.errors import ProgramMissing
from tests.helpers.wizard import wait_until


@pytest.fixture(scope="module")
def stack(process_stack):
    return process_stack


def popularity(stack) -> list[str]:
    """The ids of the popularity instances the stack deployed, as DNS names them."""
    return sorted(i.id for i in stack.wizard.state.instances() if i.service == "popularity")


class FrozenClock:
    """The caller's clock, moved by hand: what its cache keeps does not depend on how long
    a scale-up took on a busy machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.dnsmasq
def test_records_follow_a_scale_up_callers_see_it_after_the_ttl(stack):
    stack.scale(1)
    with PureDns(stack, ttl=5) as pure, HealthDns(stack, ttl=5) as health, \
            requests.Session() as session:
        assert isinstance(pure, Approach) and isinstance(health, Approach)
        (old,) = popularity(stack)
        clocks = {}
        for approach in (pure, health):
            assert approach.records() == [old]
            clocks[approach.name] = approach.caller.cache.clock = FrozenClock()
            first = approach.call(session)
            assert first.ok and first.instance == old and first.service_id, first
        stack.scale(2)
        pure.refresh()  # the deployment changed: the records follow (its poll may be first)
        wait_until(lambda: health.records() == popularity(stack), 10, "health DNS follows")
        assert pure.records() == popularity(stack)
        for approach in (pure, health):
            assert approach.costs() == {"DNS queries": 1, "record updates": 1}, approach.name
            stale = [approach.call(session) for _ in range(10)]  # the cached answer: old only
            assert {c.instance for c in stale} == {old} and all(c.ok for c in stale)
            clocks[approach.name].now += 5  # its TTL is over: the caller asks again
            fresh = [approach.call(session) for _ in range(30)]
            assert all(c.ok for c in fresh), [c.error for c in fresh if not c.ok]
            assert {c.instance for c in fresh} == set(popularity(stack)), approach.name
            assert len({c.service_id for c in fresh}) == 2
            assert approach.costs()["DNS queries"] == 2
        stack.scale(1)  # gracefully: the operator changed the deployment
        pure.refresh()
        assert pure.records() == [old]


@pytest.mark.dnsmasq
def test_the_server_hands_out_the_ttl_and_the_caller_keeps_the_answer_that_long(stack):
    stack.scale(1)
    with PureDns(stack, ttl=1) as pure, requests.Session() as session:
        assert lookup(pure.server.port, srv_name("popularity"), "SRV", 1.0).ttl == 1
        asked = time.monotonic()
        assert pure.call(session).ok and pure.costs()["DNS queries"] == 1
        assert pure.call(session).ok
        if time.monotonic() - asked < 0.9:  # (a very busy machine may take longer)
            assert pure.costs()["DNS queries"] == 1  # answered from the cache
        time.sleep(1.05)
        assert pure.call(session).ok and pure.costs()["DNS queries"] == 2


@pytest.mark.dnsmasq
def test_pure_dns_keeps_a_killed_instance_health_dns_drops_it(stack):
    stack.scale(2)
    with PureDns(stack, ttl=0) as pure, HealthDns(stack, ttl=0) as health, \
            requests.Session() as session:
        wait_until(lambda: len(health.records()) == 2, 10, "two registered instances")
        victim = popularity(stack)[0]
        stack.inject(victim, "crash")  # kill -9: the Directory lists it until its lease ends
        try:
            wait_until(lambda: victim not in health.records(), 10, "the lease runs out")
            pure.refresh()
            assert victim in pure.records()  # still deployed
            calls = [pure.call(session, timeout=1) for _ in range(30)]
            failed = [c for c in calls if not c.ok]
            assert failed, "30 calls among two records never picked the dead one"
            assert {(c.outcome, c.instance) for c in failed} == {("error", victim)}
            assert all(c.instance != victim for c in calls if c.ok)
            calls = [health.call(session, timeout=1) for _ in range(20)]
            assert all(c.ok and c.instance != victim for c in calls), calls
            assert health.costs()["DNS queries"] >= 20  # TTL 0: nothing is kept
        finally:
            stack.clear(victim)  # removes its row: now the deployment changed
        pure.refresh()
        assert victim not in pure.records()


@pytest.mark.dnsmasq
def test_no_record_is_no_service_and_a_closed_server_stays_closed(stack):
    stack.scale(0)
    with PureDns(stack, ttl=5) as pure, requests.Session() as session:
        call = pure.call(session)
        assert call.outcome == "no_service" and "_popularity._tcp" in call.error
        assert pure.costs()["DNS queries"] == 1
    stack.scale(1)
    assert not pure.refresh()  # closed: a late refresh (its thread's) starts no server
    assert not pure.server.folder.exists()
    with pytest.raises(dns.exception.Timeout):
        lookup(pure.server.port, srv_name("popularity"), "SRV", 0.3)


def test_without_dnsmasq_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(procs, "SBIN", str(tmp_path))
    with pytest.raises(ProgramMissing, match=r"dnsmasq is not installed: `apt-get install "
                                          r"dnsmasq-base`"):
        PureDns(SimpleNamespace(workdir=tmp_path), ttl=5)
