"""etcd as the Directory: the same client API, on keys with leases and a watch.

A team that outgrows one laptop keeps its registry in a replicated store, not in one
process. With a Directory URL of the form ``etcd://host:port[,host:port...]`` every part of
the kit (Watson, Sherlock, the wizard, notebooks) talks to an etcd cluster through
:class:`EtcdDirectoryClient`, which has the methods of
:class:`mwkit.directory.client.DirectoryClient`. The ideas map one to one:

==============================  =====================================================
the kit's Directory             etcd
==============================  =====================================================
an instance with a lease        key ``/mwkit/services/<service>/<id>`` put with a lease
register                        grant a lease (TTL in whole seconds), put the key on it
heartbeat                       keep the lease alive (False once it expired: register)
deregister                      delete the key and revoke the lease
snapshot, then pushed changes   list the prefix, then watch it from the list's revision
version, epoch                  revision, cluster id
==============================  =====================================================

:meth:`EtcdDirectoryClient.watch` is list-then-watch, the pattern of Kubernetes informers:
it lists the prefix (one ``snapshot`` message), then watches from the next revision and
turns each event into a ``put`` or ``delete`` message of one instance, as the Directory's
stream does, so Sherlock needs no change. When the watch breaks or etcd says
the revision was compacted, the stream ends; the caller reconnects and lists again, and
meanwhile routes with the table it has. Another member of the cluster is tried when one
does not answer.

Why etcd's JSON gateway (``/v3/...`` over HTTP) and ``requests``, not a gRPC client: the
gateway ships in every etcd, needs no generated code or gRPC wheels (the well-known Python
clients pin old protobuf versions), and reads like the Directory's own HTTP API. The
price is base64 keys and values, and a watch that is a stream of JSON lines.

Values are checked here, before they are written, with the Directory's own checks
(:mod:`mwkit.directory.validate`): etcd stores any bytes.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests

from mwkit.directory import validate
from mwkit.directory.client import Message, Subscription, stream_socket
from mwkit.errors import BadRequest, DirectoryError

SCHEME = "etcd://"
ROOT = "/mwkit/"
PREFIX = ROOT + "services/"
GOODBYES = ROOT + "goodbyes/"
MIN_LEASE = 2  # seconds: etcd refuses shorter leases (it would lose them on a leader change)


def is_etcd_url(url: str) -> bool:
    return url.strip().lower().startswith(SCHEME)


def endpoints_of(url: str) -> list[str]:
    """``etcd://a:1,b:2`` -> ``["http://a:1", "http://b:2"]`` (the members to try, in order)."""
    members = [member.strip() for member in url.strip()[len(SCHEME):].rstrip("/").split(",")]
    if not members or not all(members):
        raise DirectoryError(f"{url!r} is not an etcd URL: expected etcd://host:port[,host:port...]")
    for member in members:
        try:
            port = urlsplit(f"http://{member}").port
        except ValueError:
            port = None
        if port is None or "/" in member:
            raise DirectoryError(f"{url!r}: member {member!r} is not host:port")
    return [f"http://{member}" for member in members]


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def prefix_end(prefix: str) -> str:
    """The end of the key range holding every key that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def instance_key(service: str, instance_id: str) -> str:
    return f"{PREFIX}{service}/{instance_id}"


def goodbye_key(service: str, instance_id: str) -> str:
    """Put when an instance deregisters (and deleted when it registers again)."""
    return f"{GOODBYES}{service}/{instance_id}"


def lease_seconds(ttl: float) -> int:
    """etcd counts a lease in whole seconds: round up, and at least :data:`MIN_LEASE`."""
    return max(MIN_LEASE, math.ceil(ttl))


class EtcdDirectoryClient:
    """Register, renew, deregister, read and watch instances in an etcd cluster.

    ``token`` is accepted for the Directory client's signature and ignored: this etcd runs
    without authentication on loopback (see the README's security model).
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 2.0) -> None:
        self.url = url.strip()
        self.endpoints = endpoints_of(self.url)
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self._leases: dict[tuple[str, str], str] = {}  # (service, id) -> lease id
        self._lock = threading.Lock()
        self._stream_socket: socket.socket | None = None
        self._feed: EventFeed | None = None
        self.compacted_to = 0  # the oldest revision etcd still had, when a watch said so

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        self.session.close()

    def __enter__(self) -> EtcdDirectoryClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- one call, to the first member that answers -----------------------------------

    def _post(self, path: str, body: dict, **options) -> requests.Response:
        options.setdefault("timeout", self.timeout)
        errors = []
        for endpoint in list(self.endpoints):
            try:
                response = self.session.post(endpoint + path, json=body, **options)
            except requests.RequestException as error:
                errors.append(f"{endpoint}: {type(error).__name__}")
                continue
            if response.status_code >= 500 and len(errors) + 1 < len(self.endpoints):
                errors.append(f"{endpoint}: {response.status_code}")  # e.g. no leader yet
                continue
            if response.status_code >= 400:
                raise DirectoryError(f"etcd {path}: {response.status_code} "
                                     f"{response.text[:200]}")
            if errors:  # ask the member that answered first, next time
                with self._lock:
                    self.endpoints = [endpoint] + [e for e in self.endpoints if e != endpoint]
            return response
        raise DirectoryError(f"no etcd member of {self.url} answered ({'; '.join(errors)})")

    # --- writes ------------------------------------------------------------------------

    def register(self, service: str, instance_id: str, address: str,
                 metadata: dict | None = None, ttl: float | None = None) -> dict:
        """Put the instance's key on a new lease (and let the old lease, if any, go)."""
        try:
            service, instance_id = validate.service_name(service), validate.instance_id(
                instance_id)
            address, metadata = validate.address(address), validate.metadata(metadata)
            ttl = validate.ttl(ttl)
        except BadRequest as error:
            raise DirectoryError(f"register {service}/{instance_id}: {error}") from None
        lease = self._post("/v3/lease/grant", {"TTL": lease_seconds(ttl)}).json()["ID"]
        instance = {"service": service, "id": instance_id, "address": address,
                    "url": f"http://{address}", "metadata": metadata,
                    "ttl": float(lease_seconds(ttl)), "registered_at": time.time()}
        self._transaction(
            {"request_put": {"key": b64(instance_key(service, instance_id)),
                             "value": b64(json.dumps(instance)), "lease": lease}},
            {"request_delete_range": {"key": b64(goodbye_key(service, instance_id))}})
        with self._lock:
            old = self._leases.get((service, instance_id))
            self._leases[(service, instance_id)] = lease
        if old:
            self._revoke(old)
        return instance

    def heartbeat(self, service: str, instance_id: str) -> bool:
        """Keep the instance's lease alive; False when it expired (register again)."""
        lease = self._leases.get((service, instance_id))
        if lease is None:
            return False
        answer = self._post("/v3/lease/keepalive", {"ID": lease}).json()
        return int(answer.get("result", {}).get("TTL", 0)) > 0

    def deregister(self, service: str, instance_id: str) -> bool:
        """Delete the key, and say goodbye in the same revision: an expiry deletes the key
        too, and the goodbye is how a reader of the history tells the two apart."""
        answer = self._transaction(
            {"request_delete_range": {"key": b64(instance_key(service, instance_id))}},
            {"request_put": {"key": b64(goodbye_key(service, instance_id)),
                             "value": b64(json.dumps({"time": time.time()}))}})
        with self._lock:
            lease = self._leases.pop((service, instance_id), None)
        if lease:
            self._revoke(lease)
        deleted = answer["responses"][0].get("response_delete_range", {})
        return int(deleted.get("deleted", 0)) > 0

    def _transaction(self, *requests_: dict) -> dict:
        """Several writes as one (one revision): etcd's ``txn`` with no condition."""
        return self._post("/v3/kv/txn", {"success": list(requests_)}).json()

    def _revoke(self, lease: str) -> None:
        with contextlib.suppress(DirectoryError):  # gone already: it expired
            self._post("/v3/lease/revoke", {"ID": lease})

    # --- reads -------------------------------------------------------------------------

    def _list(self) -> tuple[dict[str, list[dict]], dict]:
        """Every instance under the prefix, by service, and the answer's header."""
        answer = self._post("/v3/kv/range", {"key": b64(PREFIX),
                                             "range_end": b64(prefix_end(PREFIX))}).json()
        services: dict[str, list[dict]] = {}
        for kv in answer.get("kvs", []):
            instance = json.loads(unb64(kv["value"]))
            services.setdefault(instance["service"], []).append(instance)
        for instances in services.values():
            instances.sort(key=lambda instance: instance["id"])
        return services, answer["header"]

    def health(self) -> dict:
        """``{"status": "ok"}`` when the cluster answers (any member), with every member's
        own answer: ``{"members": {url: "ok" | "unhealthy" | "unreachable"}}``."""
        members = {}
        for endpoint in list(self.endpoints):
            try:
                answer = self.session.get(endpoint + "/health", timeout=self.timeout)
                healthy = answer.ok and answer.json().get("health") == "true"
                members[endpoint] = "ok" if healthy else "unhealthy"
            except (requests.RequestException, ValueError):
                members[endpoint] = "unreachable"
        if "ok" not in members.values():
            raise DirectoryError(f"no etcd member of {self.url} is healthy: {members}")
        return {"status": "ok", "members": members}

    def services(self) -> dict[str, list[dict]]:
        return self._list()[0]

    def instances(self, service: str) -> list[dict]:
        return self._list()[0].get(service, [])

    # --- the push stream ---------------------------------------------------------------

    def _changes(self, prefix: str, start_revision: int,
                 read_timeout: float) -> Iterator[list[dict]]:
        """etcd's raw watch of ``prefix`` from ``start_revision``: each message's events.

        It ends quietly after ``read_timeout`` seconds of silence (an idle watch carries
        nothing), when the member goes away, or when the revision was compacted: in every
        case the caller starts again, and a member that is gone shows then, as an error.
        """
        request = {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                      "start_revision": start_revision}}
        response = self._post("/v3/watch", request, stream=True,
                              timeout=(self.timeout, read_timeout))
        self._stream_socket = stream_socket(response)
        try:
            with response:
                for line in response.iter_lines():
                    result = json.loads(line).get("result", {})
                    if result.get("compact_revision"):  # gone from the history
                        self.compacted_to = int(result["compact_revision"])
                        return
                    if result.get("canceled"):
                        return
                    if result.get("events"):
                        yield result["events"]
        except requests.RequestException:
            return
        finally:
            self._stream_socket = None

    def watch(self, since: int | None = None, epoch: str | None = None,
              read_timeout: float = 30.0) -> Iterator[Message]:
        """List, then watch: a ``snapshot`` message, then one ``put`` or ``delete`` per
        change, as the Directory's stream (etcd's watch events are already one key each).

        ``since`` and ``epoch`` are accepted for the Directory client's signature: every
        (re)connection lists again, which is what etcd's own clients do after a compaction.
        """
        services, header = self._list()
        epoch, revision = str(header["cluster_id"]), int(header["revision"])
        yield Message("snapshot", {"epoch": epoch, "version": revision, "services": services})
        for events in self._changes(PREFIX, revision + 1, read_timeout):
            for event in events:
                service, _, instance_id = unb64(event["kv"]["key"])[len(PREFIX):].partition("/")
                change = {"version": int(event["kv"].get("mod_revision", 0)), "service": service}
                if event.get("type") == "DELETE":
                    yield Message("delete", {**change, "id": instance_id})
                else:
                    instance = json.loads(unb64(event["kv"]["value"]))
                    yield Message("put", {**change, "instance": instance})

    def events(self, since: int = 0) -> list[dict]:
        """The Directory's event log, as etcd can give it: the changes an :class:`EventFeed`
        saw from this client's first call on (etcd's history has no times and no reasons)."""
        if self._feed is None:
            self._feed = EventFeed(EtcdDirectoryClient(self.url, self.token, self.timeout))
        return self._feed.since(since)

    def subscribe(self, since: int | None = None, epoch: str | None = None) -> Subscription:
        """The stream read in a background thread (see :class:`Subscription`)."""
        return Subscription(EtcdDirectoryClient(self.url, self.token, self.timeout),
                            since, epoch)

    def interrupt(self) -> None:
        """End a ``watch`` blocked in another thread."""
        sock = self._stream_socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class EventFeed:
    """The Directory's events (registered, updated, deregistered, expired), from etcd.

    etcd's history knows revisions, not times nor reasons. So the feed first replays the
    history it still has (as the Directory's log starts from its first event), taking times
    from the values (a registration's ``registered_at``, a goodbye's ``time``; an expiry in
    the history gets the time of the replay, the one time that is a guess). Then a thread
    watches everything under ``/mwkit/`` and notes each change with the time it arrived.
    A deleted key is ``deregistered`` when the same revision put a goodbye (see
    :meth:`EtcdDirectoryClient.deregister`), else ``expired``: its lease ran out. When the
    watch breaks, the thread watches again from the revision after the last one it saw, so
    nothing is missed; it gives up once etcd has not answered for ``give_up`` seconds (the
    stack is gone).
    """

    def __init__(self, client: EtcdDirectoryClient, size: int = 10_000,
                 give_up: float = 30.0) -> None:
        self.client = client
        self._revision = 0
        self._addresses: dict[tuple[str, str], str] = {}
        self._events: collections.deque[dict] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._give_up = give_up
        self._replay(int(client._list()[1]["revision"]))
        self._thread = threading.Thread(target=self._follow, name="etcd-events", daemon=True)
        self._thread.start()

    def _replay(self, head: int, quiet: float = 0.5) -> None:
        """Note the history up to revision ``head``: until it is reached, or ``quiet``
        seconds pass without an event (the last changes may be outside ``/mwkit/``)."""
        changes = self.client._changes(ROOT, 1, read_timeout=quiet)
        try:
            for events in changes:
                self._note(events, time.time(), replayed=True)
                if self._revision >= head:
                    break
        finally:
            changes.close()
        self._revision = max(self._revision, head, self.client.compacted_to - 1)

    def _follow(self) -> None:
        silent_since = time.monotonic()
        while not self._closed.is_set() and time.monotonic() - silent_since < self._give_up:
            try:
                for events in self.client._changes(ROOT, self._revision + 1, read_timeout=10):
                    self._note(events, time.time())
                self._revision = max(self._revision, self.client.compacted_to - 1)
                silent_since = time.monotonic()
                self._closed.wait(0.05)  # a stream that ended at once is not a busy loop
            except DirectoryError:
                self._closed.wait(0.5)

    def _note(self, events: list[dict], now: float, replayed: bool = False) -> None:
        goodbyes = {(unb64(e["kv"]["key"])[len(GOODBYES):], int(e["kv"]["mod_revision"])):
                    json.loads(unb64(e["kv"]["value"])) for e in events
                    if e.get("type") != "DELETE" and unb64(e["kv"]["key"]).startswith(GOODBYES)}
        with self._lock:
            for event in events:
                key, revision = unb64(event["kv"]["key"]), int(event["kv"]["mod_revision"])
                self._revision = max(self._revision, revision)
                if not key.startswith(PREFIX):
                    continue
                service, _, instance_id = key[len(PREFIX):].partition("/")
                at = now
                if event.get("type") == "DELETE":
                    goodbye = goodbyes.get((f"{service}/{instance_id}", revision))
                    kind = "expired" if goodbye is None else "deregistered"
                    at = goodbye["time"] if goodbye and replayed else now
                    address = self._addresses.pop((service, instance_id), "")
                else:
                    created = event["kv"].get("create_revision") == event["kv"]["mod_revision"]
                    kind = "registered" if created else "updated"
                    instance = json.loads(unb64(event["kv"]["value"]))
                    address = instance["address"]
                    at = instance["registered_at"] if replayed else now
                    self._addresses[(service, instance_id)] = address
                self._events.append({"version": revision, "time": at, "kind": kind,
                                     "service": service, "instance": instance_id,
                                     "address": address})

    def since(self, version: int) -> list[dict]:
        with self._lock:
            return [event for event in self._events if event["version"] > version]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (at most ``timeout`` seconds): interrupt its watch again until it
        ends, since the watch may not have been open yet the first time."""
        self._closed.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.client.interrupt()
            self._thread.join(0.1)
        self.client.close()
