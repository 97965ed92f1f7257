"""``mwkit sherlock``: run Sherlock as a local proxy in front of every service.

Its retries and ejection come from ``MWKIT_SHERLOCK_RETRIES`` and ``MWKIT_SHERLOCK_EJECT``
(see :mod:`mwkit.settings`), as the monolith's do; the options of :func:`add_guard_options`
(outlier ejection, retry budget, hedging, deadline) from their variables or the command line.

Two data planes forward the calls: ``python`` (the default), the readable proxy of
:mod:`mwkit.sherlock.proxy`, with every option; ``haproxy``, HAProxy driven live through its
runtime API (:mod:`mwkit.sherlock.haproxy_plane`), a few hundredths of a millisecond per
call instead of about half a millisecond, for the services given with ``--service`` only.
Retries map to HAProxy's ``retries``, ejection to its health checks, ``--timeout`` to its
``timeout server``, the policies but ``peak_ewma`` to its ``balance``; an option HAProxy has
no counterpart for is refused before anything starts.
"""

from __future__ import annotations

import argparse
import signal

from mwkit.directory import DIRECTORY_PORT
from mwkit.errors import InvalidInput, StartFailed
from mwkit.sherlock.haproxy_plane import BALANCE, DEFAULT_SLOTS
from mwkit.sherlock.policies import DEFAULT_POLICY, POLICIES

DATA_PLANES = ("python", "haproxy")


def run(args: argparse.Namespace) -> int:
    from mwkit.sherlock.proxy import serve
    from mwkit.sherlock.router import Sherlock

    host, _, port = args.listen.rpartition(":")
    settings = guarded(args.settings, args)
    directory = settings.directory_url or f"http://127.0.0.1:{DIRECTORY_PORT}"
    if args.data_plane == "haproxy":
        return run_haproxy(args, settings, directory, host or "127.0.0.1", int(port))
    if args.service or args.slots is not None:
        raise InvalidInput("--service and --slots are options of --data-plane haproxy (the "
                           "Python proxy routes every service the Directory lists)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    with Sherlock(directory, **settings.sherlock_options(), timeout=args.timeout,
                  token=settings.directory_token) as sherlock:
        try:
            serve(sherlock, host or "127.0.0.1", int(port))
        except KeyboardInterrupt:
            pass
    return 0


def haproxy_refusals(settings) -> list[str]:
    """What ``settings`` ask of Sherlock that HAProxy's data plane cannot do."""
    refused = [f"--policy {settings.policy} (HAProxy's data plane has "
               f"{', '.join(BALANCE)})"] if settings.policy not in BALANCE else []
    for option, field, *_ in GUARDS:
        if getattr(settings, field):
            refused.append(f"{option} (or $MWKIT_SHERLOCK_{field.upper()})")
    if settings.retry_5xx:
        refused.append("--retry-5xx (or $MWKIT_SHERLOCK_RETRY_5XX)")
    return refused


def run_haproxy(args: argparse.Namespace, settings, directory: str, host: str,
                port: int) -> int:
    """Sherlock's HAProxy data plane until Ctrl-C or SIGTERM (or HAProxy's exit)."""
    from mwkit.sherlock.haproxy_plane import HaproxyPlane

    refused = haproxy_refusals(settings)
    if refused:
        raise InvalidInput(f"only the Python data plane has {'; '.join(refused)}: leave "
                           "them out, or use --data-plane python")
    slots = DEFAULT_SLOTS if args.slots is None else args.slots
    plane = HaproxyPlane(directory, args.service or ("popularity",), host, port,
                         slots=slots, policy=settings.policy,
                         retries=settings.retries, check=settings.eject,
                         timeout=args.timeout, workdir=settings.workdir)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    try:
        with plane:
            print(f"Sherlock's HAProxy data plane on http://{host}:{port}/<service>/... for "
                  f"{', '.join(plane.services)} (HAProxy pid {plane.process.pid}, log "
                  f"{plane.scratch / 'haproxy.log'})", flush=True)
            plane.process.wait()  # until Ctrl-C or SIGTERM interrupts it, or HAProxy ends
            raise StartFailed(f"HAProxy exited with code {plane.process.returncode}")
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
                        help=f"default: $MWKIT_SHERLOCK_POLICY, else {DEFAULT_POLICY} "
                             "(peak_ewma: Python data plane only)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-call timeout (s)")
    parser.add_argument("--data-plane", choices=DATA_PLANES, default="python",
                        help="what forwards the calls: python (the default: Sherlock's own "
                             "proxy, every option) or haproxy (HAProxy kept live through its "
                             "runtime API, much faster; only --service services, policies "
                             f"{', '.join(BALANCE)}, none of the guard options below)")
    parser.add_argument("--service", action="append", default=None,
                        help="haproxy data plane only: a service it routes (repeatable; "
                             "default: popularity); a new service needs a restart")
    parser.add_argument("--slots", type=int, default=None,
                        help=f"haproxy data plane only: server slots per service, the most "
                             f"instances it can route (default: {DEFAULT_SLOTS})")
    add_guard_options(parser, "")
    parser.set_defaults(handler=run)


#: The options of what modern balancers add: (option, settings field, type, help).
GUARDS = (
    ("--outlier-5xx", "outlier_5xx", int, "N", "leaves out an instance after N 5xx answers in "
     "a row, N x 1 s the N-th time, at most half the instances (Envoy's default N: 5)"),
    ("--retry-budget", "retry_budget", float, "SHARE", "retries (and hedges) at most SHARE "
     "of the last 10 s of calls + 1 a second (Finagle's: 0.2)"),
    ("--hedge", "hedge", float, "QUANTILE", "sends a second copy of an idempotent call not "
     "answered within this quantile of recent latencies, 0.95 for p95 (The Tail at Scale)"),
    ("--deadline", "deadline", float, "SECONDS", "gives each call this long, told to the "
     "instance in X-Deadline-Ms; no retry or hedge once it is spent"),
)


def add_guard_options(parser: argparse.ArgumentParser, whose: str) -> None:
    """``--outlier-5xx``, ``--retry-budget``, ``--hedge``, ``--deadline``, ``--retry-5xx``:
    each off (0) unless given or set by its ``MWKIT_SHERLOCK_*`` variable."""
    for option, field, kind, metavar, text in GUARDS:
        variable = "$MWKIT_SHERLOCK_" + field.upper()
        parser.add_argument(option, type=kind, default=None, metavar=metavar, dest=field,
                            help=f"{whose}Sherlock {text} (default: {variable}, else 0: off)")
    parser.add_argument("--retry-5xx", action="store_true", default=None, dest="retry_5xx",
                        help=f"{whose}Sherlock also retries an idempotent call answered with "
                             "a 5xx, on another instance (Envoy's retry_on: 5xx; default: "
                             "$MWKIT_SHERLOCK_RETRY_5XX, else off)")


def guarded(settings, args: argparse.Namespace):
    """``settings`` with the options of :func:`add_guard_options` that were given."""
    given = {field: getattr(args, field) for _, field, *_ in GUARDS}
    return settings.replace(**given, retry_5xx=args.retry_5xx)
