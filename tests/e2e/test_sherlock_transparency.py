"""Sherlock is transparent: requests' everyday features work through it as without it.

Two real httpbin instances (the ``httpbin`` package, each served by werkzeug in a process
of its own) are registered in a real Directory as the service ``httpbin``. Each feature is
used through the requests adapter (``sherlock.session()``, ``http://httpbin/...``) and
through the proxy (``http://127.0.0.1:PORT/httpbin/...``, run in this process so that its
call log can be read).

The launcher wraps httpbin in one small middleware, ``X-Request-Target``: the request
target exactly as the instance received it. httpbin's own echo (``/anything``) decodes
the path, so it cannot tell ``a%2Fb`` from ``a/b``.

``python tests/test_sherlock_transparency.py PORT NAME`` runs one instance (NAME only
labels the process, so that conftest's leak check sees it: it holds "mwkit").
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import importlib.util
import json
import os
import socket
import sys
import threading
import time

import pytest
import requests
from aiohttp import web
from requests.auth import HTTPDigestAuth

from mwkit.directory import DirectoryClient, run_directory
from mwkit.errors import NoInstances
from mwkit.procs import free_port, python_command, spawn, stop_group, wait_for_http
from mwkit.sherlock import Endpoint, Sherlock
from mwkit.sherlock.attempts import Call
from mwkit.sherlock.proxy import create_app

SERVICE = "httpbin"
ORIGIN = f"http://{SERVICE}"  # the logical origin, as a caller of the service writes it

NO_HTTPBIN = ("the httpbin package is not installed (on Python 3.11 its greenlet<3 pin clashes "
              "with playwright's: pip install --no-deps 'httpbin>=0.10.4' brotlicffi "
              "decorator six)")


# --- the instances, the Directory, the two ways in ---------------------------------------


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """Two httpbin processes: {name: address}."""
    if importlib.util.find_spec("httpbin") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(NO_HTTPBIN)
    logs = tmp_path_factory.mktemp("httpbin")
    started = {}
    try:
        for name in ("a", "b"):
            port = free_port()
            started[name] = (spawn(python_command(__file__, str(port), f"mwkit-httpbin-{name}"),
                                   log_path=logs / f"{name}.log"), f"127.0.0.1:{port}")
        for name, (proc, address) in started.items():
            wait_for_http(f"http://{address}/get", proc=proc, log_path=logs / f"{name}.log")
        yield {name: address for name, (_, address) in started.items()}
    finally:
        for proc, _ in started.values():
            stop_group(proc, grace=3)


def register(directory_url: str, addresses: dict[str, str]) -> None:
    client = DirectoryClient(directory_url)
    for name, address in addresses.items():
        client.register(SERVICE, name, address, ttl=600)


@pytest.fixture(scope="module")
def module_directory(instances, tmp_path_factory):
    with run_directory(log_path=tmp_path_factory.mktemp("directory") / "directory.log") as url:
        register(url, instances)
        yield url


@pytest.fixture(scope="module")
def adapter_sherlock(module_directory):
    with Sherlock(module_directory) as sherlock:
        sherlock.wait_for(SERVICE, 2)
        yield sherlock


@pytest.fixture
def sherlock(adapter_sherlock):
    """The adapter's Sherlock, its call log empty."""
    adapter_sherlock.calls.clear()
    return adapter_sherlock


@pytest.fixture
def session(sherlock):
    with sherlock.session() as session:
        yield session


