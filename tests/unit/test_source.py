"""Git refs to runnable folders, on real Git repositories made with GitPython in tmp_path."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import git
import pytest

from mwkit.wizard import source as source_module
from mwkit.wizard.source import (
    UNCOMMITTED,
    UNCOMMITTED_COPY,
    ServiceSource,
    SourceError,
    checkout,
    default_sources,
    make_demo_repo,
)
from mwkit.wizard.spec import load_spec

KIT_ROOT = Path(__file__).resolve().parents[2]
ME = git.Actor("Test", "test@example.invalid")
SPEC = "service_name: svc\nservice_port: 5000\n"


def write_service(folder: Path, version: int) -> None:
    """A minimal service folder: microwizard/ (mw.sh executable) and app.py."""
    microwizard = folder / "microwizard"
    microwizard.mkdir(parents=True, exist_ok=True)
    (microwizard / "microwizard.yml").write_text(SPEC)
    (microwizard / "datawire.conf").write_text("[Watson]\nservice_name = ${SERVICE_NAME}\n")
    (microwizard / "mw.sh").write_text("#!/bin/bash\n")
    (microwizard / "mw.sh").chmod(0o755)
    (folder / "app.py").write_text(f"VERSION = {version}\n")


def commit_all(repo: git.Repo, message: str) -> git.Commit:
    repo.git.add(all=True)
    return repo.index.commit(message, author=ME, committer=ME)


@pytest.fixture
def repo(tmp_path) -> git.Repo:
    """A repository whose service lives in svc/: tag v1 and branch stable at the first
    commit, main one commit later (VERSION = 2)."""
    repo = git.Repo.init(tmp_path / "repo", initial_branch="main")
    write_service(Path(repo.working_tree_dir) / "svc", 1)
    first = commit_all(repo, "first")
    repo.create_tag("v1")
    repo.create_head("stable", first)
    write_service(Path(repo.working_tree_dir) / "svc", 2)
    commit_all(repo, "second")
    return repo


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path / "work"


def source_of(repo: git.Repo) -> ServiceSource:
    return ServiceSource(Path(repo.working_tree_dir), subfolder="svc")


def leftovers(workdir: Path) -> list[str]:
    return sorted(path.name for path in (workdir / "checkouts" / "svc").glob("*"))


def test_sha_short_sha_tag_and_branch_give_the_same_folder(repo, workdir):
    first = repo.commit("v1").hexsha
    with repo.git.custom_environment(GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@t.invalid"):
        repo.create_tag("annotated", ref="v1", message="an annotated tag")
    lines: list[str] = []
    checkouts = [checkout(source_of(repo), ref, service="svc", tag="t", workdir=workdir,
                          progress=lines.append)
                 for ref in (first, first[:8], "v1", "stable", "annotated")]
    assert len({c.folder for c in checkouts}) == 1
    assert checkouts[0].folder.parent == workdir / "checkouts" / "svc"
    assert checkouts[0].folder.name.startswith(f"{first}-svc-")  # the subfolder is in the key
    assert {c.commit for c in checkouts} == {first}
    assert all(c.read_only for c in checkouts)
    folder = checkouts[0].folder
    assert (folder / "app.py").read_text() == "VERSION = 1\n"
    assert (folder / "microwizard" / "mw.sh").stat().st_mode & stat.S_IXUSR
    assert not (folder / "svc").exists() and not (folder / ".git").exists()
    assert load_spec(folder).name == "svc"
    assert lines[0] == f"checking out svc {first[:7]} ({first}) into {folder}"
    assert lines[1] == f"reusing checkout {folder} of svc {first[:7]} ({first[:8]})"
    assert len(lines) == 5 and all(line.startswith("reusing") for line in lines[1:])
    assert leftovers(workdir) == [folder.name]


def test_the_repository_is_left_untouched(repo, workdir):
    tree = Path(repo.working_tree_dir)
    (tree / "svc" / "app.py").write_text("VERSION = 'dirty'\n")
    (tree / "svc" / "untracked.txt").write_text("not committed\n")
    repo.git.add("svc/app.py")
    (tree / "svc" / "app.py").write_text("VERSION = 'dirtier'\n")
    status, head = repo.git.status("--porcelain"), repo.head.commit
    index = repo.git.diff("--cached")
    result = checkout(source_of(repo), "main", service="svc", tag="t", workdir=workdir)
    assert (result.folder / "app.py").read_text() == "VERSION = 2\n"
    assert not (result.folder / "untracked.txt").exists()
    assert repo.git.status("--porcelain") == status and repo.head.commit == head
    assert repo.git.diff("--cached") == index
    assert (tree / "svc" / "app.py").read_text() == "VERSION = 'dirtier'\n"


def test_a_clean_repository_stays_clean(repo, workdir):
    checkout(source_of(repo), "v1", service="svc", tag="t", workdir=workdir)
    assert repo.git.status("--porcelain") == "" and repo.head.ref.name == "main"


def test_reuse_is_fast_and_does_not_rewrite(repo, workdir, monkeypatch):
    first = checkout(source_of(repo), "v1", service="svc", tag="t", workdir=workdir)
    app = first.folder / "app.py"
    before = (first.folder.stat().st_ino, app.stat().st_ino, app.stat().st_mtime_ns)

    def must_not_extract(*args):
        raise AssertionError("a present checkout was extracted again")

    monkeypatch.setattr(source_module, "_extract", must_not_extract)
    started = time.monotonic()
    again = checkout(source_of(repo), "v1", service="svc", tag="t2", workdir=workdir)
    assert time.monotonic() - started < 1.0
    assert again == first
    assert (again.folder.stat().st_ino, app.stat().st_ino, app.stat().st_mtime_ns) == before


def test_a_failure_midway_leaves_no_folder(repo, workdir, monkeypatch):
    real_extract = source_module._extract

    def half_then_fail(repo, treeish, destination):
        (destination / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(source_module, "_extract", half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        checkout(source_of(repo), "v1", service="svc", tag="t", workdir=workdir)
    assert leftovers(workdir) == []
    monkeypatch.setattr(source_module, "_extract", real_extract)
    result = checkout(source_of(repo), "v1", service="svc", tag="t", workdir=workdir)
    assert sorted(p.name for p in result.folder.iterdir()) == ["app.py", "microwizard"]


def test_two_exports_of_one_commit_at_once_do_not_mix(repo, workdir, monkeypatch):
    """Both extract before either renames; the loser of the rename uses the winner's."""
    real_extract = source_module._extract
    both_extracted = threading.Barrier(2, timeout=10)

    def extract_then_wait(*args):
        real_extract(*args)
        both_extracted.wait()

    monkeypatch.setattr(source_module, "_extract", extract_then_wait)
    results, errors = [], []

    def export():
        try:
            results.append(checkout(source_of(repo), "v1", service="svc", tag="t",
                                    workdir=workdir))
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == [] and len(results) == 2
    assert results[0] == results[1]
    assert leftovers(workdir) == [results[0].folder.name]
    assert sorted(p.name for p in results[0].folder.iterdir()) == ["app.py", "microwizard"]


