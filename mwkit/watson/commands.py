"""``mwkit watson``: run a Watson beside an instance, in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from mwkit.watson.agent import Watson
from mwkit.watson.config import ConfigError, WatsonConfig

OPTIONS = {  # option -> type; each also a [Watson] key of datawire.conf
    "service_name": str, "service_url": str, "health_check_url": str, "directory_url": str,
    "period": float, "timeout": float, "rise": int, "fall": int, "ttl": float,
    "token": str, "instance_id": str, "drain": float,
}


def parse_metadata(pairs: list[str]) -> dict:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--meta {pair!r} must look like key=value")
        metadata[key] = value
    return metadata


def config_from_args(args: argparse.Namespace) -> WatsonConfig:
    values = {name: getattr(args, name) for name in OPTIONS}
    values["token"] = values["token"] or args.settings.directory_token
    metadata = parse_metadata(args.meta)
    if metadata:
        values["metadata"] = metadata
    if args.config:
        return WatsonConfig.from_file(args.config, **values)
    return WatsonConfig(**{k: v for k, v in values.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s watson %(message)s")
    watson = Watson(config_from_args(args))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    watson.start()
    stopping.wait()
    watson.stop()
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("watson", help="health-check one instance and keep it "
                                                  "registered in the Directory")
    parser.add_argument("--config", help="a datawire.conf file; options below override it")
    for name, kind in OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="metadata to register (repeatable)")
    parser.set_defaults(handler=run)
