"""Sherlock as a local HTTP proxy, for monoliths not written in Python.

As the original did with HAProxy: ``http://127.0.0.1:8000/<service>/rest`` goes to an
instance of ``<service>`` as ``/rest``. Unlike the original there is no config file to
regenerate and reload: the proxy reads Sherlock's live table on every call.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from mwkit.aio import new_event_loop
from mwkit.names import SERVICE_NAME
from mwkit.sherlock.adapter import IDEMPOTENT
from mwkit.sherlock.router import NoInstances, Sherlock

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length"}


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Proxy:
    """Forwards ``/<service>/rest`` to an instance of ``<service>`` as ``/rest``."""

    def __init__(self, sherlock: Sherlock) -> None:
        self.sherlock = sherlock
        self.client: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        service, tail = request.match_info["service"], request.match_info.get("tail", "")
        if not SERVICE_NAME.match(service):
            return error(400, f"{service!r} is not a service name")
        sherlock = self.sherlock
        body = await request.read() if request.body_exists else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        attempts = 1 + (sherlock.retries if request.method in IDEMPOTENT else 0)
        tried: set[str] = set()
        started = time.time()
        for attempt in range(1, attempts + 1):
            try:
                endpoint = sherlock.acquire(service, frozenset(tried))
            except NoInstances as reason:
                if attempt == 1:
                    sherlock.record_no_instances(service, started)
                return error(503, str(reason))
            tried.add(endpoint.id)
            query = f"?{request.query_string}" if request.query_string else ""
            began = time.monotonic()
            try:
                async with self.client.request(request.method, f"{endpoint.url}/{tail}{query}",
                                               headers=headers, data=body) as upstream:
                    payload = await upstream.read()
            except asyncio.TimeoutError:  # noqa: UP041 - Python < 3.11 in some images
                sherlock.release(endpoint, started, began, "timeout", None, attempt)
                return error(504, f"{service} instance {endpoint.id} did not answer in time")
            except aiohttp.ClientError as reason:
                sherlock.release(endpoint, started, began, "refused", None, attempt)
                if attempt == attempts:
                    return error(502, f"{service} instance {endpoint.id} failed: {reason}")
                continue
            outcome = "ok" if upstream.status < 500 else "error"
            sherlock.release(endpoint, started, began, outcome, upstream.status, attempt)
            response_headers = {k: v for k, v in upstream.headers.items()
                                if k.lower() not in HOP_BY_HOP}
            response_headers["X-Sherlock-Instance"] = endpoint.id
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
        return error(502, f"no instance of {service} answered")

    async def client_session(self, app: web.Application):
        timeout = aiohttp.ClientTimeout(total=self.sherlock.timeout,
                                        sock_connect=self.sherlock.connect_timeout)
        self.client = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        yield
        await self.client.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self.client_session)
        app.router.add_route("*", "/{service}/{tail:.*}", self.forward)
        app.router.add_route("*", "/{service}", self.forward)
        return app


def create_app(sherlock: Sherlock) -> web.Application:
    return Proxy(sherlock).app()


def serve(sherlock: Sherlock, host: str = "127.0.0.1", port: int = 8000) -> None:
    print(f"Sherlock proxy on http://{host}:{port}/<service>/...", flush=True)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(sherlock, host, port))


async def _serve(sherlock: Sherlock, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(sherlock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