@pytest.mark.parametrize("field, value", [
    ("service", "../svc"), ("service", "a/b"), ("tag", ".."), ("tag", "a/b"),
    ("ref", "../v1"), ("ref", "v1/.."), ("ref", "main/x"), ("ref", "--output=x"),
])
def test_dots_and_slashes_are_refused(repo, workdir, field, value):
    arguments = {"service": "svc", "tag": "t", "ref": "v1", field: value}
    ref = arguments.pop("ref")
    with pytest.raises(SourceError, match=field if field != "service" else "service name"):
        checkout(source_of(repo), ref, workdir=workdir, **arguments)
    assert not workdir.exists()


@pytest.mark.parametrize("subfolder", ["../repo", "/etc", "svc/../../x"])
def test_a_subfolder_outside_the_repository_is_refused(repo, workdir, subfolder):
    source = ServiceSource(Path(repo.working_tree_dir), subfolder=subfolder)
    with pytest.raises(SourceError, match="inside the repository"):
        checkout(source, "v1", service="svc", tag="t", workdir=workdir)


def test_an_unknown_ref_is_named_with_the_repository(repo, workdir):
    with pytest.raises(SourceError) as caught:
        checkout(source_of(repo), "v9", service="svc", tag="t", workdir=workdir)
    message = str(caught.value)
    assert "'v9'" in message and repo.working_tree_dir in message
    assert "tags: v1" in message and "stable" in message


def test_a_folder_that_is_no_repository_is_refused(tmp_path, workdir):
    with pytest.raises(SourceError, match="is not a Git repository"):
        checkout(ServiceSource(tmp_path), "v1", service="svc", tag="t", workdir=workdir)


def test_a_subfolder_without_microwizard_is_named_with_the_commit(repo, workdir):
    source = ServiceSource(Path(repo.working_tree_dir), subfolder="elsewhere")
    with pytest.raises(SourceError) as caught:
        checkout(source, "v1", service="svc", tag="t", workdir=workdir)
    message = str(caught.value)
    assert repo.commit("v1").hexsha[:7] in message
    assert "elsewhere/microwizard/microwizard.yml" in message
    assert not (workdir / "checkouts").exists() or leftovers(workdir) == []


