"""The ``mwkit`` command: argument parsing over the same Python API the notebooks use.

Each part of the kit contributes its own subcommands through a ``register(subparsers)``
function in its ``commands`` module, so this file stays a table of contents.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = [
    "mwkit.directory.commands",
    "mwkit.watson.commands",
    "mwkit.sherlock.commands",
    "mwkit.wizard.commands",
    "mwkit.wizard.image_commands",
    "mwkit.stack_commands",
]


def add_workdir_option(parser: argparse.ArgumentParser) -> None:
    """``--workdir``: where a stack and its instances keep their state (shared by commands)."""
    parser.add_argument("--workdir", default=os.environ.get("MWKIT_WORKDIR", ".mwkit"),
                        help="working folder (default: $MWKIT_WORKDIR or .mwkit)")


def add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", default=None,
                        help="process or docker (default: $MWKIT_RUNTIME or process)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mwkit",
        description="Service discovery and client-side routing, done for real.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's job is to say what went wrong
        if getattr(args, "debug", False):
            raise
        print(f"mwkit {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
