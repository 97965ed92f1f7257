"""The ``mwkit`` command: argument parsing over the same Python API the notebooks use.

Each part of the kit contributes its own subcommands through a ``register(subparsers)``
function in its ``commands`` module, so this file stays a table of contents. Every
command gets ``args.settings`` (:class:`mwkit.settings.Settings`: the ``MWKIT_*``
variables, overridden by the command's own options).

An error the kit raises on purpose (:class:`mwkit.errors.MwkitError`) is printed as one
line; anything else is a bug and shows its traceback. ``--debug`` (or ``MWKIT_DEBUG=1``)
shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from mwkit.errors import MwkitError
from mwkit.settings import TRUE, Settings, default_workdir

COMMAND_MODULES = [
    "mwkit.directory.commands",
    "mwkit.watson.commands",
    "mwkit.sherlock.commands",
    "mwkit.wizard.commands",
    "mwkit.wizard.image_commands",
    "mwkit.stack_commands",
    "mwkit.kubernetes_commands",
    "mwkit.chaos_commands",
    "mwkit.swarm_commands",
    "mwkit.fault_commands",
]


def add_workdir_option(parser: argparse.ArgumentParser) -> None:
    """``--workdir``: where a stack and its instances keep their state (shared by commands)."""
    parser.add_argument("--workdir", default=None,
                        help=f"working folder (default: $MWKIT_WORKDIR, else "
                             f"{default_workdir()})")


def add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", default=None,
                        help="auto, process, docker or swarm (default: $MWKIT_RUNTIME, else auto: "
                             "Docker when an engine answers and the images are built)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mwkit",
        description="Service discovery and client-side routing, done for real.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (also: MWKIT_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def settings_of(args: argparse.Namespace) -> Settings:
    """The environment's settings, overridden by the options this command has."""
    options = {name: getattr(args, option, None) for name, option in
               (("workdir", "workdir"), ("runtime", "runtime"), ("database", "db"),
                ("policy", "policy"), ("directory_url", "directory"))}
    return Settings.from_env(**options, debug=args.debug or None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        args.settings = settings_of(args)
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's job is to say what went wrong
        if args.debug or _debug_from_env() or not isinstance(error, MwkitError):
            traceback.print_exc()
        print(f"mwkit {args.command}: error: {error}", file=sys.stderr)
        return 1


def _debug_from_env() -> bool:
    """``MWKIT_DEBUG`` read on its own: the settings themselves may be what failed."""
    return os.environ.get("MWKIT_DEBUG", "").lower() in TRUE


if __name__ == "__main__":
    sys.exit(main())