def test_a_wrong_subfolder_fails_also_once_the_commit_was_exported(repo, workdir):
    """Issue #10, finding 7: the export of v1 at svc/ must not serve v1 at another folder."""
    tree = Path(repo.working_tree_dir)
    checkout(source_of(repo), "v1", service="svc", tag="t", workdir=workdir)
    with pytest.raises(SourceError, match="elsewhere/microwizard/microwizard.yml"):
        checkout(ServiceSource(tree, subfolder="elsewhere"), "v1", service="svc", tag="t",
                 workdir=workdir)
    with pytest.raises(SourceError, match="microwizard/microwizard.yml"):
        checkout(ServiceSource(tree), "v1", service="svc", tag="t", workdir=workdir)


def test_one_commit_at_two_subfolders_gives_two_exports(tmp_path, workdir):
    repo = git.Repo.init(tmp_path / "two", initial_branch="main")
    for folder, version in (("a", 1), ("b/c", 2)):
        write_service(tmp_path / "two" / folder, version)
    commit_all(repo, "two services")
    tree = Path(repo.working_tree_dir)
    a, c = (checkout(ServiceSource(tree, subfolder=sub), "main", service="svc", tag="t",
                     workdir=workdir) for sub in ("a", "b/c"))
    assert a.folder != c.folder and a.commit == c.commit
    assert (a.folder / "app.py").read_text() == "VERSION = 1\n"
    assert (c.folder / "app.py").read_text() == "VERSION = 2\n"
    assert a.exported and c.exported
    assert not checkout(ServiceSource(tree, subfolder="b/c"), "main", service="svc", tag="u",
                        workdir=workdir).exported


def test_uncommitted_is_the_live_folder(repo, workdir):
    result = checkout(source_of(repo), UNCOMMITTED, service="svc", tag="t", workdir=workdir)
    assert result.folder == Path(repo.working_tree_dir) / "svc"
    assert result.commit == UNCOMMITTED and not result.read_only
    (Path(repo.working_tree_dir) / "svc" / "app.py").write_text("VERSION = 'live'\n")
    assert (result.folder / "app.py").read_text() == "VERSION = 'live'\n"


def test_uncommitted_copy_is_a_snapshot_per_tag(repo, workdir):
    live = Path(repo.working_tree_dir) / "svc" / "app.py"
    live.write_text("VERSION = 'edited'\n")
    copy = checkout(source_of(repo), UNCOMMITTED_COPY, service="svc", tag="t1", workdir=workdir)
    assert copy.folder == workdir / "checkouts" / "svc" / "UNCOMMITTED_COPY-t1"
    assert copy.commit == UNCOMMITTED_COPY and copy.read_only
    assert (copy.folder / "app.py").read_text() == "VERSION = 'edited'\n"
    assert (copy.folder / "microwizard" / "mw.sh").stat().st_mode & stat.S_IXUSR
    live.write_text("VERSION = 'later'\n")
    assert (copy.folder / "app.py").read_text() == "VERSION = 'edited'\n"
    same_tag = checkout(source_of(repo), UNCOMMITTED_COPY, service="svc", tag="t1",
                        workdir=workdir)
    assert (same_tag.folder / "app.py").read_text() == "VERSION = 'edited'\n"
    new_tag = checkout(source_of(repo), UNCOMMITTED_COPY, service="svc", tag="t2",
                       workdir=workdir)
    assert (new_tag.folder / "app.py").read_text() == "VERSION = 'later'\n"


def test_uncommitted_needs_microwizard_in_the_live_folder(repo, workdir):
    source = ServiceSource(Path(repo.working_tree_dir), subfolder="elsewhere")
    for ref in (UNCOMMITTED, UNCOMMITTED_COPY):
        with pytest.raises(SourceError, match="elsewhere has no microwizard/microwizard.yml"):
            checkout(source, ref, service="svc", tag="t", workdir=workdir)