@contextlib.contextmanager
def proxy_of(sherlock: Sherlock):
    """Sherlock's proxy served on a thread of this process; yields its URL."""
    port, loop = free_port(), asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="test-proxy")
    thread.start()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(create_app(sherlock), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = None
    try:
        runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield f"http://127.0.0.1:{port}"
    finally:
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(scope="module")
def proxy_pair(module_directory):
    """The proxy and its own Sherlock (a short timeout, for the timeout test)."""
    with Sherlock(module_directory, timeout=1.0) as sherlock, proxy_of(sherlock) as url:
        sherlock.wait_for(SERVICE, 2)
        yield url, sherlock


@pytest.fixture
def proxy(proxy_pair):
    """``http://127.0.0.1:PORT/httpbin``, the proxy's call log empty."""
    url, sherlock = proxy_pair
    sherlock.calls.clear()
    return f"{url}/{SERVICE}"


def attempts(sherlock: Sherlock) -> list[tuple[str, int | None, int]]:
    """(outcome, status, attempt) of each attempt in the call log."""
    return [(r.outcome, r.status, r.attempt) for r in sherlock.calls.records()]


# --- through the requests adapter -------------------------------------------------------


def test_params_and_the_logical_url(session, instances):
    response = session.get(f"{ORIGIN}/get", params={"q": "a&b", "n": ["1", "2"]})
    assert response.json()["args"] == {"q": "a&b", "n": ["1", "2"]}
    assert response.url == f"{ORIGIN}/get?q=a%26b&n=1&n=2"
    assert response.request.url == response.url
    assert response.instance in instances


def test_the_instance_sees_host_the_service(session):
    response = session.get(f"{ORIGIN}/headers")
    assert response.json()["headers"]["Host"] == SERVICE
    assert response.request.headers["Host"] == SERVICE


@pytest.mark.parametrize("path", ["/redirect/2", "/relative-redirect/2", "/absolute-redirect/2",
                                  f"/redirect-to?url={ORIGIN}/get"])
def test_redirects_are_followed_through_sherlock(session, sherlock, path):
    response = session.get(f"{ORIGIN}{path}")
    assert response.status_code == 200
    assert response.url == f"{ORIGIN}/get"
    assert all(hop.url.startswith(f"{ORIGIN}/") for hop in response.history)
    hops = len(response.history) + 1
    assert attempts(sherlock) == [("ok", 302, 1)] * (hops - 1) + [("ok", 200, 1)]


def test_gzip_is_decoded(session):
    response = session.get(f"{ORIGIN}/gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.json()["gzipped"] is True


def test_streaming(session, sherlock):
    with session.get(f"{ORIGIN}/stream/5", stream=True) as response:
        assert response.raw.tell() == 0  # nothing of the body read yet
        lines = [json.loads(line) for line in response.iter_lines()]
    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4]
    assert lines[0]["url"].endswith("/stream/5")
    assert attempts(sherlock) == [("ok", 200, 1)]


def test_multipart_upload(session):
    response = session.post(f"{ORIGIN}/post", data={"kind": "note"},
                            files={"upload": ("hello.txt", b"hello, world\n", "text/plain")})
    assert response.json()["files"] == {"upload": "hello, world\n"}
    assert response.json()["form"] == {"kind": "note"}


def test_cookies_stay_with_the_service(session, sherlock):
    response = session.get(f"{ORIGIN}/cookies/set", params={"flavour": "ginger"})
    assert response.json() == {"cookies": {"flavour": "ginger"}}  # after the redirect
    assert session.get(f"{ORIGIN}/cookies").json() == {"cookies": {"flavour": "ginger"}}
    assert session.get(f"{ORIGIN}/cookies").json() == {"cookies": {"flavour": "ginger"}}
    instances = {r.instance for r in sherlock.calls.records()}
    assert len(instances) == 2  # both instances were given the cookie


def test_basic_and_digest_auth(session, sherlock):
    assert session.get(f"{ORIGIN}/basic-auth/u/p", auth=("u", "p")).json() == \
        {"authenticated": True, "user": "u"}
    assert session.get(f"{ORIGIN}/basic-auth/u/p", auth=("u", "wrong")).status_code == 401
    sherlock.calls.clear()
    response = session.get(f"{ORIGIN}/digest-auth/auth/u/p", auth=HTTPDigestAuth("u", "p"))
    assert response.json() == {"authenticated": True, "user": "u"}
    assert attempts(sherlock) == [("ok", 401, 1), ("ok", 200, 1)]  # the challenge, then


def test_head(session):
    response = session.head(f"{ORIGIN}/get")
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["Content-Length"]) > 0
    assert response.url == f"{ORIGIN}/get"


def test_an_encoded_slash_stays_encoded(session):
    response = session.get(f"{ORIGIN}/anything/a%2Fb")
    assert response.headers["X-Request-Target"] == "/anything/a%2Fb"


