"""``mwkit sherlock``: run Sherlock as a local proxy in front of every service."""

from __future__ import annotations

import argparse
import os
import signal

from mwkit.sherlock.policies import POLICIES


def run(args: argparse.Namespace) -> int:
    from mwkit.sherlock.proxy import serve
    from mwkit.sherlock.router import Sherlock

    host, _, port = args.listen.rpartition(":")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    with Sherlock(args.directory, policy=args.policy, timeout=args.timeout) as sherlock:
        try:
            serve(sherlock, host or "127.0.0.1", int(port))
        except KeyboardInterrupt:
            pass
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("sherlock", help="route /<service>/... to live instances "
                                                    "(a local proxy)")
    parser.add_argument("--directory", default=os.environ.get("MWKIT_DIRECTORY_URL",
                                                              "http://127.0.0.1:5353"),
                        help="the Directory's URL (default: $MWKIT_DIRECTORY_URL)")
    parser.add_argument("--listen", default="127.0.0.1:8000", help="HOST:PORT to listen on")
    parser.add_argument("--policy", default="round_robin", choices=sorted(POLICIES))
    parser.add_argument("--timeout", type=float, default=5.0, help="per-call timeout (s)")
    parser.set_defaults(handler=run)
