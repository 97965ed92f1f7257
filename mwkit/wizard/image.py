"""Building mwkit's Docker images from their Dockerfiles, online or offline.

Each image has a Dockerfile folder in :mod:`mwkit.wizard.images` that starts
``ARG BASE=<public image>`` / ``FROM ${BASE}`` and installs only what its base lacks.
It is built through the engine's build API (the Docker SDK), by one of two routes:

- **docker** (``mwkit image build``, the default): ``BASE`` is the public image
  (``python:3.11-slim``, ``debian:bookworm-slim``), pulled from a registry, and the
  Dockerfile installs the rest with pip or apt. It needs nothing but a Docker engine, so
  it works on Docker Desktop (macOS, Windows) and on any Linux. When no registry answers
  it stops at once with one line that points to the other route.
- **offline** (``mwkit image build --offline``): for a room or a CI machine that reaches
  no registry but does reach a Debian apt mirror (the one this machine's apt uses). A
  local base is made the way Debian makes its own base images: ``debootstrap
  --variant=minbase bookworm`` with the Debian packages that stand in for what the
  Dockerfile would install, streamed by ``tar`` into ``docker import`` (about a minute),
  tagged ``mwkit/offline-base:<hash>``. The *same* Dockerfile then builds on it
  (``BASE=mwkit/offline-base:<hash>``) and, finding everything there, installs nothing.
  This route needs Linux, root and debootstrap.

Either way an image is labelled ``mwkit.image`` and ``mwkit.recipe`` (a hash of the
Dockerfile folder's files and of the base it was built on) and tagged
``mwkit/<name>:<hash>`` and ``mwkit/<name>:latest``, the tag the runtime uses.
``build()`` reuses an up-to-date image of either route at once, so calling it from every
notebook costs nothing after the first time.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.utils

from mwkit.errors import ImageBuildError, InvalidInput
from mwkit.wizard.engine import docker_client
from mwkit.wizard.images import IMAGES_DIR

BUILDER_VERSION = "2"
SUITE = "bookworm"
LABEL_IMAGE = "mwkit.image"
LABEL_RECIPE = "mwkit.recipe"
OFFLINE_BASE = "offline-base"
DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 1800.0  # one silent RUN step (pip, apt-get) may take minutes
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OFFLINE_NEEDS = "Linux, root, debootstrap and a Debian apt mirror"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class OfflineBase:
    """A local stand-in for a public base image: Debian minbase plus ``packages``."""

    packages: tuple[str, ...]

    @property
    def repository(self) -> str:
        return f"mwkit/{OFFLINE_BASE}"

    @property
    def recipe_hash(self) -> str:
        return _hash([BUILDER_VERSION, SUITE, self.packages, PATH])

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.recipe_hash}"

    def import_changes(self) -> list[str]:
        """The Dockerfile instructions ``docker import --change`` applies to the image."""
        return [f"ENV PATH={PATH}", "ENV LANG=C.UTF-8",
                f"LABEL {LABEL_IMAGE}={OFFLINE_BASE}", f"LABEL {LABEL_RECIPE}={self.recipe_hash}"]


@dataclass(frozen=True)
class Recipe:
    """One image: its Dockerfile folder, the public image it builds on by default, and the
    Debian packages of its offline base (what the Dockerfile would otherwise install)."""

    name: str
    base: str
    packages: tuple[str, ...]
    folder: Path | None = None  # IMAGES_DIR / name unless given

    @property
    def repository(self) -> str:
        return f"mwkit/{self.name}"

    @property
    def context(self) -> Path:
        return self.folder or IMAGES_DIR / self.name

    @property
    def offline_base(self) -> OfflineBase:
        return OfflineBase(self.packages)

    def base_image(self, offline: bool) -> str:
        """What the Dockerfile's ``BASE`` is on this route."""
        return self.offline_base.reference if offline else self.base

    def build_args(self, offline: bool) -> dict[str, str]:
        return {"BASE": self.base_image(offline)}

    def recipe_hash(self, offline: bool) -> str:
        """12 hex digits that change whenever the Dockerfile folder or the base changes."""
        return _hash([BUILDER_VERSION, self.name, self.base_image(offline),
                      context_digest(self.context)])

    def reference(self, offline: bool) -> str:
        return f"{self.repository}:{self.recipe_hash(offline)}"

    def labels(self, offline: bool) -> dict[str, str]:
        return {LABEL_IMAGE: self.name, LABEL_RECIPE: self.recipe_hash(offline)}


