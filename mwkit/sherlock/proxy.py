"""Sherlock as a local HTTP proxy, for monoliths not written in Python.

As the original did with HAProxy: ``http://127.0.0.1:8000/<service>/rest`` goes to an
instance of ``<service>`` as ``/rest``. Unlike the original there is no config file to
regenerate and reload: the proxy reads Sherlock's live table on every call.

It is transparent: the rest of the path and the query go on exactly as received (``%2F``
stays ``%2F``), the instance sees ``Host: <service>``, and the answer comes back as the
instance gave it: a redirect with its ``Location`` (not followed), a compressed body still
compressed, every ``Set-Cookie``. The proxy keeps no cookies and adds no header of its own
upstream (but :data:`~mwkit.sherlock.attempts.DEADLINE_HEADER` when Sherlock has a
deadline); it adds ``X-Sherlock-Instance`` (which instance answered) to the answer.

A hedged call (Sherlock's ``hedge``) runs its two attempts as tasks: the first answer
wins, the other is cancelled and logged as ``"cancelled"``.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mwkit.aio import new_event_loop
from mwkit.errors import NoInstances
from mwkit.names import SERVICE_NAME
from mwkit.sherlock.attempts import DEADLINE_HEADER, Attempt, Call, Router, deadline_of

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
#: Headers aiohttp would add upstream when the caller sent none (a client that did not send
#: ``Accept-Encoding`` must not get a compressed answer).
NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent")


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The headers that go on past the proxy, every one of a repeated name kept."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


def rest_of(request: web.Request) -> str:
    """``/rest?query`` of ``/<service>/rest?query``, still percent-encoded as received."""
    url = request.rel_url
    _, _, rest = url.raw_path.lstrip("/").partition("/")
    return f"/{rest}?{url.raw_query_string}" if url.raw_query_string else f"/{rest}"


class Proxy:
    """Forwards ``/<service>/rest`` to an instance of ``<service>`` as ``/rest``."""

    def __init__(self, sherlock: Router) -> None:
        self.sherlock = sherlock
        self.client: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        if not SERVICE_NAME.fullmatch(service):
            return error(400, f"{service!r} is not a service name")
        body = await request.read() if request.body_exists else None
        headers = end_to_end(request.headers)
        headers["Host"] = service
        rest = rest_of(request)
        call = Call(self.sherlock, service, request.method,
                    deadline_of(request.headers.get(DEADLINE_HEADER)))
        try:
            for _ in call:
                delay = call.hedge_delay()
                if delay is None:
                    answered = await self._attempt(call, call.current, request, body, headers,
                                                   rest)
                else:
                    answered = await self._hedged(call, delay, request, body, headers, rest)
                if answered is not None:
                    upstream, payload, attempt = answered
                    return answer(request, upstream, payload, attempt.endpoint.id)
        except NoInstances as reason:
            return error(503, str(reason))
        if call.kept is not None:  # a 5xx answer, and no other instance left to ask
            upstream, payload, attempt = call.kept
            return answer(request, upstream, payload, attempt.endpoint.id)
        if call.timed_out_last:
            return error(504, f"{service} instance {call.endpoint.id} did not answer in time")
        return error(502, f"{service} instance {call.endpoint.id} failed: {call.failure}")

    async def _attempt(self, call: Call, attempt: Attempt, request: web.Request,
                       body: bytes | None, headers: CIMultiDict[str], rest: str):
        """Send one attempt and record it: ``(upstream, payload, attempt)``, or None when
        the instance did not answer."""
        headers = CIMultiDict(headers)
        headers.update(attempt.headers())
        timeout = aiohttp.ClientTimeout(total=attempt.timeout(self.sherlock.timeout),
                                        sock_connect=self.sherlock.connect_timeout)
        try:
            async with self.client.request(
                    request.method, URL(attempt.endpoint.url + rest, encoded=True),
                    headers=headers, data=body, allow_redirects=False,
                    timeout=timeout) as upstream:
                payload = await upstream.read()
        except TimeoutError as reason:
            call.timed_out(reason, attempt)
            return None
        except aiohttp.ClientError as reason:
            call.refused(reason, attempt)
            return None
        if call.answered(upstream.status, attempt):
            return upstream, payload, attempt
        call.set_aside((upstream, payload, attempt))  # a 5xx to retry elsewhere (retry_5xx)
        return None

    async def _hedged(self, call: Call, delay: float, request: web.Request,
                      body: bytes | None, headers: CIMultiDict[str], rest: str):
        """The current attempt and, after ``delay`` s without its answer, a hedge on
        another instance: the first answer; the other attempt is cancelled."""
        tasks: set[asyncio.Task] = set()

        def start(attempt: Attempt) -> None:
            attempt.in_thread = True  # its task records it, even once cancelled
            task = asyncio.ensure_future(self._attempt(call, attempt, request, body, headers,
                                                       rest))
            task.add_done_callback(lambda _: attempt.recorded or attempt.record("cancelled",
                                                                                None))
            tasks.add(task)

        start(call.current)
        done, _ = await asyncio.wait(tasks, timeout=delay)
        if not done:
            hedge = call.hedge()
            if hedge is not None:
                start(hedge)
        try:
            for finished in asyncio.as_completed(tasks):
                answered = await finished
                if answered is not None:
                    return answered
            return None
        finally:
            for task in tasks:
                task.cancel()

    async def client_session(self, app: web.Application):
        timeout = aiohttp.ClientTimeout(total=self.sherlock.timeout,
                                        sock_connect=self.sherlock.connect_timeout)
        self.client = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=NOT_ADDED)
        yield
        await self.client.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self.client_session)
        app.router.add_route("*", "/{service}/{tail:.*}", self.forward)
        app.router.add_route("*", "/{service}", self.forward)
        return app


def answer(request: web.Request, upstream: aiohttp.ClientResponse, payload: bytes,
           instance: str) -> web.Response:
    """The instance's answer as it gave it; a HEAD's ``Content-Length`` kept too."""
    headers = end_to_end(upstream.headers)
    if request.method == "HEAD" and "Content-Length" in upstream.headers:
        headers["Content-Length"] = upstream.headers["Content-Length"]
    headers["X-Sherlock-Instance"] = instance
    return web.Response(status=upstream.status, reason=upstream.reason, body=payload,
                        headers=headers)


def create_app(sherlock: Router) -> web.Application:
    return Proxy(sherlock).app()


def serve(sherlock: Router, host: str = "127.0.0.1", port: int = 8000) -> None:
    print(f"Sherlock proxy on http://{host}:{port}/<service>/...", flush=True)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(sherlock, host, port))


async def _serve(sherlock: Router, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(sherlock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
