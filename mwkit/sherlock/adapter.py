"""A requests transport adapter that resolves ``http://<service>/...`` through Sherlock.

Mounted on ``http://`` of a session, it routes a URL whose host is a bare service name (no
dot, no port, not ``localhost``) and passes every other URL through unchanged, so the same
session can call services by name and ordinary hosts alike.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from mwkit.names import SERVICE_NAME
from mwkit.sherlock.router import NoInstances, Sherlock

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def service_of(url: str) -> str | None:
    """The service a URL names, or None when it names an ordinary host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is None and host != "localhost" and "." not in host and \
            SERVICE_NAME.match(host):
        return host
    return None


class SherlockAdapter(HTTPAdapter):
    def __init__(self, sherlock: Sherlock, **kwargs) -> None:
        super().__init__(pool_maxsize=32, **kwargs)
        self.sherlock = sherlock

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        service = service_of(request.url)
        if service is None:
            return super().send(request, **kwargs)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.sherlock.connect_timeout, self.sherlock.timeout)
        elif not isinstance(kwargs["timeout"], tuple):
            kwargs["timeout"] = (min(self.sherlock.connect_timeout, kwargs["timeout"]),
                                 kwargs["timeout"])
        attempts = 1 + (self.sherlock.retries if request.method in IDEMPOTENT else 0)
        tried: set[str] = set()
        started = time.time()
        for attempt in range(1, attempts + 1):
            try:
                endpoint = self.sherlock.acquire(service, frozenset(tried))
            except NoInstances:
                if attempt == 1:
                    self.sherlock.record_no_instances(service, started)
                raise
            tried.add(endpoint.id)
            routed = request.copy()
            parts = urlsplit(request.url)
            routed.url = urlunsplit(parts._replace(netloc=endpoint.address))
            routed.headers["Host"] = endpoint.address
            began = time.monotonic()
            try:
                response = super().send(routed, **kwargs)
                if not kwargs.get("stream"):
                    # Read the body here, not later in Session.send: an instance killed
                    # between its headers and its body can then still be retried.
                    response.content  # noqa: B018 - reading it is the point
            except requests.exceptions.ReadTimeout:
                self.sherlock.release(endpoint, started, began, "timeout", None, attempt)
                raise
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                self.sherlock.release(endpoint, started, began, "refused", None, attempt)
                if attempt == attempts:
                    raise
                continue
            outcome = "ok" if response.status_code < 500 else "error"
            self.sherlock.release(endpoint, started, began, outcome, response.status_code,
                                  attempt)
            response.instance = endpoint.id  # which instance answered, for the curious
            return response
        raise AssertionError("unreachable")  # the loop returns or raises
