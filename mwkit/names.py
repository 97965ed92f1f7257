"""Validation of the names that travel between the parts of the kit.

Service names follow Baker Street's rule (``^[a-z_][a-z0-9_-]*$``, at most 100
characters). Instance ids and tags are a little more liberal but can never contain a
path separator, ``..`` or shell metacharacters, because they end up in folder names,
container names and environment variables.
"""

from __future__ import annotations

import re

from mwkit.errors import InvalidName, brief

# Matched with fullmatch: a pattern ending in "$" would also accept a trailing newline.
SERVICE_NAME = re.compile(r"[a-z_][a-z0-9_-]*")
IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_LENGTH = 100


def check_service_name(name: object, what: str = "service name") -> str:
    """Return ``name`` if it is a valid service name, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string, got {brief(name)}")
    if len(name) > MAX_LENGTH:
        raise InvalidName(f"{what} {name[:20]!r}... is longer than {MAX_LENGTH} characters")
    if not SERVICE_NAME.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} must match ^{SERVICE_NAME.pattern}$ "
            "(lower-case letters, digits, '_' and '-', not starting with a digit or '-')"
        )
    return name


def check_identifier(value: object, what: str = "identifier") -> str:
    """Return ``value`` if it is safe as an instance id or tag, else raise :class:`InvalidName`."""
    if not isinstance(value, str) or not value:
        raise InvalidName(f"{what} must be a non-empty string, got {brief(value)}")
    if len(value) > MAX_LENGTH:
        raise InvalidName(f"{what} {value[:20]!r}... is longer than {MAX_LENGTH} characters")
    if ".." in value or not IDENTIFIER.fullmatch(value):
        raise InvalidName(
            f"{what} {value!r} may only hold letters, digits, '_', '-' and '.' "
            "(no '..', no '/', no spaces or shell characters)"
        )
    return value
