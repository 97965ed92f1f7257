"""Directory + Watsons + Sherlock as real processes: calls keep flowing through failures."""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from mwkit.directory import DirectoryClient
from mwkit.procs import free_port, python_command, running, stop_group
from mwkit.sherlock import NoInstances, Sherlock
from tests.helpers.wizard import wait_until


def steady_calls(session, count, interval=0.01, during=None, at=None):
    """Make ``count`` calls ``interval`` apart, running ``during()`` once after ``at`` calls.

    Returns the instance that answered each call (an exception, if a call failed).
    """
    answers = []
    for n in range(count):
        if during is not None and n == at:
            during()
        try:
            answers.append(session.get("http://echo/", timeout=2).json()["instance"])
        except requests.RequestException as error:
            answers.append(error)
        time.sleep(interval)
    return answers


def test_calls_spread_over_instances_as_they_register(fleet, sherlock):
    session = sherlock.session()
    with pytest.raises(NoInstances, match="no instances of echo"):
        session.get("http://echo/", timeout=1)
    for name in ("a", "b", "c"):
        fleet.start(name)
    sherlock.wait_for("echo", 3, timeout=10)
    answers = [session.get("http://echo/", timeout=2).json()["instance"] for _ in range(30)]
    assert {name: answers.count(name) for name in "abc"} == {"a": 10, "b": 10, "c": 10}
    assert [r.outcome for r in sherlock.calls.records()].count("ok") == 30
    assert sherlock.calls.records()[0].outcome == "no_instances"
    assert sum(c["ok"] for c in sherlock.counters().values()) == 30


def test_kill_9_of_one_of_three_loses_no_call(fleet, sherlock):
    instances = [fleet.start(name) for name in ("a", "b", "c")]
    sherlock.wait_for("echo", 3)
    victim = instances[1]
    answers = steady_calls(sherlock.session(), 300, during=lambda: os.killpg(
        victim.service.pid, signal.SIGKILL), at=100)
    failures = [a for a in answers if not isinstance(a, str)]
    assert failures == []
    assert "b" in answers[:100] and "b" not in answers[101:]
    sherlock.wait_for("echo", 2, timeout=5)  # and Watson took it out of the Directory


def test_sigterm_to_watson_drains_with_no_lost_call(fleet, sherlock):
    instances = [fleet.start(name, drain=1.0) for name in ("a", "b", "c")]
    sherlock.wait_for("echo", 3)
    victim = instances[0]

    def scale_down():
        victim.watson.send_signal(signal.SIGTERM)  # Watson deregisters, then drains

    session = sherlock.session()
    answers = steady_calls(session, 150, during=scale_down, at=50)
    assert victim.watson.wait(timeout=5) == 0
    stop_group(victim.service)  # only now does the instance itself go
    answers += steady_calls(session, 50)
    assert [a for a in answers if not isinstance(a, str)] == []
    assert "a" in answers[:50] and "a" not in answers[60:]


def test_a_directory_restart_loses_no_call(make_fleet, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = python_command("-m", "mwkit", "directory", "--port", str(port))
    with running(command, ready_url=f"{url}/health", log_path=tmp_path / "d1.log") as first:
        fleet = make_fleet(url)
        for name in ("a", "b", "c"):
            fleet.start(name)
        with Sherlock(url) as sherlock:
            session = sherlock.session()
            sherlock.wait_for("echo", 3)
            answers = steady_calls(session, 50)
            stop_group(first)
            answers += steady_calls(session, 50)  # the Directory is down: last-known table
            with running(command, ready_url=f"{url}/health", log_path=tmp_path / "d2.log"):
                answers += steady_calls(session, 50)
                deadline = time.monotonic() + 3  # Watsons re-register within a period
                while len(DirectoryClient(url).instances("echo")) < 3:
                    assert time.monotonic() < deadline, "the Watsons did not re-register"
                    time.sleep(0.05)
                # it tries the Directory again at most RECONNECT_MAX (1 s) apart: it may
                # still be waiting when the Watsons are back
                wait_until(lambda: sherlock.connected, 3, "Sherlock back on the stream")
                sherlock.wait_for("echo", 3, timeout=3)
                answers += steady_calls(session, 60)
    assert [a for a in answers if not isinstance(a, str)] == []
    assert set(answers[-60:]) == {"a", "b", "c"}


def test_the_proxy_routes_and_strips_the_prefix(fleet, directory, tmp_path):
    fleet.start("a")
    port = free_port()
    proxy = python_command("-m", "mwkit", "sherlock", "--directory", directory,
                           "--listen", f"127.0.0.1:{port}")
    with running(proxy, log_path=tmp_path / "proxy.log"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/echo/some/path?x=1",
                                        timeout=1)
                if response.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        assert response.json() == {"instance": "a", "path": "/some/path?x=1",
                                   "deadline": None}  # no deadline unless asked for
        assert response.headers["X-Sherlock-Instance"] == "a"
        missing = requests.get(f"http://127.0.0.1:{port}/nothing/here", timeout=2)
        assert missing.status_code == 503
        assert missing.json()["error"].startswith("no instances of nothing")


def test_an_answer_cut_off_after_its_headers_is_retried(fleet, directory, sherlock):
    """An instance killed between its headers and its body: the call goes elsewhere."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def cut_off_answers():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"inst")

    threading.Thread(target=cut_off_answers, daemon=True).start()
    try:
        fleet.start("a")
        cut_address = f"127.0.0.1:{listener.getsockname()[1]}"
        DirectoryClient(directory).register("echo", "cut", cut_address, ttl=30)
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        answers = [session.get("http://echo/", timeout=2).json()["instance"] for _ in range(6)]
    finally:
        listener.close()
    assert answers == ["a"] * 6
    assert "refused" in [r.outcome for r in sherlock.calls.records() if r.instance == "cut"]


def test_a_restarted_directory_loses_no_call_while_instances_register_again(tmp_path,
                                                                             make_fleet):
    """The new Directory's first snapshot is empty: Sherlock routes to what it knew for one
    lease (here nobody registers again, so after the lease the instance is gone)."""
    from mwkit.directory import start_directory

    port = free_port()
    first, url = start_directory(port=port, log_path=tmp_path / "first.log")
    try:
        echo = make_fleet(url).start("echo-1", watson=False)
        DirectoryClient(url).register("echo", "echo-1", f"127.0.0.1:{echo.port}", ttl=3)
        with Sherlock(url) as sherlock, sherlock.session() as session:
            sherlock.wait_for("echo", 1)
            old_epoch = sherlock.epoch
            stop_group(first)
            second, _ = start_directory(port=port, log_path=tmp_path / "second.log")
            try:
                deadline = time.monotonic() + 10
                while sherlock.epoch == old_epoch and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert sherlock.epoch != old_epoch, "Sherlock never saw the new Directory"
                assert sherlock.instances("echo") == []  # the new Directory lists nothing
                answered = session.get("http://echo/", timeout=2).json()["instance"]
                assert answered == "echo-1"
                time.sleep(3.5)  # the grace (one lease) is over, nobody registered again
                with pytest.raises(requests.ConnectionError):
                    session.get("http://echo/", timeout=2)
            finally:
                stop_group(second)
    finally:
        stop_group(first)
