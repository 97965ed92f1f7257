"""Checks on everything a client sends the Directory, before any state changes.

Each check raises :class:`BadRequest` with a message that says what is wrong, so that the
server can answer 400 with that message and leave its state exactly as it was.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from mwkit.errors import BadRequest, brief
from mwkit.names import InvalidName, check_identifier, check_service_name

HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # fullmatch
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
MAX_VERSION_DIGITS = 18  # far beyond any real version, far below int()'s 4,300-digit limit
MAX_METADATA_BYTES = 4096
MIN_TTL, MAX_TTL, DEFAULT_TTL = 0.2, 3600.0, 10.0


def service_name(name: str) -> str:
    try:
        return check_service_name(name)
    except InvalidName as error:
        raise BadRequest(str(error)) from None


def instance_id(value: str) -> str:
    try:
        return check_identifier(value, "instance id")
    except InvalidName as error:
        raise BadRequest(str(error)) from None


def address(value: object) -> str:
    """Normalise ``host:port`` or ``http://host:port`` to ``host:port``.

    An ``https://`` address is refused, not stored as ``host:port``: Sherlock calls
    instances over plain http, and would talk plain http to a TLS port."""
    if not isinstance(value, str) or not value:
        raise BadRequest("'address' must be a string like '127.0.0.1:5000' or "
                         "'http://127.0.0.1:5000'")
    if not value.isprintable():  # urlsplit would silently drop a "\n" or a "\t"
        raise BadRequest(f"address {brief(value)} holds a control character")
    try:
        parts = urlsplit(value if "://" in value else f"http://{value}")
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise BadRequest(f"address {brief(value)} is not host:port") from None
    if parts.scheme == "https":
        raise BadRequest(f"address {brief(value)} is https: Sherlock calls instances over "
                         "plain http; give host:port")
    # "?", "#" and "user@" would be dropped without a word (as "\n" once was): refuse them.
    if parts.scheme != "http" or parts.path not in ("", "/") or \
            any(mark in value for mark in "?#@"):
        raise BadRequest(f"address {brief(value)} must be host:port or an http URL "
                         "without a path, query, fragment or user")
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"address {brief(value)} has a port outside 1-65535") from None
    host = parts.hostname or ""
    if port is None or not 1 <= port <= 65535:
        raise BadRequest(f"address {brief(value)} needs a port in 1-65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not HOSTNAME.fullmatch(host):
            raise BadRequest(f"address {brief(value)} has an invalid host {brief(host)}") from None
        return f"{host}:{port}"
    if "%" in host:  # an IPv6 zone ("fe80::1%eth0") names an interface, not a host
        raise BadRequest(f"address {brief(value)} has a zone (%...); give a plain IP address")
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def metadata(value: object) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("'metadata' must be a JSON object of small values")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool | type(None)):
            raise BadRequest(f"metadata {brief(key)} must be a string, number, boolean or null")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except ValueError:  # NaN or infinity: stored, it would be re-emitted as invalid JSON
        raise BadRequest("metadata numbers must be finite (no NaN or Infinity)") from None
    if size > MAX_METADATA_BYTES:
        raise BadRequest(f"'metadata' is larger than {MAX_METADATA_BYTES} bytes")
    return value


def ttl(value: object) -> float:
    if value is None:
        return DEFAULT_TTL
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        MIN_TTL <= value <= MAX_TTL
    ):
        raise BadRequest(f"'ttl' must be a number of seconds from {MIN_TTL} to {MAX_TTL}")
    return float(value)


def registration(body: object) -> tuple[str, dict, float]:
    """Validate a registration body: returns (address, metadata, ttl)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'address' "
                         "(and optional 'metadata', 'ttl')")
    unknown = set(body) - {"address", "metadata", "ttl"}
    if unknown:
        raise BadRequest(f"unknown field(s) {brief(sorted(unknown))}; "
                         "expected 'address', 'metadata', 'ttl'")
    if "address" not in body:
        raise BadRequest("missing field 'address'")
    return address(body["address"]), metadata(body.get("metadata")), ttl(body.get("ttl"))


def version(value: str | None, what: str = "since") -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_VERSION_DIGITS:
        raise BadRequest(f"{what!r} must be a non-negative whole number, got {brief(value)}")
    return int(value)