def test_a_url_is_cloned_bare_and_fetched_again(repo, workdir):
    url = Path(repo.working_tree_dir).as_uri()
    source = ServiceSource(url, subfolder="svc")
    lines: list[str] = []
    result = checkout(source, "v1", service="svc", tag="t", workdir=workdir,
                      progress=lines.append)
    [clone] = (workdir / "repos").glob("repo-*.git")
    assert git.Repo(clone).bare and (result.folder / "app.py").read_text() == "VERSION = 1\n"
    assert lines[0] == f"cloning {url} into {clone}"
    write_service(Path(repo.working_tree_dir) / "svc", 3)
    commit_all(repo, "third")
    repo.create_tag("v3")
    result = checkout(source, "v3", service="svc", tag="t", workdir=workdir)
    assert (result.folder / "app.py").read_text() == "VERSION = 3\n"
    with pytest.raises(SourceError, match="need a local working tree"):
        checkout(source, UNCOMMITTED, service="svc", tag="t", workdir=workdir)


@pytest.fixture
def kit(tmp_path) -> Path:
    """A fake kit root holding services/popularity with the documented delay line."""
    service = tmp_path / "kit" / "services" / "popularity"
    write_service(service, 1)
    (service / "popularity.py").write_text(
        "import time\n\nQUERY_DELAY_SECONDS = 0.0\n\ntime.sleep(QUERY_DELAY_SECONDS)\n")
    (service / "__pycache__").mkdir()
    (service / "__pycache__" / "popularity.cpython-311.pyc").write_bytes(b"junk")
    return tmp_path / "kit"


