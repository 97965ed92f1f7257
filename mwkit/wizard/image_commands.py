"""``mwkit image build`` and ``mwkit image list``: the offline images of the Docker runtime."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "image", help="build or list the Docker images mwkit runs (made offline)",
        description="Docker images for mwkit's Docker runtime and stack, built offline "
                    "with debootstrap from this machine's Debian mirror.",
    )
    commands = parser.add_subparsers(dest="image_command", required=True, metavar="ACTION")

    build_parser = commands.add_parser(
        "build", help="build the images whose recipe changed (about a minute each)"
    )
    build_parser.add_argument("--force", action="store_true",
                              help="rebuild even when an up-to-date image exists")
    build_parser.add_argument("--only", choices=["base", "mariadb"],
                              help="build only this image")
    build_parser.set_defaults(handler=build_command)

    list_parser = commands.add_parser("list", help="show each image, its recipe and size")
    list_parser.set_defaults(handler=list_command)


def build_command(args: argparse.Namespace) -> int:
    from mwkit.wizard.image import build

    build(args.only, force=args.force, progress=lambda line: print(line, flush=True))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from mwkit.wizard.image import list_images

    print(f"{'IMAGE':<16}{'RECIPE':<15}{'BUILT':<22}SIZE")
    for row in list_images():
        built = row["created"].replace("T", " ") if row["built"] else "no (mwkit image build)"
        size = f"{row['size_mb']} MB" if row["built"] else "-"
        print(f"{row['image']:<16}{row['recipe']:<15}{built:<22}{size}")
    return 0
