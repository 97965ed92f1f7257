"""``mwkit chaos``: break a stack of its own on purpose and print what each fault cost."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from mwkit.cli import add_runtime_option


def _chaos(args: argparse.Namespace) -> int:
    from mwkit.chaos import check_faults, default_faults, report_json, run_chaos
    from mwkit.stack import Stack, teardown

    def say(line: str) -> None:
        print(line, flush=True)

    faults = [f.strip() for f in args.faults.split(",") if f.strip()] if args.faults else None
    check_faults(faults or [], args.settings.runtime, args.engine_restart)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mwkit-chaos-"))
    made = args.workdir is None
    settings = args.settings.replace(workdir=workdir)
    try:
        with Stack(settings=settings, progress=say) as stack:
            say(f"chaos in {workdir}: {', '.join(faults or default_faults(stack.runtime.name))}"
                + (", engine-restart" if args.engine_restart else ""))
            report = run_chaos(stack, faults, rate=args.rate, seconds=args.seconds,
                               n=args.instances, seed=args.seed,
                               engine_restart=tuple(args.engine_restart or ()) or None,
                               progress=say)
    finally:
        teardown(workdir, force=True, progress=lambda line: None)  # also after Ctrl-C
        if made:
            shutil.rmtree(workdir, ignore_errors=True)
    say("")
    say(report.table())
    if args.json:
        Path(args.json).write_text(report_json(report))
    say(f"\ntarget {'met' if report.met else 'MISSED'}: 0 failed calls while two instances "
        "are live, nothing left behind, the table whole again")
    return 0 if report.met else 1


def register(subparsers) -> None:
    from mwkit.chaos import FAULTS

    parser = subparsers.add_parser(
        "chaos", help="bring up a stack of its own, break it on purpose under page reloads "
                      "(kill -9, SIGSTOP, ...), print what each fault cost, take it down")
    add_runtime_option(parser)
    parser.add_argument("--workdir", default=None,
                        help="where the chaos stack lives (default: a new temporary folder, "
                             "removed at the end); its stack is taken down at the end")
    parser.add_argument("--faults", default=None,
                        help=f"comma-separated, in order (default: {','.join(FAULTS)}; "
                             "take-port on processes only)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="page reloads a second (default 10)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="the longest a fault may take to be whole again (default 20)")
    parser.add_argument("--instances", type=int, default=3,
                        help="popularity instances (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="which instances are hit")
    parser.add_argument("--engine-restart", nargs=2, metavar=("STOP", "START"),
                        help="Docker only: also stop and start the Docker engine with these "
                             "two shell commands; it stops EVERY container on the engine")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the report as JSON")
    parser.set_defaults(handler=_chaos)
