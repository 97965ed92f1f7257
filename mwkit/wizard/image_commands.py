"""``mwkit image build`` and ``mwkit image list``: the images of the Docker runtime and stack.

Each image is built from its Dockerfile (``mwkit/wizard/images/<name>/``) by one of two
routes: on a public base image pulled from a registry (the default, any Docker engine,
Docker Desktop included), or with ``--offline`` on a local base that debootstrap makes
from this machine's Debian apt mirror (Linux and root, no registry needed).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "image", help="build or list the Docker images mwkit runs",
        description="Docker images for mwkit's Docker runtime and stack, built from their "
                    "Dockerfiles on a public base image, or with --offline on a local base "
                    "made by debootstrap from this machine's Debian mirror.",
    )
    commands = parser.add_subparsers(dest="image_command", required=True, metavar="ACTION")

    build_parser = commands.add_parser(
        "build", help="build the images whose recipe changed (about a minute each)"
    )
    build_parser.add_argument(
        "--offline", action="store_true",
        help="reach no registry: make the base with debootstrap from this machine's Debian "
             "apt mirror (needs Linux, root and debootstrap)")
    build_parser.add_argument("--force", action="store_true",
                              help="rebuild even when an up-to-date image exists")
    build_parser.add_argument("--only", choices=["base", "mariadb"],
                              help="build only this image")
    build_parser.set_defaults(handler=build_command)

    list_parser = commands.add_parser("list", help="show each image, its recipe and size")
    list_parser.set_defaults(handler=list_command)


def build_command(args: argparse.Namespace) -> int:
    from mwkit.wizard.image import build

    build(args.only, offline=args.offline, force=args.force,
          progress=lambda line: print(line, flush=True))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from mwkit.wizard.image import list_images

    print(f"{'IMAGE':<16}{'RECIPE':<15}{'ROUTE':<9}{'BUILT':<22}SIZE")
    for row in list_images():
        built = row["created"].replace("T", " ") if row["built"] else "no (mwkit image build)"
        size = f"{row['size_mb']} MB" if row["built"] else "-"
        print(f"{row['image']:<16}{row['recipe']:<15}{row['route'] or '-':<9}{built:<22}{size}")
    return 0
