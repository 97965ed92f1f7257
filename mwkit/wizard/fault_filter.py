"""The fault filter: a small relay in front of the service, inside its own instance.

Istio injects delays and aborts with a sidecar proxy; this is the same idea in about a
hundred lines. The supervisor starts the service on an internal port (``127.0.0.1``, a port
the kernel picks) and this filter on the instance's own port, the one Watson registers:
every call from a router passes through it. Watson's health checks do *not*: they go to
the service directly, as a local agent's would, so an instance that fails its calls still
passes its checks and stays listed (the trap of a fast-failing instance).

With no fault on, a call costs the filter one ``readuntil`` of the request's head and a
copy of its body to the service; the answer is copied back as raw bytes, never parsed. With
a fault on, the head decides: wait ``latency`` seconds first (for all calls or a fraction),
answer ``5xx`` without calling the service (for a fraction of calls), or answer 503 at once
(``fast_fail``). Faults change while connections stay open: the choice is made per request.

One HTTP/1.1 request at a time per connection is assumed (the way ``requests`` and aiohttp
call): a filter answer is written only after the service's previous answer has been copied.
A chunked request body makes the rest of that connection a plain byte pipe; a caller that
closes its side closes the connection (no half-closed calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus

HEAD_END = b"\r\n\r\n"
CHUNK = 65536


@dataclass(frozen=True)
class FilterFaults:
    """What the filter does to calls now (the supervisor replaces it as orders change)."""

    latency: float = 0.0  # seconds added before a call is passed on
    latency_fraction: float = 0.0  # share of calls that wait
    error_fraction: float = 0.0  # share of calls answered error_status by the filter
    error_status: int = 500
    fast_fail: bool = False  # every call answered 503 at once

    @property
    def active(self) -> bool:
        return self.fast_fail or self.error_fraction > 0 or (
            self.latency > 0 and self.latency_fraction > 0)

    @classmethod
    def from_orders(cls, faults: dict) -> FilterFaults:
        """From the ``faults`` of an order file (see :mod:`mwkit.faults`)."""
        latency, errors = faults.get("latency") or {}, faults.get("errors") or {}
        return cls(latency=float(latency.get("seconds", 0.0)),
                   latency_fraction=float(latency.get("fraction", 0.0)),
                   error_fraction=float(errors.get("fraction", 0.0)),
                   error_status=int(errors.get("status", 500)),
                   fast_fail="fast-fail" in faults)

    def decide(self, rng: random.Random) -> tuple[float, int | None]:
        """(seconds to wait, the status to answer or None: pass it on) for one call."""
        if self.fast_fail:
            return 0.0, HTTPStatus.SERVICE_UNAVAILABLE
        wait = self.latency if rng.random() < self.latency_fraction else 0.0
        status = self.error_status if rng.random() < self.error_fraction else None
        return wait, status


def fault_answer(status: int) -> bytes:
    """A short, complete HTTP/1.1 answer that keeps the connection open."""
    body = f"{status} injected by mwkit's fault filter\n".encode()
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nX-Mwkit-Fault: {status}\r\n\r\n").encode() + body


def body_framing(head: bytes) -> tuple[int, bool]:
    """(Content-Length, chunked?) of a request head; found without a full parse."""
    lower = head.lower()
    chunked = b"\r\ntransfer-encoding:" in lower and b"chunked" in lower
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return 0, chunked
    value = lower[at + 17:lower.find(b"\r\n", at + 2)]
    try:
        return max(0, int(value.strip())), chunked
    except ValueError:
        return 0, chunked


def internal_port() -> int:
    """A free loopback port for the service behind the filter."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaultFilter:
    """Listen on ``host:port``, relay to ``127.0.0.1:upstream_port``; an asyncio loop in a
    thread of the supervisor. ``faults`` may be replaced at any time, from any thread."""

    def __init__(self, host: str, port: int, upstream_port: int, seed: int | None = None):
        self.host, self.port, self.upstream_port = host, port, upstream_port
        self.faults = FilterFaults()
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[asyncio.Task, list] = {}  # each call's task and its streams

    def start(self) -> FaultFilter:
        """Bind now (an ``OSError`` if the port is taken), then serve in a daemon thread."""
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, backlog=256))
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-filter",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut the open connections, end the thread and close the loop."""
        if self._thread is None:
            return
        with contextlib.suppress(TimeoutError):  # a loop that does not answer: stop it anyway
            asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
        self._thread = None

    async def _shut(self) -> None:
        self._server.close()
        for streams in self._connections.values():
            for stream in streams:
                stream.transport.abort()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._connections[task] = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # the service is not listening (yet, or any more): refuse as it would
            writer.transport.abort()
            del self._connections[task]
            return
        self._connections[task].append(up_writer)
        back = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            await self._requests(reader, writer, up_writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            back.cancel()
            for stream in (up_writer, writer):
                stream.close()
            await asyncio.gather(back, return_exceptions=True)
            del self._connections[task]

    async def _requests(self, reader, writer, up_writer) -> None:
        """One request after the other: decide, then answer it here or pass it on."""
        while True:
            try:
                head = await reader.readuntil(HEAD_END)
            except asyncio.IncompleteReadError:  # the caller closed
                return
            except asyncio.LimitOverrunError:  # a huge head: no faults on this connection
                await self._pipe(reader, up_writer, close=False)
                return
            length, chunked = body_framing(head)
            faults = self.faults
            wait, status = faults.decide(self._rng) if faults.active else (0.0, None)
            if wait:
                await asyncio.sleep(wait)
            if status is not None and not chunked:
                await self._copy(reader, None, length)  # the body goes nowhere
                writer.write(fault_answer(status))
                await writer.drain()
                continue
            up_writer.write(head)
            if chunked:
                await self._pipe(reader, up_writer, close=False)
                return
            await self._copy(reader, up_writer, length)
            await up_writer.drain()

    @staticmethod
    async def _copy(reader, writer, length: int) -> None:
        """Copy exactly ``length`` bytes of a body (to nowhere when ``writer`` is None)."""
        while length > 0:
            data = await reader.readexactly(min(length, CHUNK))
            length -= len(data)
            if writer is not None:
                writer.write(data)
                await writer.drain()

    @staticmethod
    async def _pipe(reader, writer, close: bool = True) -> None:
        """Copy bytes until the reading side ends."""
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        if close:
            writer.close()
