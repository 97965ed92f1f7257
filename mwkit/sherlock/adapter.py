"""A requests transport adapter that resolves ``http://<service>/...`` through Sherlock.

Mounted on ``http://`` of a session, it routes a URL whose host is a bare service name (no
dot, no port, not ``localhost``) and passes every other URL through unchanged, so the same
session can call services by name and ordinary hosts alike.

Routing is transparent: only the connection goes to the instance. The instance sees
``Host: <service>``, and the response keeps the logical URL in ``response.url`` and
``response.request.url`` (so a relative redirect, and a cookie, stay with the service and
go through Sherlock again); ``response.instance`` says which instance answered, and
``response.sherlock`` what Sherlock did (``{"attempts", "hedged", "ejected"}``; a
call that failed has it on its exception).

A hedged call (Sherlock's ``hedge``) sends its attempts in threads: the first answer is
returned, the other is read and dropped when it comes (requests cannot cancel a call).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from mwkit.names import SERVICE_NAME
from mwkit.sherlock.attempts import DEADLINE_HEADER, Attempt, Call, Router, deadline_of

#: Where a routed copy of a request keeps the logical URL while it goes to an instance.
LOGICAL_URL = "sherlock_logical_url"


def service_of(url: str) -> str | None:
    """The service a URL names, or None when it names an ordinary host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is None and host != "localhost" and "." not in host and \
            SERVICE_NAME.fullmatch(host):
        return host
    return None


class SherlockAdapter(HTTPAdapter):
    def __init__(self, sherlock: Router, **kwargs) -> None:
        super().__init__(pool_maxsize=32, **kwargs)
        self.sherlock = sherlock
        self._hedging: ThreadPoolExecutor | None = None  # made at the first hedged call

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        service = service_of(request.url)
        if service is None:
            return super().send(request, **kwargs)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.sherlock.connect_timeout, self.sherlock.timeout)
        elif not isinstance(kwargs["timeout"], tuple):
            kwargs["timeout"] = (min(self.sherlock.connect_timeout, kwargs["timeout"]),
                                 kwargs["timeout"])
        call = Call(self.sherlock, service, request.method,
                    deadline_of(request.headers.get(DEADLINE_HEADER)))
        for _ in call:
            delay = call.hedge_delay()
            if delay is None:
                response = self._attempt(call, call.current, request, kwargs)
            else:
                response = self._hedged(call, delay, request, kwargs)
            if response is not None:
                response.sherlock = call.summary()  # what Sherlock did, for the curious
                return response
        if call.kept is not None:  # a 5xx answer, and no other instance left to ask
            call.kept.sherlock = call.summary()
            return call.kept
        call.failure.sherlock = call.summary()  # ... for a call that failed too
        raise call.failure

    def _attempt(self, call: Call, attempt: Attempt, request: requests.PreparedRequest,
                 kwargs: dict) -> requests.Response | None:
        """Send one attempt and record it; the answer, or None when there was none."""
        copy = routed(request, call.service, attempt.endpoint.address)
        copy.headers.update(attempt.headers())
        connect, read = kwargs["timeout"]
        options = {**kwargs, "timeout": (attempt.timeout(connect), attempt.timeout(read))}
        try:
            response = super().send(copy, **options)
            if not kwargs.get("stream"):
                # Read the body here, not later in Session.send: an instance killed
                # between its headers and its body can then still be retried.
                response.content  # noqa: B018 - reading it is the point
        except requests.exceptions.ReadTimeout as error:
            call.timed_out(error, attempt)
            return None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            call.refused(error, attempt)
            return None
        response.instance = attempt.endpoint.id  # which instance answered, for the curious
        if call.answered(response.status_code, attempt):
            return response
        call.set_aside(response)  # a 5xx to retry elsewhere (retry_5xx); its body is read
        return None

    def _hedged(self, call: Call, delay: float, request: requests.PreparedRequest,
                kwargs: dict) -> requests.Response | None:
        """The current attempt, and after ``delay`` s without its answer a hedge on another
        instance, each in a thread: the first answer; the other's is read and dropped."""
        if self._hedging is None:
            self._hedging = ThreadPoolExecutor(32, thread_name_prefix="sherlock-hedge")
        running: dict[Future, Attempt] = {}

        def start(attempt: Attempt) -> None:
            attempt.in_thread = True
            running[self._hedging.submit(self._recorded, call, attempt, request, kwargs)] = \
                attempt

        start(call.current)
        if not wait(running, timeout=delay).done:
            hedge = call.hedge()
            if hedge is not None:
                start(hedge)
        for finished in as_completed(running):
            response = finished.result()
            if response is not None:
                for other in running:
                    other.add_done_callback(drop_answer)
                return response
        return None

    def _recorded(self, call: Call, attempt: Attempt, request: requests.PreparedRequest,
                  kwargs: dict) -> requests.Response | None:
        """:meth:`_attempt` in a thread of its own: recorded whatever happens."""
        try:
            return self._attempt(call, attempt, request, kwargs)
        finally:
            if not attempt.recorded:  # it raised something else
                attempt.record("error", None)

    def close(self) -> None:
        if self._hedging is not None:
            self._hedging.shutdown(wait=False)
        super().close()

    def build_response(self, req: requests.PreparedRequest, resp) -> requests.Response:
        """The response to a routed request carries the logical URL, as if nothing routed it.

        Called once the instance has answered (the connection is made, the headers read):
        from here on the request is the logical one, for ``response.url``,
        ``response.request`` and the cookies the response sets.
        """
        logical = req.__dict__.pop(LOGICAL_URL, None)
        if logical is not None:
            req.url = logical
        return super().build_response(req, resp)


def routed(request: requests.PreparedRequest, service: str,
           address: str) -> requests.PreparedRequest:
    """A copy of ``request`` sent to the instance at ``address``, with ``Host: <service>``."""
    copy = request.copy()
    setattr(copy, LOGICAL_URL, request.url)
    copy.url = urlunsplit(urlsplit(request.url)._replace(netloc=address))
    copy.headers["Host"] = service
    return copy


def drop_answer(future: Future) -> None:
    """Close the answer a hedged call did not use, once it came."""
    if future.exception() is None and future.result() is not None:
        future.result().close()