def test_the_demo_repo_has_v1_and_the_slow_v2(kit, workdir):
    path = make_demo_repo(workdir, kit)
    assert path == workdir / "repos" / "popularity"
    repo = git.Repo(path)
    assert repo.git.status("--porcelain") == ""
    assert repo.commit("v2").parents == (repo.commit("v1"),)
    assert repo.commit("v2").message.strip() == "v2: slow query (the bad canary)"
    assert repo.git.diff("v1", "v2", name_only=True) == "popularity.py"
    changed = [line for line in repo.git.diff("v1", "v2", unified=0).splitlines()
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-QUERY_DELAY_SECONDS = 0.0", "+QUERY_DELAY_SECONDS = 1.5"]
    assert (repo.commit("v1").tree / "microwizard/mw.sh").mode == 0o100755
    assert "__pycache__" not in [entry.name for entry in repo.commit("v1").tree]


def test_the_demo_repo_is_idempotent_and_reproducible(kit, tmp_path, workdir):
    path = make_demo_repo(workdir, kit)
    shas = [git.Repo(path).commit(tag).hexsha for tag in ("v1", "v2")]
    (path / "popularity.py").write_text("# a learner's edit\n")
    assert make_demo_repo(workdir, kit) == path
    assert (path / "popularity.py").read_text() == "# a learner's edit\n"
    elsewhere = make_demo_repo(tmp_path / "other", kit)
    assert [git.Repo(elsewhere).commit(tag).hexsha for tag in ("v1", "v2")] == shas


def test_the_demo_repo_takes_what_the_kit_committed(kit, workdir):
    """In a Git checkout of the kit, v1 is popularity as committed: a learner's uncommitted
    edit (and an untracked file) is what UNCOMMITTED runs, never part of v1."""
    kit_repo = git.Repo.init(kit, initial_branch="main")
    commit_all(kit_repo, "the kit")
    service = kit / "services" / "popularity"
    (service / "popularity.py").write_text((service / "popularity.py").read_text()
                                           + "# a learner's edit\n")
    (service / "notes.txt").write_text("untracked\n")
    repo = git.Repo(make_demo_repo(workdir, kit))
    v1 = repo.commit("v1").tree
    assert "# a learner's edit" not in (v1 / "popularity.py").data_stream.read().decode()
    assert "notes.txt" not in [entry.name for entry in v1]
    assert (v1 / "microwizard/mw.sh").mode == 0o100755
    assert repo.git.diff("v1", "v2", name_only=True) == "popularity.py"
    live = checkout(default_sources(kit)["popularity"], UNCOMMITTED, service="popularity",
                    tag="dev", workdir=workdir)
    assert (live.folder / "popularity.py").read_text().endswith("# a learner's edit\n")


def test_the_demo_repo_needs_the_delay_line(kit, workdir):
    code = kit / "services" / "popularity" / "popularity.py"
    code.write_text("QUERY_DELAY_SECONDS = 0\n")
    with pytest.raises(SourceError, match=r"QUERY_DELAY_SECONDS = 0\.0` exactly once"):
        make_demo_repo(workdir, kit)
    code.unlink()
    with pytest.raises(SourceError, match="popularity.py not found"):
        make_demo_repo(workdir, kit)
    assert not (workdir / "repos" / "popularity").exists()


def test_a_failed_demo_repo_leaves_nothing(kit, workdir, monkeypatch):
    real_git = source_module._git

    def fail_at_tags(repo, *args, **kwargs):
        if args[0] == "tag":
            raise git.GitCommandError(["git", *args], 1, b"", b"simulated")
        real_git(repo, *args, **kwargs)

    monkeypatch.setattr(source_module, "_git", fail_at_tags)
    with pytest.raises(git.GitCommandError):
        make_demo_repo(workdir, kit)
    assert list((workdir / "repos").iterdir()) == []


def test_something_else_at_the_demo_path_is_not_overwritten(kit, workdir):
    (workdir / "repos" / "popularity").mkdir(parents=True)
    with pytest.raises(SourceError, match="not the popularity demo repository"):
        make_demo_repo(workdir, kit)


def test_default_sources_make_the_demo_repo_on_first_use(kit, workdir):
    sources = default_sources(kit)
    assert sources["lobsters"] == ServiceSource(kit, subfolder="lobsters")
    assert not workdir.exists()
    v2 = checkout(sources["popularity"], "v2", service="popularity", tag="canary",
                  workdir=workdir)
    assert "QUERY_DELAY_SECONDS = 1.5" in (v2.folder / "popularity.py").read_text()


def test_popularity_uncommitted_is_the_kits_folder_not_the_demo_repo(kit, workdir):
    """The demo repository's working tree sits at the slow v2; UNCOMMITTED must not run it."""
    sources = default_sources(kit)
    live = checkout(sources["popularity"], UNCOMMITTED, service="popularity", tag="dev",
                    workdir=workdir)
    assert live.folder == kit / "services" / "popularity"
    assert live.commit == UNCOMMITTED and not live.read_only
    assert not (workdir / "repos").exists()  # no demo repository needed for it
    v2 = checkout(sources["popularity"], "v2", service="popularity", tag="canary",
                  workdir=workdir)
    demo = workdir / "repos" / "popularity" / "popularity.py"
    assert "QUERY_DELAY_SECONDS = 1.5" in demo.read_text()  # what UNCOMMITTED used to run
    edited = kit / "services" / "popularity" / "popularity.py"
    edited.write_text(edited.read_text() + "# a learner's edit\n")
    again = checkout(sources["popularity"], UNCOMMITTED, service="popularity", tag="dev",
                     workdir=workdir)
    assert (again.folder / "popularity.py").read_text().endswith("# a learner's edit\n")
    copy = checkout(sources["popularity"], UNCOMMITTED_COPY, service="popularity", tag="snap",
                    workdir=workdir)
    assert (copy.folder / "popularity.py").read_text().endswith("# a learner's edit\n")
    assert "QUERY_DELAY_SECONDS = 0.0" in (copy.folder / "popularity.py").read_text()
    assert "# a learner's edit" not in (v2.folder / "popularity.py").read_text()


def test_a_live_folder_apart_from_the_repository(repo, tmp_path, workdir):
    """Commits from the repository, UNCOMMITTED from the live folder (no subfolder added)."""
    live = tmp_path / "live"
    write_service(live, 7)
    source = ServiceSource(Path(repo.working_tree_dir), subfolder="svc", live_folder=live)
    result = checkout(source, UNCOMMITTED, service="svc", tag="t", workdir=workdir)
    assert result.folder == live and (result.folder / "app.py").read_text() == "VERSION = 7\n"
    committed = checkout(source, "v1", service="svc", tag="t", workdir=workdir)
    assert (committed.folder / "app.py").read_text() == "VERSION = 1\n"
    url_source = ServiceSource(Path(repo.working_tree_dir).as_uri(), live_folder=str(live))
    assert checkout(url_source, UNCOMMITTED, service="svc", tag="t", workdir=workdir).folder \
        == live
    empty = ServiceSource(Path(repo.working_tree_dir), live_folder=tmp_path)
    with pytest.raises(SourceError, match="must be the service folder itself"):
        checkout(empty, UNCOMMITTED_COPY, service="svc", tag="t", workdir=workdir)


def test_the_real_popularity_service_becomes_a_demo_repo(workdir):
    sources = default_sources(KIT_ROOT)
    for tag, delay in (("v1", "0.0"), ("v2", "1.5")):
        result = checkout(sources["popularity"], tag, service="popularity", tag=tag,
                          workdir=workdir)
        assert f"\nQUERY_DELAY_SECONDS = {delay}\n" in (result.folder / "popularity.py").read_text()
        spec = load_spec(result.folder)
        assert spec.name == "popularity" and os.access(spec.mw_sh, os.X_OK)
