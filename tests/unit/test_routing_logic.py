"""Sherlock's picking logic and Watson's configuration, without the network."""

import random

import pytest

from mwkit.directory.client import Message
from mwkit.sherlock import Sherlock, policies
from mwkit.sherlock.adapter import service_of
from mwkit.sherlock.attempts import Call
from mwkit.sherlock.endpoint import EJECT_MAX, Endpoint
from mwkit.watson import ConfigError, WatsonConfig


def endpoints(n):
    return [Endpoint("svc", f"i{k}", f"127.0.0.1:{5000 + k}", f"http://127.0.0.1:{5000 + k}",
                     {}, 0.0) for k in range(n)]


def test_round_robin_takes_each_in_turn():
    pick, pool = policies.round_robin(), endpoints(3)
    assert [pick(pool).id for _ in range(6)] == ["i0", "i1", "i2", "i0", "i1", "i2"]


def test_least_request_avoids_the_busy_instance():
    pool = endpoints(2)
    pool[0].outstanding = 5
    pick = policies.least_request(random.Random(1))
    assert {pick(pool).id for _ in range(20)} == {"i1"}


def test_peak_ewma_routes_around_a_slow_instance():
    pool = endpoints(4)
    now = 0.0
    for endpoint in pool:
        endpoint.record(0.005, True, now)
    pool[2].record(1.5, True, now)  # one slow answer counts at once
    pick = policies.peak_ewma(random.Random(2))
    share = sum(pick(pool).id == "i2" for _ in range(400)) / 400
    assert share < 0.05  # round robin would give it 25 %


def test_ewma_forgives_slowly():
    endpoint = endpoints(1)[0]
    endpoint.record(1.0, True, now=0.0)
    endpoint.record(0.01, True, now=1.0)
    assert 0.8 < endpoint.latency_ewma < 1.0
    endpoint.record(0.01, True, now=60.0)
    assert endpoint.latency_ewma < 0.05


def test_ejection_doubles_and_a_success_resets_it():
    endpoint = endpoints(1)[0]
    endpoint.eject(now=0.0)
    assert not endpoint.available(0.5) and endpoint.available(1.0)
    for _ in range(10):
        endpoint.eject(now=0.0)
    assert endpoint.eject_seconds == EJECT_MAX
    endpoint.record(0.01, True, now=1.0)
    assert endpoint.available(1.0) and endpoint.eject_seconds == 1.0


def test_a_refused_instance_stays_out_for_its_lease():
    """By then the Directory has dropped a dead instance: no call reaches it again."""
    endpoint = endpoints(1)[0]
    endpoint.ttl = 3.0
    endpoint.eject(now=0.0)
    assert not endpoint.available(2.9) and endpoint.available(3.0)


@pytest.mark.parametrize("eject, calls_to_the_dead_one", [(True, 1), (False, 3)])
def test_a_refused_instance_is_ejected_unless_ejection_is_off(eject, calls_to_the_dead_one):
    """Round robin over a dead i0 and a live i1, six calls without retries: ejected after
    its first refusal, or (eject=False) called in turn as if it were alive."""
    nowhere = "http://127.0.0.1:9"  # no Directory: the table is fed by hand below
    with Sherlock(nowhere, retries=0, eject=eject) as sherlock:
        table = [{"service": "svc", "id": e.id, "address": e.address, "url": e.url}
                 for e in endpoints(2)]
        sherlock._apply(Message("snapshot", {"version": 1, "epoch": "e",
                                             "services": {"svc": table}}))
        tried = []
        for _ in range(6):
            call = Call(sherlock, "svc", "GET")
            for endpoint in call:
                tried.append(endpoint.id)
                call.refused() if endpoint.id == "i0" else call.answered(200)
        assert tried.count("i0") == calls_to_the_dead_one
        assert len(tried) == 6  # no retries: one attempt a call
        assert sherlock.counters()["i0"]["ejected"] is eject


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="unknown policy 'fastest'.*round_robin"):
        policies.make_policy("fastest")


@pytest.mark.parametrize("url, service", [
    ("http://popularity/", "popularity"),
    ("http://popularity/a?b=1", "popularity"),
    ("http://localhost/", None),
    ("http://127.0.0.1:5000/", None),
    ("http://example.org/", None),
    ("http://popularity:80/", None),
])
def test_which_urls_sherlock_routes(url, service):
    assert service_of(url) == service


def test_watson_reads_the_original_datawire_conf(tmp_path):
    conf = tmp_path / "datawire.conf"
    conf.write_text("[Datawire]\ndirectory_host = 127.0.0.1:5353\n\n[Watson]\n"
                    "service_url = http://127.0.0.1:5001\nservice_name = popularity\n"
                    "health_check_url = http://127.0.0.1:5001/health\nperiod = 3\n")
    config = WatsonConfig.from_file(conf, rise=2)
    assert (config.directory_url, config.period, config.rise) == ("127.0.0.1:5353", 3.0, 2)
    assert config.lease_ttl == 9.0


@pytest.mark.parametrize("body, message", [
    ("[Datawire]\ndirectory_host = x:1\n[Watson]\nservice_name = Bad Name\nservice_url = u\n"
     "health_check_url = u\n", "service name"),
    ("[Watson]\nservice_name = x\n", "missing service_url, health_check_url, directory_host"),
    ("[Watson]\nperiod = soon\n", "not a number"),
    ("[Watson]\ncolour = red\n", "unknown key 'colour'"),
    ("[Datawire]\ndirectory_host = x:1\n", "missing the \\[Watson\\] section"),
    ("not an ini file", "not a valid INI file"),
    ("[Datawire]\ndirectory_host = x:1\n[Watson]\nservice_name = x\nservice_url = u\n"
     "health_check_url = u\nperiod = nan\n", "finite"),
    ("[Datawire]\ndirectory_host = x:1\n[Watson]\nservice_name = x\nservice_url = u\n"
     "health_check_url = u\ntimeout = inf\n", "finite"),
    ("[Datawire]\ndirectory_host = x:1\n[Watson]\nservice_name = x\nservice_url = u\n"
     "health_check_url = u\nttl = nan\n", "finite"),
    ("[Datawire]\ndirectory_host = x:1\n[Watson]\nservice_name = x\n"
     "service_url = https://127.0.0.1:5001\nhealth_check_url = u\n", "plain http"),
])
def test_bad_datawire_conf_is_named(tmp_path, body, message):
    conf = tmp_path / "datawire.conf"
    conf.write_text(body)
    with pytest.raises(ConfigError, match=message):
        WatsonConfig.from_file(conf)
