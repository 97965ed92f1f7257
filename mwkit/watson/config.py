"""Watson's settings, read from a ``datawire.conf`` INI file or given directly.

The file keeps the original Baker Street keys (``[Datawire] directory_host``,
``[Watson] service_url, service_name, health_check_url, period``) and adds optional ones:
``timeout``, ``rise``, ``fall``, ``ttl``, ``token``, ``instance_id``, ``drain``.
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mwkit.errors import DirectoryError, brief
from mwkit.errors import WatsonConfigError as ConfigError
from mwkit.names import InvalidName, check_identifier, check_service_name

#: How an instance is checked unless its microwizard.yml or datawire.conf says otherwise
#: (seconds; rise and fall in consecutive checks). One place, used by the spec as well.
DEFAULT_PERIOD, DEFAULT_TIMEOUT, DEFAULT_RISE, DEFAULT_FALL = 1.0, 0.5, 1, 2


def _http_url(url: str) -> bool:
    """``http(s)://host[:port]`` or the original's bare ``host:port``, with nothing odd in
    it: what a Directory client can call."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and url.isprintable() and \
        re.fullmatch(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+", parts.hostname or "") is not None


def _etcd_url(url: str) -> bool:
    """``etcd://host:port[,host:port...]``: an etcd cluster as the Directory."""
    from mwkit.directory.etcd import endpoints_of, is_etcd_url

    try:
        return is_etcd_url(url) and url.isprintable() and all(
            _http_url(endpoint) for endpoint in endpoints_of(url))
    except DirectoryError:
        return False


@dataclass(frozen=True)
class WatsonConfig:
    service_name: str
    service_url: str
    health_check_url: str
    directory_url: str
    period: float = DEFAULT_PERIOD
    timeout: float = DEFAULT_TIMEOUT
    rise: int = DEFAULT_RISE
    fall: int = DEFAULT_FALL
    ttl: float | None = None  # lease length; default: a few periods
    token: str | None = None
    instance_id: str | None = None
    metadata: dict = field(default_factory=dict)
    drain: float = 1.0  # seconds between deregistering and exiting

    def __post_init__(self) -> None:
        try:
            check_service_name(self.service_name)
            if self.instance_id is not None:
                check_identifier(self.instance_id, "instance_id")
        except InvalidName as error:
            raise ConfigError(str(error)) from None
        for name in ("service_url", "health_check_url", "directory_url"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required")
        if not (_http_url(self.directory_url) or _etcd_url(self.directory_url)):
            raise ConfigError(f"[Datawire] directory_host {brief(self.directory_url)} is not a "
                              "Directory URL (http://host:port, host:port, or "
                              "etcd://host:port[,host:port...])")
        if self.service_url.lower().startswith("https://"):
            raise ConfigError(f"service_url {brief(self.service_url)} is https: Sherlock calls "
                              "instances over plain http (give http://host:port)")
        if not (0 < self.period < math.inf and 0 < self.timeout < math.inf
                and 0 <= self.drain < math.inf):  # comparisons with NaN are all False
            raise ConfigError("period and timeout must be finite numbers > 0, drain >= 0")
        if self.ttl is not None and not 0 < self.ttl < math.inf:
            raise ConfigError("ttl must be a finite number > 0")
        if self.rise < 1 or self.fall < 1:
            raise ConfigError("rise and fall must be whole numbers >= 1")

    @property
    def lease_ttl(self) -> float:
        """The lease asked for: long enough to survive two missed heartbeats."""
        return self.ttl if self.ttl is not None else max(3 * self.period, 2.0)

    @functools.cached_property
    def resolved_instance_id(self) -> str:
        """``instance_id``, else one made up once for this configuration (the same on every
        read: Watson registers, renews and deregisters under one id)."""
        return self.instance_id or f"{self.service_name}-{uuid.uuid4().hex[:12]}"

    def replace(self, **changes) -> WatsonConfig:
        """A copy with some settings overridden (command-line arguments win over the file)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> WatsonConfig:
        """Read a ``datawire.conf``; ``overrides`` (not None) replace what the file says."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"{path}: no such file, or not UTF-8 text") from None
        return cls.from_text(text, path, **overrides)

    @classmethod
    def from_text(cls, text: str, path: str | Path, **overrides) -> WatsonConfig:
        """Read the text of a ``datawire.conf`` (``path`` names it in errors)."""
        # No %-interpolation: a URL may hold "%2F", and "%(x)s" means nothing here.
        parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"),
                                           interpolation=None)
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as error:
            raise ConfigError(f"{path}: not a valid INI file: {brief(str(error), 200)}"
                              ) from None
        values: dict = {}
        if parser.has_option("Datawire", "directory_host"):
            values["directory_url"] = parser.get("Datawire", "directory_host")
        if not parser.has_section("Watson"):
            raise ConfigError(f"{path}: missing the [Watson] section")
        converters = {"period": float, "timeout": float, "ttl": float, "drain": float,
                      "rise": int, "fall": int}
        known = {f.name for f in dataclasses.fields(cls)} - {"metadata", "directory_url"}
        for key, raw in parser.items("Watson"):
            if key not in known:
                raise ConfigError(f"{path}: unknown key {brief(key)} in [Watson] "
                                  f"(known: {', '.join(sorted(known))})")
            try:
                values[key] = converters.get(key, str)(raw)
            except ValueError:
                raise ConfigError(f"{path}: [Watson] {key} = {brief(raw)} is not a number"
                                  ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        required = ("service_name", "service_url", "health_check_url")
        missing = [key for key in required if key not in values]
        if "directory_url" not in values:
            missing.append("directory_host (in [Datawire])")
        if missing:
            raise ConfigError(f"{path}: missing {', '.join(missing)}")
        try:
            return cls(**values)
        except TypeError as error:
            raise ConfigError(f"{path}: {error}") from None
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
