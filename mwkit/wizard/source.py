"""From a Git ref of a service to a folder that an instance can run.

A commit is exported once into ``<workdir>/checkouts/<service>/<full sha>/`` and shared by
every instance of it (read-only). The export never touches the repository's working tree
or index (``git archive`` of the commit's tree), and it is atomic: it is extracted into a
temporary folder beside the target and renamed into place, so a failure leaves nothing and
two exports of the same commit at once cannot mix (the loser of the rename uses the
winner's folder). The original Microwizard's per-commit checkout had a path bug; here the
folder name is the full sha and nothing else (followed by the subfolder when the service
is not at the repository's top: the subfolder is part of what was exported).

Two refs are not commits: ``UNCOMMITTED`` runs the service's live folder as it is now (no
commit needed: a new instance runs the files as they are on disk) and ``UNCOMMITTED_COPY``
runs a snapshot of it, one per tag. The live folder is the repository's working tree unless
the source names another: the kit's popularity takes its commits from the generated demo
repository but runs ``UNCOMMITTED`` from ``services/popularity/``, the folder a learner edits.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mwkit.errors import SourceError
from mwkit.names import InvalidName, check_identifier, check_service_name

UNCOMMITTED = "UNCOMMITTED"
UNCOMMITTED_COPY = "UNCOMMITTED_COPY"
SPEC_FILE = "microwizard/microwizard.yml"
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", ".venv")

DEMO_DELAY_LINE = re.compile(r"^QUERY_DELAY_SECONDS = 0\.0$", re.MULTILINE)
DEMO_SLOW_LINE = "QUERY_DELAY_SECONDS = 1.5"
DEMO_COMMITS = (("v1", "v1", "@1433160000 +0000"),
                ("v2", "v2: slow query (the bad canary)", "@1433246400 +0000"))
# Git run for the demo repository ignores the machine's and user's configuration (CI has no
# identity, some laptops sign every commit): with fixed identity and dates the shas are the
# same on every machine.
DEMO_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "mwkit",
    "GIT_AUTHOR_EMAIL": "mwkit@example.invalid",
    "GIT_COMMITTER_NAME": "mwkit",
    "GIT_COMMITTER_EMAIL": "mwkit@example.invalid",
}


@dataclass(frozen=True)
class ServiceSource:
    """Where a service's code lives.

    ``repo`` is where commits come from: a local path, a URL (cloned bare into
    ``<workdir>/repos/``), or a function of the workdir that returns a path (the demo
    repository, made on first use). ``subfolder`` is the folder inside it that holds
    ``microwizard/``.

    ``live_folder`` is what ``UNCOMMITTED`` and ``UNCOMMITTED_COPY`` run: the service folder
    itself (the one holding ``microwizard/``; ``subfolder`` is not added to it). Left out,
    it is ``<repo>/<subfolder>``, the working tree the commits are made from.
    """

    repo: Path | str | Callable[[Path], Path]
    subfolder: str = ""
    live_folder: Path | str | None = None


@dataclass(frozen=True)
class Checkout:
    """A folder ready to run: the service folder holding ``microwizard/``."""

    service: str
    ref: str
    commit: str
    folder: Path
    read_only: bool
    exported: bool = field(default=False, compare=False)  # made by this call (a launch
    #: that fails removes it again, unless another instance runs it)


def _checked(check: Callable[[object, str], str], value: str, what: str) -> str:
    try:
        return check(value, what)
    except InvalidName as error:
        raise SourceError(str(error)) from None


def _subfolder(source: ServiceSource) -> str:
    """The subfolder as a clean relative POSIX path ("" for the repository's top)."""
    path = PurePosixPath(source.subfolder)
    if path.is_absolute() or ".." in path.parts:
        raise SourceError(f"subfolder {source.subfolder!r} must be a path inside the repository "
                          "(relative, no '..')")
    return "" if str(path) == "." else str(path)


def _is_url(repo: str) -> bool:
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


@contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed to it on success, removed on failure.

    If ``target`` appeared meanwhile (another export of the same thing won the race), the
    temporary folder is dropped and the winner's is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield temporary
        temporary.chmod(0o755)  # mkdtemp makes it private; instances may run as another user
        try:
            temporary.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _local_path(source: ServiceSource, workdir: Path) -> Path:
    repo = source.repo
    if callable(repo):
        return Path(repo(workdir))
    if isinstance(repo, str) and _is_url(repo):
        raise SourceError(f"{UNCOMMITTED} and {UNCOMMITTED_COPY} need a local working tree, "
                          f"not the URL {repo}")
    return Path(repo)


def _open_repo(source: ServiceSource, workdir: Path, say: Callable[[str], None]):
    """The GitPython ``Repo``; a URL is cloned bare into ``<workdir>/repos/`` (or fetched)."""
    import git

    if isinstance(source.repo, str) and _is_url(source.repo):
        url = source.repo
        name = re.sub(r"[^A-Za-z0-9_-]", "_", url.rstrip("/").rsplit("/", 1)[-1]
                      .removesuffix(".git"))
        digest = hashlib.sha1(url.encode()).hexdigest()[:8]  # two "popularity" URLs differ
        clone = workdir / "repos" / f"{name}-{digest}.git"
        if clone.is_dir():
            repo = git.Repo(clone)
            say(f"fetching {url} into {clone}")
            try:
                repo.git.fetch(url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            except git.GitCommandError as error:
                say(f"could not fetch {url} ({error.stderr.strip()}): using {clone} as it is")
            return repo
        say(f"cloning {url} into {clone}")
        try:
            with _atomic_folder(clone) as temporary:
                git.Repo.clone_from(url, temporary, bare=True)
        except git.GitCommandError as error:
            raise SourceError(f"cannot clone {url}: {error.stderr.strip()}") from None
        return git.Repo(clone)
    path = _local_path(source, workdir)
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{path} is not a Git repository (give the folder that holds .git, "
                          "or `git init` it and commit the service)") from None


def _resolve(repo, ref: str):
    """The commit ``ref`` names (full or short sha, tag, branch)."""
    import git
    import gitdb.exc

    try:
        return repo.commit(ref)
    except (gitdb.exc.BadName, gitdb.exc.BadObject, ValueError, git.GitCommandError):
        tags = ", ".join(tag.name for tag in list(repo.tags)[:10]) or "none"
        branches = ", ".join(head.name for head in list(repo.heads)[:10]) or "none"
        where = repo.working_tree_dir or repo.git_dir
        raise SourceError(f"unknown ref {ref!r} in the repository {where} "
                          f"(tags: {tags}; branches: {branches})") from None


def _extract(repo, treeish: str, destination: Path) -> None:
    """Write the files of ``treeish`` into ``destination`` (modes kept: mw.sh stays executable)."""
    with tempfile.TemporaryFile() as archive:
        repo.archive(archive, treeish=treeish, format="tar")
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(destination, filter="data")


def _export(source: ServiceSource, ref: str, service: str, workdir: Path,
            say: Callable[[str], None]) -> Checkout:
    repo = _open_repo(source, workdir, say)
    commit = _resolve(repo, ref)
    subfolder = _subfolder(source)
    short = commit.hexsha[:7]
    target = workdir / "checkouts" / service / _export_name(commit.hexsha, subfolder)
    label = f"{service} {short} ({ref})"
    try:  # asked every time: a reused export must not hide a wrong subfolder
        commit.tree / str(PurePosixPath(subfolder, SPEC_FILE))
    except KeyError:
        raise SourceError(f"commit {short} ({ref}) has no "
                          f"{PurePosixPath(subfolder, SPEC_FILE)}: is the subfolder "
                          f"{subfolder or '(top)'!r} the one that holds microwizard/?"
                          ) from None
    exported = not target.is_dir()
    if not exported:
        if not (target / SPEC_FILE).is_file():
            raise SourceError(f"the checkout {target} is damaged (no {SPEC_FILE}): "
                              "delete it and try again")
        say(f"reusing checkout {target} of {label}")
    else:
        say(f"checking out {label} into {target}")
        treeish = f"{commit.hexsha}:{subfolder}" if subfolder else commit.hexsha
        with _atomic_folder(target) as temporary:
            _extract(repo, treeish, temporary)
    return Checkout(service=service, ref=ref, commit=commit.hexsha, folder=target,
                    read_only=True, exported=exported)


def _export_name(sha: str, subfolder: str) -> str:
    """The export's folder name: the full sha, and for a service in a subfolder also that
    subfolder (readable, plus a short digest of it: two that read alike stay apart). One
    commit run from two subfolders gives two folders, never one that fits only the first."""
    if not subfolder:
        return sha
    readable = re.sub(r"[^A-Za-z0-9_.-]", "~", subfolder)
    return f"{sha}-{readable}-{hashlib.sha1(subfolder.encode()).hexdigest()[:6]}"


def _live_folder(source: ServiceSource, workdir: Path) -> Path:
    if source.live_folder is not None:
        folder = Path(source.live_folder)
        if not (folder / SPEC_FILE).is_file():
            raise SourceError(f"{folder} has no {SPEC_FILE}: the live folder must be the "
                              "service folder itself, the one that holds microwizard/")
        return folder
    folder = _local_path(source, workdir) / _subfolder(source)
    if not (folder / SPEC_FILE).is_file():
        raise SourceError(f"{folder} has no {SPEC_FILE}: is the subfolder "
                          f"{source.subfolder or '(top)'!r} the one that holds microwizard/?")
    return folder


def checkout(source: ServiceSource, ref: str, *, service: str, tag: str, workdir: Path,
             progress: Callable[[str], None] | None = None) -> Checkout:
    """The folder to run ``ref`` of ``service`` from (``progress`` gets one line per step)."""
    _checked(check_service_name, service, "service name")
    _checked(check_identifier, tag, "tag")
    _checked(check_identifier, ref, "ref")
    say = progress or (lambda line: None)
    workdir = Path(workdir)
    if ref == UNCOMMITTED:
        folder = _live_folder(source, workdir)
        say(f"using the live folder {folder} for {service} (no commit: the files as they are "
            "now)")
        return Checkout(service, ref, UNCOMMITTED, folder, read_only=False)
    if ref == UNCOMMITTED_COPY:
        folder = _live_folder(source, workdir)
        target = workdir / "checkouts" / service / f"{UNCOMMITTED_COPY}-{tag}"
        exported = not target.is_dir()
        if not exported:
            say(f"reusing the snapshot {target} of tag {tag} (use a new tag for a new snapshot)")
        else:
            say(f"copying the working tree {folder} into {target}")
            with _atomic_folder(target) as temporary:
                shutil.copytree(folder, temporary, symlinks=True, ignore=COPY_IGNORE,
                                dirs_exist_ok=True)
        return Checkout(service, ref, UNCOMMITTED_COPY, target, read_only=True,
                        exported=exported)
    return _export(source, ref, service, workdir, say)


def _git(repo, *args: str, date: str | None = None) -> None:
    env = dict(DEMO_GIT_ENV)
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    repo.git.execute(["git", *args], env=env)


def _demo_intact(path: Path) -> bool:
    import git

    try:
        repo = git.Repo(path)
        return all(any(tag.name == name for tag in repo.tags) for name, _, _ in DEMO_COMMITS)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False


def _committed_service(kit_root: Path, service: str, destination: Path) -> bool:
    """Write ``services/<service>`` as the kit's last commit has it into ``destination``.

    False (and nothing written) when the kit is no Git checkout of its own (a downloaded
    archive, an installed package) or its HEAD has no such service.
    """
    import git
    import gitdb.exc

    try:
        repo = git.Repo(kit_root)  # the kit's own checkout only, never a folder above it
        repo.commit("HEAD").tree / f"services/{service}/microwizard/microwizard.yml"
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, gitdb.exc.BadName,
            ValueError, KeyError):
        return False
    _extract(repo, f"HEAD:services/{service}", destination)
    return True


def make_demo_repo(workdir: Path, kit_root: Path) -> Path:
    """The popularity demo repository at ``<workdir>/repos/popularity`` (made once).

    Tag ``v1`` holds ``<kit_root>/services/popularity`` as the kit committed it (as it is on
    disk when the kit is no Git checkout), so a learner's uncommitted edits there stay out
    of v1: they are what ``UNCOMMITTED`` runs. Tag ``v2`` ("the bad canary") differs only in
    ``QUERY_DELAY_SECONDS = 1.5``: every query is slow.
    """
    import git

    service = Path(kit_root) / "services" / "popularity"
    target = Path(workdir) / "repos" / "popularity"
    if target.exists():
        if _demo_intact(target):
            return target
        raise SourceError(f"{target} exists but is not the popularity demo repository (tags "
                          "v1 and v2): delete it and it will be made again")
    with _atomic_folder(target) as temporary:
        if not _committed_service(Path(kit_root), "popularity", temporary):
            shutil.copytree(service, temporary, ignore=COPY_IGNORE, dirs_exist_ok=True)
        code = temporary / "popularity.py"
        try:
            text = code.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(f"{service / code.name} not found: the demo repository is made "
                              "from it") from None
        if len(DEMO_DELAY_LINE.findall(text)) != 1:
            raise SourceError(f"{service / code.name} must hold the line "
                              "`QUERY_DELAY_SECONDS = 0.0` exactly once (the demo's v2 "
                              "changes it to make the slow canary)")
        repo = git.Repo.init(temporary, initial_branch="main")
        for number, (tag, message, date) in enumerate(DEMO_COMMITS):
            if number:
                code.write_text(DEMO_DELAY_LINE.sub(DEMO_SLOW_LINE, text), encoding="utf-8")
            _git(repo, "add", "--all")
            _git(repo, "commit", "--quiet", "--message", message, date=date)
            _git(repo, "tag", tag)
    return target


def default_sources(kit_root: Path) -> dict[str, ServiceSource]:
    """The kit's own services: popularity and the Lobsters stand-in.

    popularity's commits (v1, v2) come from the demo repository; its ``UNCOMMITTED`` is the
    kit's ``services/popularity/``, so a learner's edit there runs without a commit (the demo
    repository's own working tree sits at v2, the slow canary).
    """
    kit_root = Path(kit_root)
    return {
        "popularity": ServiceSource(functools.partial(make_demo_repo, kit_root=kit_root),
                                    live_folder=kit_root / "services" / "popularity"),
        "lobsters": ServiceSource(kit_root, subfolder="lobsters"),
    }
