"""``mwkit directory``: run the Directory in the foreground."""

from __future__ import annotations

import argparse

from mwkit.directory import DIRECTORY_PORT


def run(args: argparse.Namespace) -> int:
    from mwkit.directory.server import serve

    serve(args.host, args.port, args.settings.directory_token)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("directory", help="run the Directory (registry with push)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=DIRECTORY_PORT,
                        help=f"port (default: {DIRECTORY_PORT})")
    parser.epilog = ("Writes need the token in $MWKIT_DIRECTORY_TOKEN when it is set (it is "
                     "never taken from the command line, where `ps` would show it).")
    parser.set_defaults(handler=run)