RECIPES = {
    recipe.name: recipe
    for recipe in (
        # popularity, the Lobsters stand-in, the Directory and Watson: mwkit's own source
        # is mounted read-only at run time, so only the libraries are needed; and etcd,
        # for a stack whose Directory is an etcd cluster (--registry etcd).
        Recipe(name="base", base="python:3.11-slim", packages=(
            "python3", "python3-flask", "python3-requests", "python3-yaml",
            "python3-pymysql", "python3-aiohttp", "python3-psutil", "bash",
            "ca-certificates", "etcd-server",
        )),
        Recipe(name="mariadb", base="debian:bookworm-slim", packages=("mariadb-server",)),
    )
}


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def context_digest(folder: Path) -> list[list[str]]:
    """[relative path, SHA-256] of each file of a Dockerfile folder, in path order."""
    if not (folder / "Dockerfile").is_file():
        raise ImageBuildError(f"no Dockerfile in {folder}: is mwkit installed from its "
                              "source tree (pip install -e)?")
    return [[path.relative_to(folder).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest()]
            for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts]


def build(
    only: str | None = None,
    *,
    offline: bool = False,
    force: bool = False,
    progress: Progress = print,
    client: docker.DockerClient | None = None,
) -> list[str]:
    """Build (or reuse) every image, or only the one named ``only``; return their references.

    ``offline`` takes the debootstrap route (see the module's docstring) for the images
    that are not up to date.
    """
    names = [only] if only else list(RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise InvalidInput(f"unknown image {unknown[0]!r}: choose one of {', '.join(RECIPES)}")
    client = client or docker_client()
    return [build_image(RECIPES[name], offline=offline, force=force, progress=progress,
                        client=client)
            for name in names]


def build_image(
    recipe: Recipe, *, offline: bool = False, force: bool = False, progress: Progress = print,
    client: docker.DockerClient,
) -> str:
    """Build one image unless an up-to-date one exists; tag it ``:latest``; return its reference."""
    started = time.monotonic()

    def step(message: str) -> None:
        progress(f"[{time.monotonic() - started:5.1f} s] {recipe.name}: {message}")

    found = None if force else up_to_date(client, recipe, offline)
    if found is not None:
        reference, image = found
        image.tag(recipe.repository, "latest")
        step(f"up to date: {reference} ({size_mb(image)} MB), reused")
        return reference

    if offline:
        build_offline_base(recipe.offline_base, force=force, step=step, client=client)
    else:
        pull_base(recipe, step, client)
    reference = recipe.reference(offline)
    image = docker_build(recipe, offline, step, client, nocache=force)
    image.tag(recipe.repository, "latest")
    # what this build replaced, children first: then their offline bases can go too
    _remove_outdated(client, recipe.name, {recipe.recipe_hash(route) for route in (False, True)})
    if offline:
        current = {r.offline_base.recipe_hash for r in (*RECIPES.values(), recipe)}
        _remove_outdated(client, OFFLINE_BASE, current)
    step(f"built {reference} ({size_mb(image)} MB)")
    return reference


def up_to_date(client: docker.DockerClient, recipe: Recipe, offline: bool):
    """(reference, image) of an up-to-date image, of the route asked for first; or None."""
    for route in (offline, not offline):
        reference = recipe.reference(route)
        if (image := find_image(client, reference)) is not None:
            return reference, image
    return None


def list_images(client: docker.DockerClient | None = None) -> list[dict]:
    """One row per recipe: its up-to-date image if any, the route that made it, its size."""
    client = client or docker_client()
    rows = []
    for recipe in RECIPES.values():
        reference, image = up_to_date(client, recipe, offline=False) or (
            recipe.reference(False), None)
        rows.append({
            "image": recipe.repository,
            "recipe": reference.rpartition(":")[2],
            "route": (("offline" if reference == recipe.reference(True) else "docker")
                      if image else None),
            "built": image is not None,
            "size_mb": size_mb(image) if image else None,
            "created": image.attrs["Created"][:19] if image else None,
        })
    return rows


def find_image(client: docker.DockerClient, reference: str):
    """The image called ``reference``, or None."""
    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None


def size_mb(image) -> int:
    return round(image.attrs["Size"] / 1e6)


# The docker route --------------------------------------------------------------------------


def pull_base(recipe: Recipe, step: Progress, client: docker.DockerClient) -> None:
    """Pull the public base unless the engine has it; say at once when no registry answers."""
    if find_image(client, recipe.base) is not None:
        step(f"{recipe.base} is here already")
        return
    step(f"pulling {recipe.base}")
    repository, tag = docker.utils.parse_repository_tag(recipe.base)
    try:
        for message in client.api.pull(repository, tag=tag or "latest", stream=True,
                                       decode=True):
            if "error" in message:
                raise _pull_failed(recipe, message["error"])
    except docker.errors.APIError as error:
        raise _pull_failed(recipe, error.explanation or str(error)) from error
    step(f"pulled {recipe.base}")


def _pull_failed(recipe: Recipe, reason: object) -> ImageBuildError:
    reason = " ".join(str(reason).split())
    return ImageBuildError(
        f"cannot pull {recipe.base}, the image {recipe.repository} builds on (no registry "
        f"answers: {reason}); {offline_advice()}"
    )


def offline_advice() -> str:
    """One sentence on ``--offline``: what it needs, and whether this machine has it."""
    missing = offline_missing(check_mirror=True)
    if not missing:
        return ("build offline instead: `mwkit image build --offline` (it needs "
                f"{OFFLINE_NEEDS}; this machine has them)")
    return (f"build offline instead with `mwkit image build --offline` on a machine with "
            f"{OFFLINE_NEEDS} (missing here: {', '.join(missing)})")


def offline_missing(check_mirror: bool = False) -> list[str]:
    """What this machine lacks for the offline route; [] when it can take it."""
    missing = []
    if not sys.platform.startswith("linux"):
        missing.append("Linux")
    if getattr(os, "geteuid", lambda: -1)() != 0:
        missing.append("root")
    if shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    if check_mirror:
        try:
            apt_mirror()
        except (ImageBuildError, OSError):
            missing.append("a Debian apt mirror")
    return missing


def docker_build(
    recipe: Recipe, offline: bool, step: Progress, client: docker.DockerClient,
    nocache: bool = False,
):
    """``docker build`` of the recipe's folder with its ``BASE``; one progress line a step."""
    reference = recipe.reference(offline)
    step(f"docker build {recipe.context.name}/Dockerfile with BASE={recipe.base_image(offline)}")
    tail: collections.deque[str] = collections.deque(maxlen=30)
    image_id = None
    try:
        for message in client.api.build(
            path=str(recipe.context), tag=reference, buildargs=recipe.build_args(offline),
            labels=recipe.labels(offline), rm=True, forcerm=True, pull=False, decode=True,
            nocache=nocache,
            timeout=BUILD_TIMEOUT,
        ):
            for line in message.get("stream", "").splitlines():
                if line.strip():
                    tail.append(line.rstrip())
                if line.startswith("Step "):
                    line = " ".join(line.split())
                    step(line if len(line) <= 100 else f"{line[:97]}...")
            if "error" in message:
                last = "\n".join(tail)
                raise ImageBuildError(f"docker build of {reference} failed: "
                                      f"{message['error'].strip()}; its last lines:\n{last}")
            image_id = message.get("aux", {}).get("ID", image_id)
    except docker.errors.APIError as error:
        raise ImageBuildError(f"docker build of {reference} failed: "
                              f"{error.explanation or error}") from error
    if not image_id:
        raise ImageBuildError(f"docker build of {reference} gave no image; its last lines:\n"
                              + "\n".join(tail))
    return client.images.get(image_id)


# The offline route --------------------------------------------------------------------------


def build_offline_base(
    base: OfflineBase, *, force: bool, step: Progress, client: docker.DockerClient
):
    """The offline base image, reused if it exists, else made with debootstrap."""
    existing = find_image(client, base.reference)
    if existing is not None and not force:
        step(f"offline base {base.reference} ({size_mb(existing)} MB), reused")
        return existing
    missing = offline_missing()
    if missing:
        raise ImageBuildError(
            f"`mwkit image build --offline` makes its base with debootstrap, which needs "
            f"{OFFLINE_NEEDS}: missing here: {', '.join(missing)} (apt-get install "
            "debootstrap, run as root; or leave out --offline where a registry answers)"
        )
    mirror = apt_mirror()
    step(f"debootstrap {SUITE} from {mirror} with {', '.join(base.packages)}")
    with temporary_rootfs() as rootfs:
        debootstrap(base, rootfs, mirror, step)
        slim(rootfs)
        step(f"importing the root file system into Docker as {base.reference}")
        return import_rootfs(client, rootfs, base)


def apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for ``SUITE``, read from its sources.

    deb822 ``*.sources`` files (``URIs:``, ``Suites:``) come first, then one-line
    ``deb URI SUITE ...`` entries. ``MWKIT_DEBIAN_MIRROR`` overrides both.
    """
    if os.environ.get("MWKIT_DEBIAN_MIRROR"):
        return os.environ["MWKIT_DEBIAN_MIRROR"]
    entries = list(_deb822_entries(sorted((apt_dir / "sources.list.d").glob("*.sources"))))
    entries += list(_one_line_entries([apt_dir / "sources.list",
                                       *sorted((apt_dir / "sources.list.d").glob("*.list"))]))
    for uri, suites in entries:
        if SUITE in suites:
            return uri
    raise ImageBuildError(
        f"no apt source for Debian {SUITE} in {apt_dir}/sources.list or "
        f"{apt_dir}/sources.list.d/: set MWKIT_DEBIAN_MIRROR to a Debian mirror URL"
    )


def _deb822_entries(paths: Iterable[Path]) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of each ``Types: deb`` stanza of deb822 source files."""
    for path in paths:
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith(("#", " ", "\t")):
                    fields[key.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
                for uri in fields.get("uris", []):
                    yield uri, fields.get("suites", [])


def _one_line_entries(paths: Iterable[Path]) -> Iterator[tuple[str, list[str]]]:
    """(URI, [suite]) of each ``deb [options] URI SUITE COMPONENTS`` line."""
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0])
            words = line.split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]