def test_a_timeout_everywhere_is_raised(module_directory):
    """A GET that times out is tried once more on another instance (each attempt waits the
    caller's timeout); when that one times out too, the caller gets the timeout. Both are
    ejected (a fresh Sherlock: the module's must keep its instances)."""
    with Sherlock(module_directory) as sherlock, sherlock.session() as session:
        sherlock.wait_for(SERVICE, 2)
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.get(f"{ORIGIN}/delay/2", timeout=0.5)
        assert time.monotonic() - started < 1.9
        assert attempts(sherlock) == [("timeout", None, 1), ("timeout", None, 2)]
        assert all(c["ejected"] for c in sherlock.counters().values())


# --- through the proxy -----------------------------------------------------------------


def test_proxy_params_arrive_as_sent(proxy):
    response = requests.get(f"{proxy}/get?q=a%26b&n=1&n=2", timeout=5)
    assert response.json()["args"] == {"q": "a&b", "n": ["1", "2"]}
    assert response.headers["X-Request-Target"] == "/get?q=a%26b&n=1&n=2"


@pytest.mark.parametrize("target", [
    "/anything/a%2Fb?x=%2F",
    "/anything/a%2F..%2F..%2Fadmin",  # decoded, it would climb to /admin
    "/anything/a%3Fb",  # decoded, it would start a query
    "/anything/a%23b",  # decoded, it would cut the path
])
def test_proxy_forwards_the_path_as_sent(proxy, target):
    response = requests.get(f"{proxy}{target}", timeout=5)
    assert response.headers["X-Request-Target"] == target


def test_proxy_sends_host_the_service_and_adds_no_header(proxy):
    connection = http.client.HTTPConnection(proxy.split("/")[2], timeout=5)
    try:  # a bare request: no Accept, Accept-Encoding or User-Agent
        connection.putrequest("GET", f"/{SERVICE}/headers", skip_accept_encoding=True)
        connection.endheaders()
        headers = json.loads(connection.getresponse().read())["headers"]
    finally:
        connection.close()
    assert headers["Host"] == SERVICE
    assert not {"Accept", "Accept-Encoding", "User-Agent"} & set(headers)


