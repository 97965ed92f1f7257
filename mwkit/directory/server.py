"""The Directory's HTTP server: the registry behind a small JSON API and an SSE push stream.

Built on aiohttp (asyncio) because the interesting part is the push: one process holds a
long-lived connection per subscriber, and a change must reach a thousand of them within
milliseconds. A change is one instance put or deleted, never a service's whole list (see
:mod:`mwkit.directory.registry`); it is encoded once and put on every subscriber's queue;
each subscriber's own task writes it out. A subscriber too slow to keep up is disconnected,
and gets a fresh snapshot when it reconnects: "too slow" means more than
``SUBSCRIBER_QUEUE`` messages or ``SUBSCRIBER_BYTES`` bytes waiting for it, or a write that
has not gone out after ``WRITE_TIMEOUT`` seconds (a client that stopped reading). Without
these bounds one stalled reader holds its socket and every change since it stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import deque

from aiohttp import web

from mwkit.aio import new_event_loop
from mwkit.directory import DIRECTORY_PORT, validate
from mwkit.directory.registry import Change, Registry, ServiceFull
from mwkit.directory.validate import BadRequest

log = logging.getLogger("mwkit.directory")

MAX_BODY_BYTES = 64 * 1024
SUBSCRIBER_QUEUE = 1000  # messages waiting for one subscriber, at most
SUBSCRIBER_BYTES = 8 * 1024 * 1024  # bytes waiting for one subscriber (beyond one message)
WRITE_TIMEOUT = 5.0  # seconds a write may wait for a subscriber that does not read
KEEPALIVE_SECONDS = 15.0


def sse(event: str, payload: dict, event_id: int | None = None) -> bytes:
    """One Server-Sent Event, encoded."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def pushed(change: Change) -> bytes:
    """A change as the stream carries it: ``put`` (the instance) or ``delete`` (its id).
    The epoch is in the snapshot only: a subscriber that reconnects says which epoch it
    saw, and gets a snapshot when that is not this Directory's."""
    return sse(change.kind, change.to_json(), change.version)


class Subscriber:
    """One push stream's outbox: the messages waiting to be written, bounded in count and
    in bytes, and the request, to see whether its client is still there."""

    def __init__(self, request: web.Request | None = None) -> None:
        self.request = request
        self.messages: deque[bytes] = deque()
        self.bytes = 0
        self.ended = False
        self._ready = asyncio.Event()

    def offer(self, message: bytes) -> bool:
        """Queue a message; False when that would pass a bound. One message is always
        accepted, however large, so that a big service does not cut everybody off."""
        if self.messages and (len(self.messages) >= SUBSCRIBER_QUEUE
                              or self.bytes + len(message) > SUBSCRIBER_BYTES):
            return False
        self.messages.append(message)
        self.bytes += len(message)
        self._ready.set()
        return True

    def end(self) -> None:
        """No more messages: free what is queued and wake the writer, which ends the stream."""
        self.ended = True
        self.messages.clear()
        self.bytes = 0
        self._ready.set()

    async def next(self) -> bytes | None:
        """Every message waiting, joined into one write, or None when the stream must end.

        One write per wake-up, however many messages queued meanwhile: under a burst of
        changes a writer that took one message per wake-up fell behind the handlers that
        queue them, and its subscriber was cut off although it read as fast as it could."""
        while not self.messages and not self.ended:
            self._ready.clear()
            await self._ready.wait()
        if self.ended:
            return None
        waiting = b"".join(self.messages)
        self.messages.clear()
        self.bytes = 0
        return waiting

    def gone(self) -> bool:
        """Whether the client closed its connection (aiohttp does not tell a handler that
        waits for something other than the client)."""
        transport = self.request.transport if self.request is not None else None
        return transport is None or transport.is_closing()

    def disconnect(self) -> None:
        """End the stream and close the connection now, even under a blocked write."""
        self.end()
        transport = self.request.transport if self.request is not None else None
        if transport is not None:
            transport.abort()