@contextlib.contextmanager
def temporary_rootfs() -> Iterator[Path]:
    """A temporary folder for a root file system, removed in all cases.

    debootstrap mounts /proc and /sys inside it while it works; if it was killed half
    way those mounts are still there, so they are unmounted before anything is removed.
    """
    rootfs = Path(tempfile.mkdtemp(prefix="mwkit-rootfs-"))
    try:
        yield rootfs
    finally:
        for mount_point in reversed(_mounts_under(rootfs)):
            subprocess.run(["umount", "-l", mount_point], check=False)
        shutil.rmtree(rootfs, ignore_errors=True)


def _mounts_under(folder: Path) -> list[str]:
    prefix = f"{folder}/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return sorted(point for point in points if point.startswith(prefix))


class DebootstrapProgress:
    """Turns debootstrap's one line per package into a line every 50 packages of a phase.

    Its phase lines ("Unpacking the base system...") are passed on as they come.
    """

    # "I: Retrieving libc6 2.36-9", "I: Unpacking adduser..." (not "I: Unpacking the base
    # system...", nor the "I: Validating" line that follows each download)
    PACKAGE_LINE = re.compile(
        r"I: (Retrieving|Extracting|Unpacking|Configuring) [a-z0-9][a-z0-9+.:-]*( \d\S*|\.\.\.)$"
    )
    # "I: Resolving dependencies of base packages...", "I: Unpacking the base system..."
    PHASE_LINE = re.compile(r"I: ((?:Resolving|Installing|Unpacking|Configuring) .*\.\.\.)$")
    DONE = {"Retrieving": "retrieved", "Extracting": "extracted", "Unpacking": "unpacked",
            "Configuring": "configured"}
    EVERY = 50

    def __init__(self, step: Progress):
        self.step = step
        self.verb: str | None = None
        self.count = 0

    def feed(self, line: str) -> None:
        line = line.rstrip()
        match = self.PACKAGE_LINE.match(line)
        if not match:
            if phase := self.PHASE_LINE.match(line):
                self.flush()
                self.verb, self.count = None, 0
                self.step(f"debootstrap: {phase.group(1)}")
            return
        if match.group(1) != self.verb:
            self.flush()
            self.verb, self.count = match.group(1), 0
        self.count += 1
        if self.count % self.EVERY == 0:
            self.step(f"debootstrap: {self.count} packages {self.DONE[self.verb]}")

    def flush(self) -> None:
        if self.verb and self.count % self.EVERY:
            self.step(f"debootstrap: {self.count} packages {self.DONE[self.verb]}")


