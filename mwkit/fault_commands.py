"""``mwkit fault add | list | clear``: faults on purpose, from the command line.

Argument parsing only, over :class:`mwkit.faults.FaultInjector` (the same code as
``stack.inject`` / ``stack.faults`` / ``stack.clear``), for the stack ``mwkit up`` started
in the workdir.
"""

from __future__ import annotations

import argparse

from mwkit.cli import add_workdir_option


def _injector(args: argparse.Namespace):
    from mwkit.faults import FaultInjector
    from mwkit.wizard.wizard import Wizard

    return FaultInjector(Wizard(settings=args.settings))


def print_faults(faults) -> None:
    """One line per fault: where, which, and the sentence of what it does."""
    for fault in faults:
        print(f"  {fault}")


#: The values a fault takes on the command line: name, type, help.
VALUES = (("seconds", float, "latency: how long each delayed call waits"),
          ("fraction", float, "latency, errors: the share of calls hit, 0 to 1 (latency: 1)"),
          ("status", int, "errors: the status answered, 500 to 599 (default 500)"))


def _add(args: argparse.Namespace) -> int:
    params = {name: value for name, _, _ in VALUES if (value := getattr(args, name)) is not None}
    fault = _injector(args).inject(args.instance, args.kind, **params)
    print(f"injected {fault.id}: {fault.sentence}")
    return 0


def _list(args: argparse.Namespace) -> int:
    faults = _injector(args).faults()
    if not faults:
        print(f"no active faults in {args.settings.workdir}")
    print_faults(faults)
    return 0


def _clear(args: argparse.Namespace) -> int:
    cleared = _injector(args).clear(args.instance, args.kind)
    print(f"cleared {len(cleared)} fault(s)" + (":" if cleared else ""))
    for fault in cleared:
        print(f"  {fault.id}")
    return 0


def register(subparsers) -> None:
    from mwkit.faults import KINDS

    parser = subparsers.add_parser("fault", help="inject, list and clear faults in the "
                                                 "stack's instances, without touching code")
    commands = parser.add_subparsers(dest="fault_command", metavar="ACTION", required=True)
    add = commands.add_parser("add", help="inject a fault (a fault of the same kind on the "
                                          "instance is replaced)")
    add.add_argument("kind", choices=list(KINDS), metavar="KIND",
                     help=f"one of {', '.join(KINDS)}")
    add.add_argument("instance", nargs="?", default=None,
                     help="the instance (see `mwkit status`); none for directory")
    for name, kind, text in VALUES:
        add.add_argument(f"--{name}", type=kind, default=None, help=text)
    add.set_defaults(handler=_add)
    listing = commands.add_parser("list", help="every active fault, with what it does")
    listing.set_defaults(handler=_list)
    clear = commands.add_parser("clear", help="remove faults (all of them by default)")
    clear.add_argument("instance", nargs="?", default=None,
                       help="only this instance's faults")
    clear.add_argument("--kind", default=None, metavar="KIND",
                       help="only faults of this kind (directory: start the Directory again)")
    clear.set_defaults(handler=_clear)
    for sub in (add, listing, clear):
        add_workdir_option(sub)
