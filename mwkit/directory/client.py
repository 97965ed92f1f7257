"""A small client for the Directory's HTTP API, used by Watson, Sherlock and notebooks.

:meth:`DirectoryClient.watch` is the push stream as a generator: each ``next()`` waits, for
as long as it takes, for the next change. :meth:`DirectoryClient.subscribe` reads the same
stream in a thread of its own, so that a reader can wait with a limit: a notebook cell run
again, when nothing changes any more, says "no change" instead of blocking forever.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from mwkit.errors import DirectoryError


@dataclass(frozen=True)
class Message:
    """One message of the push stream: a ``snapshot`` of every service (with the
    Directory's ``epoch``), then one ``put`` (``data["instance"]`` registered or updated)
    or ``delete`` (``data["id"]`` gone) per change of ``data["service"]``."""

    kind: str
    data: dict

    @property
    def version(self) -> int:
        return self.data["version"]

    @property
    def epoch(self) -> str | None:
        """The Directory's epoch: in a snapshot only (a change belongs to the epoch of the
        snapshot before it)."""
        return self.data.get("epoch")


class ServiceTable:
    """Every service's instances, as a subscriber keeps them from the push stream.

    The stream sends the whole state once (a snapshot) and then only changes, one instance
    at a time, so each subscriber holds the table itself; :meth:`apply` is all it takes.
    An instance keeps its place in its service's list when it is updated, and a new one
    goes last, which is the order the Directory lists them in.
    """

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.version = 0
        self._services: dict[str, dict[str, dict]] = {}

    def apply(self, message: Message) -> set[str]:
        """Apply one message; returns the names of the services it changed."""
        if message.kind == "snapshot":
            before = set(self._services)
            self._services = {name: {i["id"]: i for i in instances}
                              for name, instances in message.data["services"].items()}
            self.epoch = message.epoch
            changed = before | set(self._services)
        else:
            service = message.data["service"]
            instances = self._services.setdefault(service, {})
            if message.kind == "put":
                instance = message.data["instance"]
                instances[instance["id"]] = instance
            else:
                instances.pop(message.data["id"], None)
            if not instances:
                del self._services[service]
            changed = {service}
        self.version = message.version
        return changed

    def instances(self, service: str) -> list[dict]:
        return list(self._services.get(service, {}).values())

    def services(self) -> dict[str, list[dict]]:
        return {name: list(instances.values()) for name, instances in self._services.items()}


def normalise_url(url: str) -> str:
    """Accept ``host:port`` (as the original ``directory_host``) or a full URL."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class DirectoryClient:
    """Register, renew, deregister, read and watch, over one keep-alive session."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 2.0) -> None:
        self.url = normalise_url(url)
        self.timeout = timeout
        self.token = token
        self.session = requests.Session()
        self._stream_socket: socket.socket | None = None
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DirectoryClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path,
                                            timeout=kwargs.pop("timeout", self.timeout),
                                            **kwargs)
        except requests.RequestException as error:
            raise DirectoryError(f"the Directory at {self.url} is unreachable: {error}") from None
        if response.status_code >= 400 and response.status_code != 404:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise DirectoryError(f"{method} {path}: {response.status_code} {message}")
        return response

    def _instance_path(self, service: str, instance_id: str) -> str:
        return f"/v1/services/{service}/instances/{instance_id}"

    def register(self, service: str, instance_id: str, address: str,
                 metadata: dict | None = None, ttl: float | None = None) -> dict:
        body = {"address": address, "metadata": metadata or {}}
        if ttl is not None:
            body["ttl"] = ttl
        return self._call("PUT", self._instance_path(service, instance_id), json=body).json()

    def heartbeat(self, service: str, instance_id: str) -> bool:
        """Renew the lease; False when the Directory does not know the instance."""
        path = self._instance_path(service, instance_id) + "/heartbeat"
        return self._call("POST", path).status_code == 200

    def deregister(self, service: str, instance_id: str) -> bool:
        return self._call("DELETE", self._instance_path(service, instance_id)).status_code == 200

    def health(self) -> dict:
        return self._call("GET", "/health").json()

    def services(self) -> dict[str, list[dict]]:
        return self._call("GET", "/v1/services").json()["services"]

    def instances(self, service: str) -> list[dict]:
        return self._call("GET", f"/v1/services/{service}").json()["instances"]

    def events(self, since: int = 0) -> list[dict]:
        return self._call("GET", "/v1/events", params={"since": since}).json()["events"]

    def watch(self, since: int | None = None, epoch: str | None = None,
              read_timeout: float = 30.0) -> Iterator[Message]:
        """Yield the push stream's messages until the connection ends.

        With ``since`` and ``epoch`` (from earlier messages) the Directory replays only what
        was missed. The server sends a keep-alive comment every 15 s, so ``read_timeout``
        notices a Directory that vanished without closing the connection.
        """
        params = {"since": since, "epoch": epoch} if since is not None else {}
        try:
            response = self.session.get(self.url + "/v1/watch", params=params, stream=True,
                                        timeout=(self.timeout, read_timeout))
            response.raise_for_status()
            self._stream_socket = stream_socket(response)
            kind, data = None, []
            with response:
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and kind and data:
                        yield Message(kind, json.loads("\n".join(data)))
                        kind, data = None, []
        except requests.RequestException as error:
            raise DirectoryError(f"watch stream from {self.url} ended: {error}") from None
        finally:
            self._stream_socket = None

    def subscribe(self, since: int | None = None, epoch: str | None = None) -> Subscription:
        """The push stream, read in a background thread; ``next(timeout)`` waits at most
        ``timeout`` seconds (see :class:`Subscription`). Close it when done."""
        return Subscription(DirectoryClient(self.url, self.token, self.timeout), since, epoch)

    def interrupt(self) -> None:
        """End a ``watch`` blocked in another thread (closing alone would not wake it)."""
        sock = self._stream_socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Subscription:
    """The Directory's push stream, read by a thread of its own into a queue.

    ``next(timeout)`` returns the next message, or None when none came within ``timeout``
    seconds: nothing changed. So a reader (a notebook cell run twice, a test) never blocks
    forever on a change that will not come. When the stream ends (the Directory is gone),
    ``next`` raises :class:`DirectoryError` saying why. The subscription owns its client
    (one connection, not shared with other threads); ``close()`` ends the stream.
    """

    _END = object()  # put in the queue after the last message

    def __init__(self, client: DirectoryClient, since: int | None = None,
                 epoch: str | None = None) -> None:
        self.client = client
        self._messages: queue.Queue = queue.Queue()
        self._ended: DirectoryError | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(since, epoch),
                                        name="directory-subscription", daemon=True)
        self._thread.start()

    def _read(self, since: int | None, epoch: str | None) -> None:
        try:
            for message in self.client.watch(since=since, epoch=epoch):
                self._messages.put(message)
                if self._closing.is_set():
                    break
        except DirectoryError as error:
            self._messages.put(error)
        finally:
            self._messages.put(self._END)

    def next(self, timeout: float = 5.0) -> Message | None:
        """The next message, or None when nothing changed within ``timeout`` seconds."""
        if self._ended is not None:
            raise self._ended
        try:
            item = self._messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, Message):
            return item
        if item is self._END:
            self._ended = DirectoryError(f"the watch stream from {self.client.url} ended")
        else:
            self._ended = item
            self._messages.get()  # the end marker that follows an error
        raise self._ended

    @property
    def open(self) -> bool:
        """True while the stream is read (False once it ended or was closed)."""
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """End the stream and its thread (at most ``timeout`` seconds)."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.client.interrupt()  # again: the socket may not have existed the first time
            self._thread.join(0.1)
        self.client.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def stream_socket(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed response (urllib3 keeps it on the connection)."""
    connection = getattr(response.raw, "_connection", None) or getattr(
        response.raw, "connection", None)
    return getattr(connection, "sock", None)
