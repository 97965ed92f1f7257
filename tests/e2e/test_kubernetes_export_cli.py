"""``mwkit export kubernetes SERVICE REF`` end to end: the command line, a real Git
repository holding the kit's popularity and lobsters as the wizard's sources, the output
validated offline and strictly with kubernetes-validate for the version it states."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest
import yaml

from mwkit import cli, contract
from mwkit.kubernetes import DATABASE_SECRET, KUBERNETES_VERSION, validate
from mwkit.wizard.source import COPY_IGNORE

KIT_ROOT = Path(__file__).resolve().parents[2]
ME = git.Actor("Test", "test@example.invalid")
SECRET = "s3cret-pw"  # a password in the kit's database URL: it must not reach a manifest


@pytest.fixture
def mwkit(monkeypatch, tmp_path):
    """``mwkit ...`` as the CLI's main runs it (one-line errors, exit codes), with the
    export's commands registered, a private workdir and a database URL with a password."""
    if "mwkit.kubernetes_commands" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES",
                            [*cli.COMMAND_MODULES, "mwkit.kubernetes_commands"])
    monkeypatch.setenv("MWKIT_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("MWKIT_DATABASE_URL", f"mysql://kit:{SECRET}@db.example:3306/lobsters")
    return cli.main


@pytest.fixture
def repo(tmp_path) -> git.Repo:
    """The kit's popularity and lobsters, committed in a repository of their own."""
    repo = git.Repo.init(tmp_path / "services", initial_branch="main")
    for name, folder in (("popularity", KIT_ROOT / "services" / "popularity"),
                         ("lobsters", KIT_ROOT / "lobsters")):
        shutil.copytree(folder, Path(repo.working_tree_dir) / name, ignore=COPY_IGNORE)
    repo.git.add(all=True)
    repo.index.commit("the kit's two services", author=ME, committer=ME)
    repo.create_tag("v1")
    return repo


def documents_in(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


@pytest.mark.parametrize("service", ["popularity", "lobsters"])
def test_a_commit_becomes_valid_manifests(mwkit, repo, tmp_path, service):
    output = tmp_path / f"{service}.yaml"
    assert mwkit(["export", "kubernetes", service, "v1", "--source", repo.working_tree_dir,
                  "--subfolder", service, "--replicas", "2", "--image-prefix",
                  "registry.example/team/", "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith(f"# Written by `mwkit export kubernetes` for Kubernetes "
                           f"{KUBERNETES_VERSION} or later")
    assert "# Rounded up to whole seconds: health_check.timeout 0.5 s -> 1 s" in text
    documents = documents_in(output)
    assert validate(documents, KUBERNETES_VERSION) == []
    deployment, service_document = documents
    commit = repo.head.commit.hexsha
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"registry.example/team/{service}:{commit[:12]}"
    assert deployment["spec"]["template"]["metadata"]["labels"]["mwkit/commit"] == commit
    assert deployment["spec"]["replicas"] == 2
    assert pod["containers"][0]["readinessProbe"]["timeoutSeconds"] == 1  # Watson's 0.5 s
    assert service_document["spec"]["ports"][0]["port"] == 5000
    assert SECRET not in text and "mysql://kit" not in text


def test_the_monoliths_links_become_env_entries(mwkit, repo, capsys):
    assert mwkit(["export", "kubernetes", "lobsters", "v1", "--source", repo.working_tree_dir,
                  "--subfolder", "lobsters"]) == 0
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    env = {entry["name"]: entry for entry in
           documents[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[contract.DIRECTORY_URL]["value"] == "http://mwkit-directory:5353"
    assert env[contract.DATABASE_URL]["valueFrom"] == {
        "secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}


def test_the_kits_own_sources_tag_each_commit(mwkit, tmp_path, capsys):
    """popularity's demo repository (v1, v2 the slow canary): two commits, two images."""
    images = []
    for ref in ("v1", "v2"):
        assert mwkit(["export", "kubernetes", "popularity", ref]) == 0
        documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
        assert validate(documents) == []
        images.append(documents[0]["spec"]["template"]["spec"]["containers"][0]["image"])
    demo = git.Repo(tmp_path / "work" / "repos" / "popularity")
    assert images == [f"mwkit/popularity:{demo.commit(ref).hexsha[:12]}" for ref in ("v1", "v2")]


@pytest.mark.parametrize("args, error", [
    (["nope", "v1"], "mwkit export: error: no source known for service 'nope'; known: "
                     "lobsters, popularity"),
    (["popularity", "v9"], "mwkit export: error: unknown ref 'v9' in the repository"),
    (["popularity", "UNCOMMITTED"], "mwkit export: error: UNCOMMITTED has no commit to tag "
                                    "an image with"),
])
def test_bad_input_is_one_line_and_writes_nothing(mwkit, tmp_path, capsys, args, error):
    output = tmp_path / "out.yaml"
    assert mwkit(["export", "kubernetes", *args, "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(error) and len(captured.err.splitlines()) == 1
    assert captured.out == "" and not output.exists()
