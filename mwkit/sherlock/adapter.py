"""A requests transport adapter that resolves ``http://<service>/...`` through Sherlock.

Mounted on ``http://`` of a session, it routes a URL whose host is a bare service name (no
dot, no port, not ``localhost``) and passes every other URL through unchanged, so the same
session can call services by name and ordinary hosts alike.

Routing is transparent: only the connection goes to the instance. The instance sees
``Host: <service>``, and the response keeps the logical URL in ``response.url`` and
``response.request.url`` (so a relative redirect, and a cookie, stay with the service and
go through Sherlock again); ``response.instance`` says which instance answered.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from mwkit.names import SERVICE_NAME
from mwkit.sherlock.attempts import Call, Router

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

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        service = service_of(request.url)
        if service is None:
            return super().send(request, **kwargs)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.sherlock.connect_timeout, self.sherlock.timeout)
        elif not isinstance(kwargs["timeout"], tuple):
            kwargs["timeout"] = (min(self.sherlock.connect_timeout, kwargs["timeout"]),
                                 kwargs["timeout"])
        call = Call(self.sherlock, service, request.method)
        for endpoint in call:
            try:
                response = super().send(routed(request, service, endpoint.address), **kwargs)
                if not kwargs.get("stream"):
                    # Read the body here, not later in Session.send: an instance killed
                    # between its headers and its body can then still be retried.
                    response.content  # noqa: B018 - reading it is the point
            except requests.exceptions.ReadTimeout as error:
                call.timed_out(error)
                continue
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                call.refused(error)
                continue
            call.answered(response.status_code)
            response.instance = endpoint.id  # which instance answered, for the curious
            return response
        raise call.failure

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
