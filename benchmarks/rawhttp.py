"""A minimal HTTP/1.1 keep-alive client for load: one request at a time per connection.

A load generator in Python must cost less than the server it loads, or it measures
itself: on this 2-core machine aiohttp's client topped out near 4,000 requests/s against
the Directory and etcd alike. This client does only what the benchmark needs: send a
prepared request, read one response (``Content-Length`` or chunked), return status + body.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        response = self._complete()
        if response is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    def _complete(self) -> tuple[int, bytes] | None:
        """The first whole response in the buffer (removed from it), else None."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(self.buffer[:head_end]).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        start = head_end + 4
        if "transfer-encoding: chunked" in head:
            body, position = bytearray(), start
            while True:
                line_end = self.buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                size = int(self.buffer[position:line_end].split(b";")[0], 16)
                if len(self.buffer) < line_end + 2 + size + 2:
                    return None
                body += self.buffer[line_end + 2:line_end + 2 + size]
                position = line_end + 2 + size + 2
                if size == 0:
                    del self.buffer[:position]
                    return status, bytes(body)
        length = 0
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if len(self.buffer) < start + length:
            return None
        body = bytes(self.buffer[start:start + length])
        del self.buffer[:start + length]
        return status, body


class Client:
    """One keep-alive connection to ``url``'s host; ``await client.call(...)``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.netloc = parts.netloc
        self.connection: Connection | None = None

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """Send one request; the JSON answer. Raises on anything but 200."""
        if self.connection is None or self.connection.transport is None:
            _, self.connection = await asyncio.get_running_loop().create_connection(
                Connection, self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        connection = self.connection
        connection.waiter = asyncio.get_running_loop().create_future()
        connection.transport.write(head.encode() + payload)
        status, answer = await asyncio.wait_for(connection.waiter, 10)
        if status != 200:
            raise RuntimeError(f"{method} http://{self.netloc}{path}: {status} {answer[:200]!r}")
        return json.loads(answer) if answer else {}

    def close(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()
