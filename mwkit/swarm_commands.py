"""``mwkit swarm deploy|scale|rollout|rollback|status|rm``: a service on Docker Swarm.

Argument parsing only, over :class:`mwkit.swarm.SwarmServices`, for a stack started with
``mwkit up --runtime swarm``. Swarm keeps the replicas running; ``mwkit down`` removes the
services with the rest of the stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mwkit.cli import add_workdir_option
from mwkit.wizard.commands import _source


def _services(args: argparse.Namespace):
    from mwkit.settings import KIT_ROOT
    from mwkit.swarm import SwarmServices
    from mwkit.wizard.source import ServiceSource, default_sources

    sources = default_sources(KIT_ROOT)
    if getattr(args, "source", None):
        sources[args.service] = ServiceSource(Path(args.source).resolve(), subfolder=args.subfolder)
    return SwarmServices(args.settings.workdir, sources=sources, progress=print)


def _print_tasks(tasks) -> None:
    for task in tasks:
        print(f"{task.id[:12]}  slot {task.slot}  {task.commit}  {task.state:<9} "
              f"{task.address or '-'}  {task.error}".rstrip())


def _run(args: argparse.Namespace) -> int:
    services = _services(args)
    if args.action == "deploy":
        _print_tasks(services.deploy(args.service, args.tag, args.ref, args.replicas))
    elif args.action == "scale":
        _print_tasks(services.scale(args.service, args.tag, args.replicas))
    elif args.action == "rollout":
        _print_tasks(services.rollout(args.service, args.tag, args.ref))
    elif args.action == "rollback":
        _print_tasks(services.rollback(args.service, args.tag))
    elif args.action == "rm":
        services.remove(args.service, args.tag)
    else:
        _print_tasks(services.status(args.service, args.tag))
        for instance in services.registered(args.service, args.tag):
            print(f"registered {instance['id']} at {instance['address']}")
    return 0


def _replicas(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return int(text)


def register(subparsers) -> None:
    parser = subparsers.add_parser("swarm", help="run a service's commit as a Docker Swarm "
                                                 "service (stack: mwkit up --runtime swarm)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    helps = {"deploy": "create the service's Swarm service from a ref",
             "scale": "set its number of replicas",
             "rollout": "rolling update to another ref, start-first",
             "rollback": "rolling update back to the commit before the last rollout",
             "status": "its tasks and what the Directory lists",
             "rm": "remove it (every task drains first)"}
    for action, text in helps.items():
        sub = actions.add_parser(action, help=text)
        sub.add_argument("service", help="the service's name, e.g. popularity")
        sub.add_argument("tag", help="the tag its instances carry, e.g. v1")
        if action in ("deploy", "rollout"):
            sub.add_argument("ref", nargs="?" if action == "deploy" else None,
                             help="a Git ref (default for deploy: the tag)")
            _source(sub)
        if action == "deploy":
            sub.add_argument("--replicas", type=_replicas, default=1,
                             help="number of tasks (default 1)")
        if action == "scale":
            sub.add_argument("replicas", type=_replicas, help="number of tasks")
        add_workdir_option(sub)
        sub.set_defaults(handler=_run)