def test_proxy_passes_redirects_back(proxy, proxy_pair):
    response = requests.get(f"{proxy}/redirect/2", allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == "/relative-redirect/1"
    absolute = requests.get(f"{proxy}/absolute-redirect/2", allow_redirects=False, timeout=5)
    assert absolute.headers["Location"] == f"{ORIGIN}/absolute-redirect/1"
    assert attempts(proxy_pair[1]) == [("ok", 302, 1)] * 2


def test_proxy_passes_every_set_cookie(proxy):
    response = requests.get(f"{proxy}/cookies/set?a=1&b=2", allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert sorted(response.raw.headers.getlist("Set-Cookie")) == ["a=1; Path=/", "b=2; Path=/"]
    assert requests.get(f"{proxy}/cookies", timeout=5).json() == {"cookies": {}}  # kept none


def test_proxy_does_not_decompress(proxy):
    with requests.get(f"{proxy}/gzip", stream=True, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        raw = response.raw.read(decode_content=False)
    assert json.loads(gzip.decompress(raw))["gzipped"] is True


def test_proxy_stream_upload_auth_head(proxy):
    lines = requests.get(f"{proxy}/stream/5", timeout=5).iter_lines()
    assert [json.loads(line)["id"] for line in lines] == [0, 1, 2, 3, 4]
    upload = requests.post(f"{proxy}/post", files={"upload": ("a.txt", b"data")}, timeout=5)
    assert upload.json()["files"] == {"upload": "data"}
    assert requests.get(f"{proxy}/basic-auth/u/p", auth=("u", "p"), timeout=5).ok
    assert requests.get(f"{proxy}/basic-auth/u/p", timeout=5).status_code == 401
    head = requests.head(f"{proxy}/get", timeout=5)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0


def test_proxy_timeout_everywhere_is_504(module_directory):
    with Sherlock(module_directory, timeout=0.5) as sherlock, proxy_of(sherlock) as url:
        sherlock.wait_for(SERVICE, 2)
        response = requests.get(f"{url}/{SERVICE}/delay/3", timeout=5)
        assert response.status_code == 504
        assert attempts(sherlock) == [("timeout", None, 1), ("timeout", None, 2)]


def test_a_hung_instance_costs_one_timeout_and_no_call(directory, instances):
    """An instance that accepts connections and never answers (SIGSTOPped, deadlocked):
    a GET that times out there is sent on to another instance, and the hung one is
    ejected, so later calls do not wait for it; a POST is not sent twice."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel accepts connections; nobody ever reads them
    register(directory, {"a": instances["a"], "hung": f"127.0.0.1:{hung.getsockname()[1]}"})
    with hung, contextlib.ExitStack() as stack:
        sherlock = stack.enter_context(Sherlock(directory))
        sherlock.wait_for(SERVICE, 2)
        session = stack.enter_context(sherlock.session())
        assert [session.get(f"{ORIGIN}/get", timeout=0.5).status_code
                for _ in range(4)] == [200] * 4
        assert [(r.instance, r.outcome, r.attempt) for r in sherlock.calls.records()
                if r.instance == "hung" or r.attempt == 2] == [("hung", "timeout", 1),
                                                               ("a", "ok", 2)]

        proxy_sherlock = stack.enter_context(Sherlock(directory, timeout=0.5))
        proxy_sherlock.wait_for(SERVICE, 2)
        proxy = stack.enter_context(proxy_of(proxy_sherlock))
        assert [requests.get(f"{proxy}/{SERVICE}/get", timeout=5).status_code
                for _ in range(4)] == [200] * 4
        assert [(r.instance, r.outcome, r.attempt) for r in proxy_sherlock.calls.records()
                if r.instance == "hung" or r.attempt == 2] == [("hung", "timeout", 1),
                                                               ("a", "ok", 2)]

        post_sherlock = stack.enter_context(Sherlock(directory))
        post_sherlock.wait_for(SERVICE, 2)
        post_session = stack.enter_context(post_sherlock.session())
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(post_session.post(f"{ORIGIN}/post", data=b"once",
                                                  timeout=0.5).status_code)
            except requests.exceptions.ReadTimeout:
                outcomes.append("timeout")
        assert sorted(map(str, outcomes)) == ["200", "timeout"]


# --- an instance that refuses: GET is retried elsewhere, POST is not --------------------


def test_only_idempotent_calls_are_retried_on_another_instance(directory, instances):
    register(directory, {"a": instances["a"], "dead": f"127.0.0.1:{free_port()}"})
    with contextlib.ExitStack() as stack:
        def fresh() -> Sherlock:  # a Sherlock that has not yet ejected the dead instance
            sherlock = stack.enter_context(Sherlock(directory))
            sherlock.wait_for(SERVICE, 2)
            return sherlock

        # Round robin over two: of two calls, one goes first to the dead instance.
        sherlock = fresh()
        session = stack.enter_context(sherlock.session())
        for _ in range(2):
            assert session.get(f"{ORIGIN}/get").status_code == 200
        assert [(r.instance, r.outcome, r.attempt) for r in sherlock.calls.records()
                if r.attempt == 2 or r.instance == "dead"] == [("dead", "refused", 1),
                                                                ("a", "ok", 2)]

        sherlock = fresh()
        session = stack.enter_context(sherlock.session())
        failed = []
        for _ in range(2):
            try:
                session.post(f"{ORIGIN}/post", data=b"once")
            except requests.ConnectionError as error:
                failed.append(error)
        assert len(failed) == 1
        assert sorted((r.instance, r.outcome, r.attempt) for r in sherlock.calls.records()) \
            == [("a", "ok", 1), ("dead", "refused", 1)]

        proxy_sherlock = fresh()
        proxy = stack.enter_context(proxy_of(proxy_sherlock))
        assert {requests.get(f"{proxy}/{SERVICE}/get", timeout=5).status_code
                for _ in range(2)} == {200}
        assert [(r.instance, r.outcome, r.attempt) for r in proxy_sherlock.calls.records()
                if r.attempt == 2 or r.instance == "dead"] == [("dead", "refused", 1),
                                                                ("a", "ok", 2)]
        proxy_sherlock = fresh()
        proxy = stack.enter_context(proxy_of(proxy_sherlock))
        statuses = sorted(requests.post(f"{proxy}/{SERVICE}/post", data=b"once",
                                        timeout=5).status_code for _ in range(2))
        assert statuses == [200, 502]
        assert sorted((r.instance, r.outcome, r.attempt)
                      for r in proxy_sherlock.calls.records()) == [("a", "ok", 1),
                                                                   ("dead", "refused", 1)]


# --- the shared retry loop on its own, without the network ------------------------------


class FakeRouter:
    """Sherlock's routing steps over fixed instances, recording every release."""

    retries, timeout, connect_timeout, deadline, retry_5xx = 1, 5.0, 0.5, None, False

    def __init__(self, *ids: str) -> None:
        self.endpoints = [Endpoint(SERVICE, i, f"127.0.0.1:{n}", f"http://127.0.0.1:{n}", {}, 0.0)
                          for n, i in enumerate(ids, 5000)]
        self.released: list[tuple[str, str, int | None, int]] = []
        self.no_instances = 0

    def acquire(self, service, exclude=frozenset()):
        for endpoint in self.endpoints:
            if endpoint.id not in exclude:
                endpoint.outstanding += 1
                return endpoint
        raise NoInstances(f"no instances of {service}")

    def release(self, endpoint, started_wall, began_monotonic, outcome, status, attempt,
                hedged=False, denied=None):
        assert abs(started_wall - time.time()) < 60 and began_monotonic <= time.monotonic()
        endpoint.outstanding -= 1
        self.released.append((endpoint.id, outcome, status, attempt))
        return False

    def call_started(self, service):
        pass

    def try_retry(self, service):
        return True

    def hedge_delay(self, service):
        return None

    def record_no_instances(self, service, started_wall):
        self.no_instances += 1


def test_a_refused_get_goes_to_another_instance_once():
    router = FakeRouter("a", "b", "c")
    call = Call(router, SERVICE, "GET")
    for endpoint in call:
        call.refused(ConnectionRefusedError(endpoint.id))
    assert router.released == [("a", "refused", None, 1), ("b", "refused", None, 2)]
    assert str(call.failure) == "b" and call.endpoint.id == "b"


def test_a_refused_post_is_not_sent_again():
    router = FakeRouter("a", "b")
    call = Call(router, SERVICE, "POST")
    for _ in call:
        call.refused()
    assert router.released == [("a", "refused", None, 1)]


def test_outcomes_and_no_instances():
    router = FakeRouter("a")
    call = Call(router, SERVICE, "GET")
    for _ in call:
        call.answered(503)
        break
    assert router.released == [("a", "error", 503, 1)]
    call = Call(router, SERVICE, "GET")
    with pytest.raises(NoInstances):  # the retry finds no other instance: not logged again
        for _ in call:
            call.refused()
    assert router.no_instances == 0
    nobody = FakeRouter()
    with pytest.raises(NoInstances):
        for _ in Call(nobody, SERVICE, "GET"):
            pass
    assert nobody.no_instances == 1 and nobody.released == []


def test_an_attempt_is_never_left_in_flight():
    router = FakeRouter("a", "b")
    with pytest.raises(KeyError):
        for _ in Call(router, SERVICE, "GET"):
            raise KeyError("the transport failed some other way")
    assert router.released == [("a", "error", None, 1)]
    with pytest.raises(RuntimeError, match="neither answered"):
        for _ in Call(router, SERVICE, "GET"):
            continue
    assert [e.outstanding for e in router.endpoints] == [0, 0]


# --- the launcher ------------------------------------------------------------------------


def with_request_target(app):
    """``app`` with ``X-Request-Target``: the request target as the server received it."""
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            headers.append(("X-Request-Target", environ.get("REQUEST_URI", "")))
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return wrapped


def serve(port: int) -> None:
    import httpbin
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, with_request_target(httpbin.app), threaded=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