class Broker:
    """Fans every change out to the subscribers' outboxes."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, request: web.Request | None = None) -> Subscriber:
        subscriber = Subscriber(request)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish(self, changes: list[Change]) -> None:
        for change in changes if self.subscribers else []:  # nobody listens: do not encode
            self.send(pushed(change))

    def keepalive(self) -> None:
        """A comment line on every stream, so that clients notice a vanished Directory."""
        self.send(b": keepalive\n\n")

    def send(self, message: bytes) -> None:
        for subscriber in list(self.subscribers):
            if not subscriber.offer(message):  # too slow: cut off; it resyncs on reconnect
                log.warning("a subscriber fell %d messages (%d bytes) behind: disconnected",
                         len(subscriber.messages), subscriber.bytes)
                self.unsubscribe(subscriber)
                subscriber.disconnect()

    def drop_gone(self) -> None:
        """Forget the subscribers whose clients closed their connections."""
        for subscriber in [s for s in self.subscribers if s.gone()]:
            self.unsubscribe(subscriber)
            subscriber.end()

    def close(self) -> None:
        """End every stream (on shutdown), so that subscribers notice and reconnect."""
        for subscriber in list(self.subscribers):
            subscriber.end()


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler):
    """Every error, even aiohttp's own (404, 405, 413), becomes a JSON body."""
    try:
        return await handler(request)
    except BadRequest as error:
        return json_error(400, str(error))
    except ServiceFull as error:  # 409 Conflict: a fine request the service's state refuses
        return json_error(409, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.text if error.text and not error.text.startswith(str(error.status)) \
            else error.reason
        if error.status == 413:
            message = f"request body larger than {MAX_BODY_BYTES} bytes"
        return json_error(error.status, message)


async def read_json(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise BadRequest("the body holds a number too long to read") from None
    except RecursionError:  # thousands of nested brackets
        raise BadRequest("the body is nested too deeply") from None


def names(request: web.Request) -> tuple[str, str]:
    return (validate.service_name(request.match_info["service"]),
            validate.instance_id(request.match_info["instance"]))


class DirectoryServer:
    """The HTTP handlers, over one registry and one broker (plain attributes, so any
    aiohttp version, including Debian's in the containers, can run it)."""

    def __init__(self, token: str | None = None, registry: Registry | None = None,
                 sweep_interval: float = 0.1, write_timeout: float = WRITE_TIMEOUT) -> None:
        self.registry = registry or Registry()
        self.sweep_interval = sweep_interval
        self.write_timeout = write_timeout
        self.broker = Broker(self.registry.epoch)
        self.token = token or ""

    def require_token(self, request: web.Request) -> None:
        if not self.token:
            return
        given = request.headers.get("Authorization", "")
        # surrogateescape: a header holding bytes that are not UTF-8 is a wrong token, not a 500
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                   f"Bearer {self.token}".encode()):
            raise web.HTTPUnauthorized(text="this Directory needs 'Authorization: Bearer "
                                            "<token>' for writes")

    async def health(self, request: web.Request) -> web.Response:
        self.broker.drop_gone()
        return web.json_response({"status": "ok", "epoch": self.registry.epoch,
                                  "version": self.registry.version,
                                  "services": self.registry.service_count(),
                                  "subscribers": len(self.broker.subscribers)})

    async def register(self, request: web.Request) -> web.Response:
        self.require_token(request)
        service, instance = names(request)
        address, metadata, ttl = validate.registration(await read_json(request))
        change = self.registry.register(service, instance, address, metadata, ttl)
        if change:
            self.broker.publish([change])
        return web.json_response({"version": self.registry.version, "ttl": ttl,
                                  "changed": change is not None})

    async def heartbeat(self, request: web.Request) -> web.Response:
        self.require_token(request)
        service, instance = names(request)
        if not self.registry.heartbeat(service, instance):
            return json_error(404, f"instance {instance!r} of {service!r} is not registered "
                                   "(its lease ran out, or the Directory restarted): "
                                   "register again")
        return web.json_response({"ok": True})

    async def deregister(self, request: web.Request) -> web.Response:
        self.require_token(request)
        service, instance = names(request)
        change = self.registry.deregister(service, instance)
        if change is None:
            return json_error(404, f"instance {instance!r} of {service!r} is not registered")
        self.broker.publish([change])
        return web.json_response({"version": change.version})

    async def list_services(self, request: web.Request) -> web.Response:
        return web.json_response(self.registry.snapshot())

    async def show_service(self, request: web.Request) -> web.Response:
        service = validate.service_name(request.match_info["service"])
        return web.json_response({"version": self.registry.version, "service": service,
                                  "instances": self.registry.instances(service)})

    async def events(self, request: web.Request) -> web.Response:
        since = validate.version(request.query.get("since")) or 0
        return web.json_response({"version": self.registry.version,
                                  "events": self.registry.events_since(since)})

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """The push stream: a snapshot (or, for a subscriber that says which ``epoch`` and
        version it saw, the changes it missed), then every change as it happens."""
        since = validate.version(request.query.get("since"))
        epoch = request.query.get("epoch")
        registry = self.registry
        # No await between reading the state and subscribing: nothing can slip in between.
        missed = registry.changes_since(epoch, since) if since is not None else None
        if missed is None:
            first = [sse("snapshot", registry.snapshot(), registry.version)]
        else:
            first = [pushed(change) for change in missed]
        subscriber = self.broker.subscribe(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            message = b"".join(first) or b": up to date\n\n"
            while message is not None:
                async with asyncio.timeout(self.write_timeout):  # no task per write
                    await response.write(message)
                message = await subscriber.next()
        except TimeoutError:
            log.warning("a subscriber read nothing for %s s: disconnected", self.write_timeout)
            subscriber.disconnect()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away (or the server is stopping): nothing to tell
        finally:
            self.broker.unsubscribe(subscriber)
        return response

    async def sweep_leases(self, app: web.Application):
        """Background task: expire leases that ran out and push the removals; keep the
    streams alive."""
        async def loop():
            last_keepalive = time.monotonic()
            while True:
                await asyncio.sleep(self.sweep_interval)
                try:
                    if time.monotonic() - last_keepalive >= KEEPALIVE_SECONDS:
                        self.broker.keepalive()
                        last_keepalive = time.monotonic()
                    self.broker.drop_gone()
                    changes = self.registry.expire()
                    for change in changes:
                        log.info("lease expired: %s of %s", change.instance_id, change.service)
                    self.broker.publish(changes)
                except Exception:  # a bug must not stop every lease from expiring, for good
                    log.exception("the lease sweep failed; it runs again in %s s",
                                  self.sweep_interval)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_streams(self, app: web.Application) -> None:
        """On shutdown, end every push stream so subscribers notice and reconnect."""
        self.broker.close()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
        instance_path = "/v1/services/{service}/instances/{instance}"
        app.add_routes([
            web.get("/health", self.health),
            web.get("/v1/services", self.list_services),
            web.get("/v1/services/{service}", self.show_service),
            web.put(instance_path, self.register),
            web.post(instance_path + "/heartbeat", self.heartbeat),
            web.delete(instance_path, self.deregister),
            web.get("/v1/watch", self.watch),
            web.get("/v1/events", self.events),
        ])
        app.cleanup_ctx.append(self.sweep_leases)
        app.on_shutdown.append(self.close_streams)
        return app


def create_app(token: str | None = None, sweep_interval: float = 0.1,
               registry: Registry | None = None) -> web.Application:
    """The Directory as an aiohttp application (an app factory, as Flask's tutorial has)."""
    return DirectoryServer(token, registry, sweep_interval).app()


def serve(host: str = "127.0.0.1", port: int = DIRECTORY_PORT, token: str | None = None) -> None:
    """Run the Directory in the foreground until SIGINT/SIGTERM.

    It says it is listening only once it is: aiohttp calls ``announce`` after the socket is
    bound, and a port already in use fails before anything is printed.
    """
    def announce(_aiohttp_banner: str) -> None:
        print(f"Directory listening on http://{host}:{port}"
              f"{' (writes need the token)' if token else ''}", flush=True)

    web.run_app(create_app(token), host=host, port=port, print=announce, access_log=None,
                shutdown_timeout=1.0, loop=new_event_loop())
