"""Building mwkit's Docker images offline, from the Debian mirror this machine already uses.

No image registry may be reachable (a workshop room, a locked-down laptop), but apt's
mirror is. So an image is made the way Debian makes its own base images:

1. ``debootstrap --variant=minbase bookworm ROOTFS MIRROR`` with the packages of a
   *recipe*, into a temporary folder (about a minute);
2. ``tar -C ROOTFS -c .`` streamed into ``docker import`` (the engine's
   ``/images/create``), with a few Dockerfile instructions (``ENV``, ``CMD``, ``LABEL``).

Each image is tagged with a hash of its recipe (packages, files, settings, and this
builder's version) and ``:latest``. ``build()`` reuses an image whose hash matches at
once, so calling it from every notebook costs nothing after the first time.
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
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from mwkit.errors import ImageBuildError
from mwkit.wizard.database import CONTAINER_INIT_SQL_ENV
from mwkit.wizard.engine import docker_client

BUILDER_VERSION = "1"
SUITE = "bookworm"
LABEL_IMAGE = "mwkit.image"
LABEL_RECIPE = "mwkit.recipe"
DEBOOTSTRAP_TIMEOUT = 900.0
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]

MARIADB_START = f"""#!/bin/sh
# Start MariaDB in an mwkit container: run the SQL that mwkit passes in
# ${CONTAINER_INIT_SQL_ENV} (create the database and its user) at every start, then serve
# on port 3306 of every interface (the container's network decides who can reach it).
set -eu
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db > /dev/null
fi
printf '%s\\n' "${{{CONTAINER_INIT_SQL_ENV}:-}}" > /run/mysqld/init.sql
chown mysql:mysql /run/mysqld/init.sql
chmod 600 /run/mysqld/init.sql
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=0.0.0.0 --port=3306 \\
    --skip-name-resolve --init-file=/run/mysqld/init.sql
"""


@dataclass(frozen=True)
class Recipe:
    """What goes into one image: Debian packages, a few files, and its Docker settings."""

    name: str
    packages: tuple[str, ...]
    changes: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return f"mwkit/{self.name}"

    @property
    def recipe_hash(self) -> str:
        """12 hex digits that change whenever anything that goes into the image changes."""
        text = json.dumps(
            [BUILDER_VERSION, SUITE, self.packages, self.changes, self.files], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.recipe_hash}"

    def import_changes(self) -> list[str]:
        """The Dockerfile instructions ``docker import --change`` applies to the image."""
        return [
            f"ENV PATH={PATH}",
            "ENV LANG=C.UTF-8",
            f"LABEL {LABEL_IMAGE}={self.name}",
            f"LABEL {LABEL_RECIPE}={self.recipe_hash}",
            *self.changes,
        ]


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            # popularity, the Lobsters stand-in, the Directory and Watson: mwkit's own
            # source is mounted read-only at run time, so only the libraries are needed.
            name="base",
            packages=(
                "python3", "python3-flask", "python3-requests", "python3-yaml",
                "python3-pymysql", "python3-aiohttp", "bash", "ca-certificates",
            ),
            changes=("ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1",
                     'CMD ["python3"]'),
        ),
        Recipe(
            name="mariadb",
            packages=("mariadb-server",),
            changes=("EXPOSE 3306", 'CMD ["/usr/local/bin/mwkit-mariadb"]'),
            files={"usr/local/bin/mwkit-mariadb": MARIADB_START},
        ),
    )
}


def build(
    only: str | None = None,
    *,
    force: bool = False,
    progress: Progress = print,
    client: docker.DockerClient | None = None,
) -> list[str]:
    """Build (or reuse) every image, or only the one named ``only``; return their references."""
    names = [only] if only else list(RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise ValueError(f"unknown image {unknown[0]!r}: choose one of {', '.join(RECIPES)}")
    client = client or docker_client()
    return [build_image(RECIPES[name], force=force, progress=progress, client=client)
            for name in names]


def build_image(
    recipe: Recipe, *, force: bool, progress: Progress, client: docker.DockerClient
) -> str:
    """Build one image unless an image of the same recipe exists; return its reference."""
    started = time.monotonic()

    def step(message: str) -> None:
        progress(f"[{time.monotonic() - started:5.1f} s] {recipe.name}: {message}")

    existing = find_image(client, recipe.reference)
    if existing is not None and not force:
        existing.tag(recipe.repository, "latest")
        step(f"up to date: {recipe.reference} ({size_mb(existing)} MB), reused")
        return recipe.reference

    _check_can_build()
    mirror = apt_mirror()
    step(f"debootstrap {SUITE} from {mirror} with {', '.join(recipe.packages)}")
    with temporary_rootfs() as rootfs:
        debootstrap(recipe, rootfs, mirror, step)
        for relative, text in recipe.files.items():
            target = rootfs / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(0o755)
        slim(rootfs)
        step("importing the root file system into Docker")
        image = import_rootfs(client, rootfs, recipe)
    image.tag(recipe.repository, "latest")
    if existing is not None and existing.id != image.id:
        _remove_quietly(client, existing.id)
    _remove_outdated(client, recipe)
    step(f"built {recipe.reference} ({size_mb(image)} MB)")
    return recipe.reference


def list_images(client: docker.DockerClient | None = None) -> list[dict]:
    """One row per recipe: its reference, whether it is built, and its size."""
    client = client or docker_client()
    rows = []
    for recipe in RECIPES.values():
        image = find_image(client, recipe.reference)
        rows.append({
            "image": recipe.repository,
            "recipe": recipe.recipe_hash,
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


def _check_can_build() -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is not installed: apt-get install debootstrap (or run "
            ".ci/install-system.sh)"
        )
    if os.geteuid() != 0:
        raise ImageBuildError("building an image with debootstrap needs root: run it as root")


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


def debootstrap(recipe: Recipe, rootfs: Path, mirror: str, step: Progress) -> None:
    """Run debootstrap, reporting progress, and raise with its last lines if it fails."""
    command = [
        "debootstrap", "--variant=minbase", "--components=main",
        f"--include={','.join(recipe.packages)}", SUITE, str(rootfs), mirror,
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
            f"debootstrap of {recipe.name} failed (exit code {proc.returncode}, killed after "
            f"{DEBOOTSTRAP_TIMEOUT:.0f} s if it took that long) with the mirror {mirror}; "
            f"its last lines:\n{last}"
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


def import_rootfs(client: docker.DockerClient, rootfs: Path, recipe: Recipe):
    """Stream ``tar -C rootfs -c .`` into the engine as image ``recipe.reference``."""
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        answer = client.api.import_image(
            src=tar.stdout, repository=recipe.repository, tag=recipe.recipe_hash,
            changes=recipe.import_changes(), stream_src=True,
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
        raise ImageBuildError(f"docker import of {recipe.reference} failed: {answer.strip()}")
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


def _remove_outdated(client: docker.DockerClient, recipe: Recipe) -> None:
    """Remove images of older recipes of this image (not those a container still uses)."""
    for image in client.images.list(filters={"label": f"{LABEL_IMAGE}={recipe.name}"}):
        if image.labels.get(LABEL_RECIPE) != recipe.recipe_hash:
            _remove_quietly(client, image.id)


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(image_id, force=False, noprune=False)
