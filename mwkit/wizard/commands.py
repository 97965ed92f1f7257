"""The wizard's commands: ``mwkit svrun | svkill | scale | status | logs | demo-repo``.

Argument parsing only: each command is a few lines over :class:`mwkit.wizard.Wizard`
(imported when a command runs, so ``mwkit --help`` stays fast).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mwkit.cli import add_runtime_option, add_workdir_option
from mwkit.contract import Phase
from mwkit.settings import KIT_ROOT


def _common(parser: argparse.ArgumentParser) -> None:
    add_workdir_option(parser)
    add_runtime_option(parser)
    parser.add_argument("--directory", default=None,
                        help="the Directory's URL (default: $MWKIT_DIRECTORY_URL, else the "
                             "directory_url in <workdir>/stack.json written by `mwkit up`)")


def _source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=None, metavar="PATH",
                        help="the service's Git repository or folder (default: the kit's own "
                             "services, popularity and lobsters)")
    parser.add_argument("--subfolder", default="",
                        help="with --source: the folder inside it that holds microwizard/")


def _wizard(args: argparse.Namespace):
    from mwkit.wizard.wizard import Wizard

    sources = None
    if getattr(args, "source", None):
        from mwkit.wizard.source import ServiceSource, default_sources

        own = ServiceSource(Path(args.source).resolve(), subfolder=args.subfolder)
        sources = {**default_sources(KIT_ROOT), args.service: own}
    return Wizard(settings=args.settings, runtime=args.runtime, sources=sources,
                  progress=lambda line: print(line, flush=True))


def _svrun(args: argparse.Namespace) -> int:
    instance = _wizard(args).svrun(args.service, args.tag, args.ref, timeout=args.timeout)
    print(f"{instance.id} is registered ({instance.service} {instance.ref}, "
          f"{instance.short_commit})")
    return 0


def _svkill(args: argparse.Namespace) -> int:
    _wizard(args).svkill(args.tag, now=args.now, drain=args.drain)
    return 0


def _scale(args: argparse.Namespace) -> int:
    running = _wizard(args).scale(args.service, args.tag, args.n, ref=args.ref,
                                  drain=args.drain)
    print(f"{len(running)} instance(s) of {args.service} {args.tag}: "
          f"{', '.join(i.id for i in running) or 'none'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from mwkit.fault_commands import print_faults
    from mwkit.faults import stack_faults

    rows = _wizard(args).status()
    faults = stack_faults(args.settings.workdir) + [f for row in rows for f in row.faults]
    if not rows:
        print(f"no instances in {args.settings.workdir}")
    header = ("INSTANCE", "SERVICE", "TAG", "COMMIT", "RUNTIME", "ADDRESS", "PHASE")
    table = [header] + [(r.instance, r.service, r.tag, r.commit, r.runtime, r.address or "-",
                         r.phase + (f" ({r.reason})" if r.phase == Phase.FAILED else ""))
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table if rows else []:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))
    if faults:
        print("\nactive faults (`mwkit fault clear` removes them):")
        print_faults(faults)
    return 0


def _logs(args: argparse.Namespace) -> int:
    print(_wizard(args).logs(args.instance, lines=args.lines))
    return 0


def _demo_repo(args: argparse.Namespace) -> int:
    from mwkit.wizard.source import make_demo_repo

    print(make_demo_repo(args.settings.workdir, KIT_ROOT))
    return 0


def _no_drain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-drain", dest="drain", action="store_false",
                        help="stop the naive way of the 2015 original: SIGTERM to the service "
                             "while it is still registered; Watson deregisters it only once its "
                             "health checks fail (calls reach a closed port meanwhile)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("svrun", help="launch one more instance of a service")
    parser.add_argument("service", help="the service's name, e.g. popularity")
    parser.add_argument("tag", help="a label for this group of instances, e.g. v1 or canary")
    parser.add_argument("ref", nargs="?", default="v1",
                        help="a Git ref (tag, branch, sha), UNCOMMITTED (the live working "
                             "tree) or UNCOMMITTED_COPY (a snapshot of it); default v1")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds to wait for it to be registered (default 30)")
    _source(parser)
    _common(parser)
    parser.set_defaults(handler=_svrun)

    parser = subparsers.add_parser("svkill", help="remove the newest instance of a tag")
    parser.add_argument("tag")
    parser.add_argument("--now", action="store_true",
                        help="SIGKILL at once instead of deregistering and draining first")
    _no_drain(parser)
    _common(parser)
    parser.set_defaults(handler=_svkill)

    parser = subparsers.add_parser("scale", help="run exactly N instances of a service's tag")
    parser.add_argument("service")
    parser.add_argument("tag")
    parser.add_argument("n", type=int)
    parser.add_argument("--ref", default=None,
                        help="the ref for new instances (default: the tag's, else the tag)")
    _no_drain(parser)
    _source(parser)
    _common(parser)
    parser.set_defaults(handler=_scale)

    parser = subparsers.add_parser("status", help="list the instances and their states")
    _common(parser)
    parser.set_defaults(handler=_status)

    parser = subparsers.add_parser("logs", help="show the end of instance logs")
    parser.add_argument("instance", nargs="?", default=None,
                        help="an instance id (default: every instance)")
    parser.add_argument("-n", "--lines", type=int, default=50)
    _common(parser)
    parser.set_defaults(handler=_logs)

    parser = subparsers.add_parser("demo-repo", help="make the popularity demo Git repository")
    add_workdir_option(parser)
    parser.set_defaults(handler=_demo_repo)