def debootstrap(base: OfflineBase, rootfs: Path, mirror: str, step: Progress) -> None:
    """Run debootstrap, reporting progress, and raise with its last lines if it fails."""
    command = [
        "debootstrap", "--variant=minbase", "--components=main",
        f"--include={','.join(base.packages)}", SUITE, str(rootfs), mirror,
    ]
    tail: collections.deque[str] = collections.deque(maxlen=30)
    counter = DebootstrapProgress(step)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace") as proc:
        watchdog = threading.Timer(DEBOOTSTRAP_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                tail.append(line.rstrip())
                counter.feed(line)
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:  # interrupted (Ctrl-C in a notebook): stop it too
                proc.kill()
    counter.flush()
    if proc.returncode != 0:
        last = "\n".join(tail)
        raise ImageBuildError(
            f"debootstrap of {base.reference} failed (exit code {proc.returncode}, killed "
            f"after {DEBOOTSTRAP_TIMEOUT:.0f} s if it took that long) with the mirror "
            f"{mirror}; its last lines:\n{last}"
        )


def slim(rootfs: Path) -> None:
    """Remove what a container never needs: downloaded .debs, apt lists, documentation."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.is_file() or path.is_symlink():
                path.unlink()


def import_rootfs(client: docker.DockerClient, rootfs: Path, base: OfflineBase):
    """Stream ``tar -C rootfs -c .`` into the engine as image ``base.reference``."""
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        answer = client.api.import_image(
            src=tar.stdout, repository=base.repository, tag=base.recipe_hash,
            changes=base.import_changes(), stream_src=True,
        )
    finally:
        tar.stdout.close()
        tar_error = tar.stderr.read().decode(errors="replace")
        tar.wait()
    image_id = _imported_id(answer)
    if tar.returncode != 0:
        if image_id:
            _remove_quietly(client, image_id)
        raise ImageBuildError(f"tar of {rootfs} failed: {tar_error.strip()}")
    if not image_id:
        raise ImageBuildError(f"docker import of {base.reference} failed: {answer.strip()}")
    return client.images.get(image_id)


def _imported_id(answer: str) -> str | None:
    """The image id from the engine's JSON-lines answer, or None if it reported an error."""
    image_id = None
    for line in answer.splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if "error" in message:
                return None
            image_id = message.get("status", image_id)
    return image_id


def _remove_outdated(client: docker.DockerClient, name: str, current: set[str]) -> None:
    """Remove the images labelled ``name`` of other recipes, and the untagged ones that a
    forced rebuild replaced (but none that a container or another image still uses)."""
    for image in client.images.list(filters={"label": f"{LABEL_IMAGE}={name}"}):
        if image.labels.get(LABEL_RECIPE) not in current or not image.tags:
            _remove_quietly(client, image.id)


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(image_id, force=False, noprune=False)
