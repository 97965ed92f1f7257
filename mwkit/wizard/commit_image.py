"""One Docker image per commit of a service: what a machine without the checkout runs.

The Docker runtime mounts the checkout and mwkit's source into a container of
``mwkit/base``; a Swarm node (or a Kubernetes node) has neither. So a commit becomes an
image: its service folder at ``/usr/src/service`` and mwkit's own source at ``/opt/mwkit``
(the supervisor and Watson run from it) on top of ``mwkit/base:latest``, tagged
``mwkit/<service>:<commit[:12]>`` (:func:`image_reference`, the name the Kubernetes export
writes too). It is built through the engine's build API from a context made in memory (a
tar of a two-line Dockerfile and the two folders): nothing is pulled, so it works offline.

The image is built once and reused: it is labelled with a hash of what went into it
(the base image's id, the service folder and mwkit's source), and rebuilt only when that
hash changes, under the same tag (the commit did not change; the kit or the base did).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from mwkit.errors import ImageBuildError
from mwkit.settings import KIT_ROOT

BASE = "mwkit/base:latest"
SERVICE_DIR = "/usr/src/service"  # as the Docker runtime mounts it
KIT_DIR = "/opt/mwkit"
DEFAULT_PREFIX = "mwkit/"
LABEL_CONTENT = "mwkit.content"  # the hash of what went into the image
DOCKERFILE = f"""\
FROM {BASE}
COPY service {SERVICE_DIR}
COPY mwkit {KIT_DIR}/mwkit
ENV PYTHONPATH={KIT_DIR} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
WORKDIR {SERVICE_DIR}
"""
SKIP = {"__pycache__", ".git", ".pytest_cache"}


def image_reference(service: str, commit: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix><service>:<commit[:12]>``: the image of ``service`` at ``commit``."""
    return f"{prefix}{service}:{commit[:12]}"


def _files(folder: Path, under: str):
    """(path in the context, file) of every file of ``folder``, in a stable order."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP & set(path.relative_to(folder).parts):
            yield f"{under}/{path.relative_to(folder).as_posix()}", path


def build_commit_image(client, folder: Path, service: str, commit: str,
                       progress=lambda line: None) -> str:
    """The image of ``service`` at ``commit`` (its checked-out ``folder``), built unless an
    up-to-date one exists; its reference."""
    reference = image_reference(service, commit)
    try:
        base_id = client.images.get(BASE).id
    except Exception as error:  # noqa: BLE001 - ImageNotFound, or the engine is gone
        raise ImageBuildError(f"the base image {BASE} is missing ({error}): build it with "
                              "`mwkit image build`") from None
    files = [*_files(Path(folder), "service"), *_files(KIT_ROOT / "mwkit", "mwkit")]
    digest = hashlib.sha256(base_id.encode())
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes())
    content = digest.hexdigest()[:16]
    try:
        if client.images.get(reference).labels.get(LABEL_CONTENT) == content:
            progress(f"{reference}: up to date, reused")
            return reference
    except Exception:  # noqa: BLE001, S110 - ImageNotFound: build it
        pass
    progress(f"{reference}: building ({service} at {commit[:12]} and mwkit on {BASE})")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for name, path in files:
            tar.add(path, arcname=name)
    context.seek(0)
    labels = {"mwkit.image": f"commit-{service}", "mwkit.service": service,
              "mwkit.commit": commit, LABEL_CONTENT: content}
    last = []
    for message in client.api.build(fileobj=context, custom_context=True, tag=reference,
                                    labels=labels, pull=False, rm=True, forcerm=True,
                                    decode=True):
        last = (last + message.get("stream", "").splitlines())[-10:]
        if "error" in message:
            raise ImageBuildError(f"docker build of {reference} failed: "
                                  f"{message['error'].strip()}; its last lines:\n"
                                  + "\n".join(last))
    progress(f"{reference}: built")
    return reference

