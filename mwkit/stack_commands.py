"""``mwkit up`` and ``mwkit demo``: the whole demo stack from the command line."""

from __future__ import annotations

import argparse
import signal
import threading

from mwkit.cli import add_runtime_option, add_workdir_option
from mwkit.settings import DEFAULT_RETRIES, Settings
from mwkit.sherlock.commands import add_guard_options, guarded
from mwkit.sherlock.policies import DEFAULT_POLICY, POLICIES


def _options(parser: argparse.ArgumentParser) -> None:
    add_workdir_option(parser)
    add_runtime_option(parser)
    parser.add_argument("--db", default=None,
                        help="sqlite (the default, or $MWKIT_DB), mariadb (a private server "
                             "on the runtime), or a mysql:// URL")
    parser.add_argument("--policy", default=None, choices=sorted(POLICIES),
                        help=f"how the monolith's Sherlock balances (default: "
                             f"$MWKIT_SHERLOCK_POLICY, else {DEFAULT_POLICY})")
    parser.add_argument("--retries", type=int, default=None, metavar="N",
                        help=f"how many other instances the monolith's Sherlock tries when one "
                             f"refuses a call; 0: none (default: $MWKIT_SHERLOCK_RETRIES, else "
                             f"{DEFAULT_RETRIES})")
    parser.add_argument("--registry", default=None, metavar="WHERE",
                        help="where instances register: directory (the kit's own Directory, "
                             "the default, or $MWKIT_REGISTRY), etcd (a three-member etcd "
                             "cluster on loopback), or etcd://host:port[,...] (a running one)")
    parser.add_argument("--eject", action=argparse.BooleanOptionalAction, default=None,
                        help="whether the monolith's Sherlock leaves out an instance that "
                             "refused a call for a while; --no-eject: it keeps calling it "
                             "until the Directory drops it (default: $MWKIT_SHERLOCK_EJECT, "
                             "else eject)")
    add_guard_options(parser, "the monolith's ")


def _settings(args: argparse.Namespace) -> Settings:
    """The command's settings with the monolith's Sherlock options applied."""
    return guarded(args.settings, args).replace(retries=args.retries, eject=args.eject,
                                                registry=args.registry)


def _up(args: argparse.Namespace) -> int:
    from mwkit.links import browser_link
    from mwkit.stack import Stack

    if args.detach or args.owner is not None:
        stack = Stack(settings=_settings(args), progress=lambda line: print(line, flush=True),
                      detach=True, owner=args.owner).up()
        until = "" if args.owner is None else f" or until process {args.owner} ends"
        print(f"\nthe stack is up, detached: open "
              f"{browser_link(f'{stack.monolith_url}/popular', args.settings)}\n"
              f"it runs until `mwkit down --workdir {stack.workdir}`{until}.", flush=True)
        return 0
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with Stack(settings=_settings(args), progress=lambda line: print(line, flush=True),
               foreground=True) as stack:
        print(f"\nthe stack is up: open "
              f"{browser_link(f'{stack.monolith_url}/popular', args.settings)}\n"
              f"in another terminal: mwkit svrun popularity v1 v1, mwkit scale popularity v1 3,"
              f" mwkit status\nCtrl-C (or mwkit down) stops everything.", flush=True)
        stopping.wait()
        print("stopping the stack ...", flush=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mwkit.demo import run_demo

    result = run_demo(_settings(args), args.output, progress=lambda line: print(line, flush=True))
    return 0 if result.reloads else 1


def _down(args: argparse.Namespace) -> int:
    from mwkit.stack import teardown

    removed = teardown(args.settings.workdir, force=args.force,
                       progress=lambda line: print(line, flush=True))
    if not removed:
        print("nothing was running")
    return 0


def register(subparsers) -> None:
    up = subparsers.add_parser("up", help="start the Directory, the database and the monolith "
                                          "(in the foreground; Ctrl-C stops them)")
    _options(up)
    up.add_argument("--detach", action="store_true",
                    help="return once the stack is up and leave it running until `mwkit "
                         "down` (without it, the stack also stops if this command is killed)")
    up.add_argument("--owner", type=int, default=None, metavar="PID",
                    help="with --detach (implied): the stack lives until process PID ends or "
                         "`mwkit down`; a notebook runs `!mwkit up --detach --owner "
                         "{os.getpid()}`, so its stack goes with its kernel")
    up.set_defaults(handler=_up)
    demo = subparsers.add_parser("demo", help="the end-to-end demo: scale, canary, kill -9, "
                                              "and a picture of how the calls spread")
    _options(demo)
    demo.add_argument("--output", default="demo-output", help="where the picture and the "
                                                              "table go (default: demo-output)")
    demo.set_defaults(handler=_demo)
    down = subparsers.add_parser("down", help="remove every instance, the Directory and the "
                                              "database of the workdir, also after a crash")
    add_workdir_option(down)
    down.add_argument("--force", action="store_true",
                      help="also when the state files are damaged, and look for Docker "
                           "containers of this workdir even if none is recorded")
    down.set_defaults(handler=_down)
