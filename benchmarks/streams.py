"""Many push-stream subscribers in one asyncio loop, for the Directory and for etcd alike.

Both are measured with the same client code so the comparison is fair: N subscribers each
hold one HTTP stream (the Directory's SSE ``/v1/watch``; etcd's gRPC-gateway
``/v3/watch``, JSON lines), the driver makes one change, and every subscriber notes when
the change's message arrived and how many bytes it carried.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

from benchmarks.baselines import b64

MARKERS = {  # (the stream is live, the end of the message that says so, a change arrived),
    # as bytes in each stream's body; a message's HTTP chunk ends with CRLF
    "directory": (b"event: snapshot", b"\n\n\r\n", b"event: put"),
    "etcd": (b'"created":true', b"\n\r\n", b'"events"'),
}


class Subscriber(asyncio.Protocol):
    """One raw HTTP stream; notes when each change's marker arrives and counts the bytes.

    A bare protocol rather than an HTTP client library: the instrument must cost far less
    than what it measures, or a thousand streams in one loop measure the loop.
    """

    def __init__(self, fanout: Fanout, request: bytes, live: bytes, live_end: bytes,
                 change: bytes) -> None:
        self.fanout, self.request = fanout, request
        self.live_marker, self.live_end, self.change_marker = live, live_end, change
        self.ready = asyncio.Event()
        self.arrivals: list[float] = []
        self.bytes_after_ready = 0
        self._head = bytearray()  # the stream until its first message (a snapshot) ended
        self._tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.ready.is_set():  # a snapshot can span many reads: none of it counts
            self._head += data
            live = self._head.find(self.live_marker)
            end = self._head.find(self.live_end, live) if live >= 0 else -1
            if end < 0:
                return
            data = bytes(self._head[end + len(self.live_end):])
            self._head = bytearray()
            self.ready.set()
        seen = self._tail + data
        self._tail = seen[-(len(self.change_marker) - 1):]  # a marker split between reads
        self.bytes_after_ready += len(data)
        for _ in range(seen.count(self.change_marker)):
            self.fanout.arrival(self, now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def stream_request(kind: str, host: str, prefix: str) -> bytes:
    if kind == "directory":
        return (f"GET /v1/watch HTTP/1.1\r\nHost: {host}\r\n"
                "Accept: text/event-stream\r\n\r\n").encode()
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"create_request": {"key": b64(prefix), "range_end": b64(end)}})
    return (f"POST /v3/watch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


class Fanout:
    """Open ``n`` streams, then time changes from the driver's send to each arrival."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.subscribers: list[Subscriber] = []
        self.changes = 0
        self._arrived = 0
        self._all_arrived = asyncio.Event()

    def arrival(self, subscriber: Subscriber, now: float) -> None:
        subscriber.arrivals.append(now)
        if len(subscriber.arrivals) == self.changes:
            self._arrived += 1
            if self._arrived == self.n:
                self._all_arrived.set()

    async def open(self, kind: str, url: str, prefix: str = "bench/",
                   timeout: float = 60.0, batch: int = 100) -> None:
        """Open every stream (``kind``: directory or etcd), a batch at a time (the
        servers' listen backlogs are finite), and wait until each is live."""
        parts = urlsplit(url)
        request = stream_request(kind, parts.netloc, prefix)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for first in range(0, self.n, batch):
            fresh = [Subscriber(self, request, *MARKERS[kind])
                     for _ in range(min(batch, self.n - first))]
            await asyncio.gather(*(loop.create_connection(lambda s=s: s, parts.hostname,
                                                          parts.port) for s in fresh))
            self.subscribers += fresh
            waiting = asyncio.gather(*(s.ready.wait() for s in fresh))
            try:
                await asyncio.wait_for(waiting, max(0.1, deadline - loop.time()))
            except TimeoutError:
                live = sum(s.ready.is_set() for s in self.subscribers)
                raise RuntimeError(f"only {live} of {self.n} {kind} streams at {url} were "
                                   f"live within {timeout:.0f} s") from None

    async def change(self, make_change: Callable[[], Awaitable[None]],
                     timeout: float = 5.0) -> list[float]:
        """Make one change; return each subscriber's delay (s) until it arrived."""
        self.changes += 1
        self._arrived = 0
        self._all_arrived.clear()
        sent = time.perf_counter()
        await make_change()
        try:
            await asyncio.wait_for(self._all_arrived.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"only {self._arrived} of {self.n} subscribers got change "
                               f"{self.changes} within {timeout} s") from None
        return [s.arrivals[-1] - sent for s in self.subscribers]

    def bytes_per_change(self) -> float:
        """HTTP body bytes (chunk framing included) one subscriber got per change."""
        if not self.changes or not self.subscribers:
            return 0.0
        return statistics.median(s.bytes_after_ready for s in self.subscribers) / self.changes

    def close(self) -> None:
        for subscriber in self.subscribers:
            if subscriber.transport is not None:
                subscriber.transport.close()


def client_session() -> aiohttp.ClientSession:
    """No connection limit (a thousand streams), no read timeout (streams are long)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_read=None,
                                                               connect=10))


def instance_body(index: int, change: int = 0) -> dict:
    """What both registries hold for one instance: the Directory's registration body (its
    port from 20000 to 59999: instances past 40,000 share addresses, which nothing minds)."""
    return {"address": f"127.0.0.1:{20000 + index % 40000}",
            "metadata": {"change": str(change)}, "ttl": 600}


def directory_registration(service: str, index: int, change: int = 0) -> tuple[str, str, dict]:
    """Method, path and body of one Directory registration (any HTTP client sends it)."""
    return "PUT", f"/v1/services/{service}/instances/i{index}", instance_body(index, change)


def etcd_registration(prefix: str, index: int, change: int = 0,
                      lease: str | None = None) -> tuple[str, str, dict]:
    """The same instance as an etcd key through the gateway: a put, on ``lease`` if given."""
    body = {"key": b64(f"{prefix}i{index}"),
            "value": b64(json.dumps(instance_body(index, change)))}
    if lease:
        body["lease"] = lease
    return "POST", "/v3/kv/put", body


async def send(session: aiohttp.ClientSession, url: str,
               registration: tuple[str, str, dict]) -> None:
    method, path, body = registration
    async with session.request(method, f"{url}{path}", json=body) as response:
        response.raise_for_status()
        await response.read()


async def directory_put(session: aiohttp.ClientSession, url: str, service: str,
                        index: int, change: int = 0) -> None:
    await send(session, url, directory_registration(service, index, change))


async def etcd_put(session: aiohttp.ClientSession, url: str, prefix: str, index: int,
                   change: int = 0, lease: str | None = None) -> None:
    await send(session, url, etcd_registration(prefix, index, change, lease))
