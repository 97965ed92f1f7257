"""``mwkit directory``: run the Directory in the foreground."""

from __future__ import annotations

import argparse
import os


def run(args: argparse.Namespace) -> int:
    from mwkit.directory.server import serve

    serve(args.host, args.port, args.token)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("directory", help="run the Directory (registry with push)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=5353, help="port (default: 5353)")
    parser.add_argument("--token", default=os.environ.get("MWKIT_DIRECTORY_TOKEN"),
                        help="shared token that writes must carry "
                             "(default: $MWKIT_DIRECTORY_TOKEN; none: writes are open)")
    parser.set_defaults(handler=run)
