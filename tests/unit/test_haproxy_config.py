"""HAProxy's configuration and the runtime API's slots, as pure logic (the real HAProxy is
in tests/e2e/test_approach_haproxy.py)."""

from __future__ import annotations

import pytest

from mwkit import procs
from mwkit.approaches.haproxy import (
    HaproxyReload,
    HaproxyRuntime,
    Server,
    assign_slots,
    render_config,
    server_name,
    servers_of,
)
from mwkit.errors import ProgramMissing


def instance(name: str, port: int) -> dict:
    return {"id": name, "address": f"127.0.0.1:{port}"}


def test_one_server_line_per_instance_in_a_stable_order():
    config = render_config(8080, "popularity",
                           servers_of([instance("p-2", 2002), instance("p-1", 2001)]))
    lines = [line.strip() for line in config.splitlines()]
    assert "bind 127.0.0.1:8080" in lines
    servers = [line for line in lines if line.startswith("server ")]
    assert servers == ["server p-1 127.0.0.1:2001 check inter 500ms fall 2 rise 1",
                       "server p-2 127.0.0.1:2002 check inter 500ms fall 2 rise 1"]
    assert "option httpchk GET /health" in lines and "option redispatch" in lines
    assert "retry-on conn-failure empty-response" in lines
    assert "stats socket" not in config and "server-template" not in config
    # the same list, in any order, is the same file: no reload for nothing
    assert config == render_config(8080, "popularity",
                                   servers_of([instance("p-1", 2001), instance("p-2", 2002)]))


def test_without_checks_there_is_no_check_and_no_retry():
    config = render_config(8080, "popularity", servers_of([instance("p-1", 2001)]),
                           check=False)
    assert "check" not in config and "redispatch" not in config and "retry-on" not in config
    assert "retries 0" in config


def test_slots_are_servers_in_maintenance_behind_an_admin_socket(tmp_path):
    config = render_config(8080, "popularity", slots=5, admin_socket=tmp_path / "h.sock")
    assert f"stats socket {tmp_path / 'h.sock'} level admin" in config
    assert "server-template s 1-5 127.0.0.1:1 disabled check" in config


def test_an_instance_id_becomes_a_server_name_haproxy_accepts():
    assert server_name("popularity-v1-1") == "popularity-v1-1"
    assert server_name("a b/c#d") == "a_b_c_d"


def test_new_instances_take_free_slots_and_leaving_ones_go_to_maintenance():
    slots, commands, left_out = assign_slots([None] * 3, [instance("a", 1001)], "be")
    assert commands == ["set server be/s1 addr 127.0.0.1 port 1001",
                        "set server be/s1 state ready"]
    assert slots == [Server("s1", "127.0.0.1:1001", "a"), None, None] and left_out == []

    slots, commands, _ = assign_slots(slots, [instance("a", 1001), instance("b", 1002)], "be")
    assert commands == ["set server be/s2 addr 127.0.0.1 port 1002",
                        "set server be/s2 state ready"]  # a keeps s1: nothing sent for it

    slots, commands, _ = assign_slots(slots, [instance("b", 1002)], "be")
    assert commands == ["set server be/s1 state maint"] and slots[0] is None

    slots, commands, _ = assign_slots(slots, [instance("b", 1002), instance("c", 1003)], "be")
    assert slots[0] == Server("s1", "127.0.0.1:1003", "c")  # the freed slot, reused
    assert commands[0] == "set server be/s1 addr 127.0.0.1 port 1003"


def test_a_moved_instance_keeps_its_slot_and_gets_the_new_address():
    slots, _, _ = assign_slots([None, None], [instance("a", 1001)], "be")
    slots, commands, _ = assign_slots(slots, [instance("a", 1009)], "be")
    assert commands == ["set server be/s1 addr 127.0.0.1 port 1009",
                        "set server be/s1 state ready"]
    assert slots == [Server("s1", "127.0.0.1:1009", "a"), None]


def test_instances_beyond_the_slots_are_left_out_and_named():
    slots, commands, left_out = assign_slots(
        [None], [instance("a", 1001), instance("b", 1002)], "be")
    assert [s.instance for s in slots] == ["a"] and left_out == ["b"] and len(commands) == 2


def test_a_missing_haproxy_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(procs, "SBIN", str(tmp_path))
    for approach in (HaproxyReload("http://127.0.0.1:9"), HaproxyRuntime("http://127.0.0.1:9")):
        with pytest.raises(ProgramMissing, match=r"apt-get install haproxy .*brew install haproxy"):
            approach.__enter__()


def test_slots_must_be_at_least_one():
    with pytest.raises(ValueError, match="slots"):
        HaproxyRuntime("http://127.0.0.1:9", slots=0)
