"""``mwkit export kubernetes SERVICE REF``: a service's commit as Kubernetes manifests.

Argument parsing only, over :func:`mwkit.kubernetes.export`. The manifests are written
(to stdout or ``--output``) only once all of them are made: a wrong service or ref leaves
nothing behind but the one-line error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mwkit.cli import add_workdir_option
from mwkit.wizard.commands import _source


def _replicas(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return int(text)


def _kubernetes(args: argparse.Namespace) -> int:
    from mwkit.kubernetes import DEFAULT_IMAGE_PREFIX, export, to_yaml
    from mwkit.settings import KIT_ROOT
    from mwkit.wizard.source import ServiceSource, default_sources

    sources = default_sources(KIT_ROOT)
    if args.source:
        sources[args.service] = ServiceSource(Path(args.source).resolve(),
                                              subfolder=args.subfolder)
    documents = export(args.service, args.ref, workdir=args.settings.workdir, sources=sources,
                       tag=args.tag, replicas=args.replicas,
                       image_prefix=DEFAULT_IMAGE_PREFIX if args.image_prefix is None
                       else args.image_prefix)
    text = to_yaml(documents)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(documents)} documents to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a service's commit as another "
                                                  "platform's configuration")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    parser = targets.add_parser("kubernetes", help="a Deployment and a Service (for "
                                                   "Kubernetes 1.30 or later)")
    parser.add_argument("service", help="the service's name, e.g. popularity")
    parser.add_argument("ref", help="a Git ref (tag, branch, sha): the image is tagged by "
                                    "its commit")
    parser.add_argument("--replicas", type=_replicas, default=1,
                        help="the Deployment's number of pods (default 1)")
    parser.add_argument("--image-prefix", default=None, metavar="PREFIX",
                        help="registry and path before <service>:<commit>, e.g. "
                             "registry.example.org/team/ (default: mwkit/)")
    parser.add_argument("--tag", default=None,
                        help="the pods' mwkit/tag label (default: the ref)")
    parser.add_argument("--output", "-o", default=None, metavar="FILE",
                        help="write the YAML to FILE (default: stdout)")
    _source(parser)
    add_workdir_option(parser)
    parser.set_defaults(handler=_kubernetes)
