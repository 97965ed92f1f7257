"""``mwkit sherlock``: run Sherlock as a local proxy in front of every service.

Its retries and ejection come from ``MWKIT_SHERLOCK_RETRIES`` and ``MWKIT_SHERLOCK_EJECT``
(see :mod:`mwkit.settings`), as the monolith's do.
"""

from __future__ import annotations

import argparse
import signal

from mwkit.directory import DIRECTORY_PORT
from mwkit.sherlock.policies import DEFAULT_POLICY, POLICIES


def run(args: argparse.Namespace) -> int:
    from mwkit.sherlock.proxy import serve
    from mwkit.sherlock.router import Sherlock

    host, _, port = args.listen.rpartition(":")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    settings = args.settings
    directory = settings.directory_url or f"http://127.0.0.1:{DIRECTORY_PORT}"
    with Sherlock(directory, policy=settings.policy, retries=settings.retries,
                  eject=settings.eject, timeout=args.timeout,
                  token=settings.directory_token) as sherlock:
        try:
            serve(sherlock, host or "127.0.0.1", int(port))
        except KeyboardInterrupt:
            pass
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("sherlock", help="route /<service>/... to live instances "
                                                    "(a local proxy)")
    parser.add_argument("--directory", default=None,
                        help=f"the Directory's URL (default: $MWKIT_DIRECTORY_URL, else "
                             f"http://127.0.0.1:{DIRECTORY_PORT})")
    parser.add_argument("--listen", default="127.0.0.1:8000", help="HOST:PORT to listen on")
    parser.add_argument("--policy", default=None, choices=sorted(POLICIES),
                        help=f"default: $MWKIT_SHERLOCK_POLICY, else {DEFAULT_POLICY}")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-call timeout (s)")
    parser.set_defaults(handler=run)
