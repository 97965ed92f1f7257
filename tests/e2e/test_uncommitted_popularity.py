"""``svrun popularity <tag> UNCOMMITTED`` runs the kit's popularity folder as it is on disk.

The popularity source takes its commits from the generated demo repository, whose own
working tree sits at the slow v2; ``UNCOMMITTED`` must run ``services/popularity/`` instead,
the folder a learner edits, while ``v1`` stays what the kit committed. The kit's folder
itself is never edited here: a copy of it, in a temporary kit root (a Git checkout of its
own, as the kit is), gets the edit.
"""

from __future__ import annotations

import shutil

import git
import requests

from mwkit.settings import KIT_ROOT
from mwkit.wizard.source import UNCOMMITTED, default_sources
from mwkit.wizard.wizard import Wizard
from tests.helpers.services import seeded_sqlite

# Appended before main(): main() looks create_app up when it runs, so it gets this one.
EDIT = '''
_kit_create_app = create_app


def create_app(database_url):
    app = _kit_create_app(database_url)
    app.add_url_rule("/edited", "edited", lambda: "an edit in the working tree")
    return app


'''


def test_an_uncommitted_instance_serves_an_edit_of_the_working_tree(tmp_path, directory):
    kit = tmp_path / "kit"
    shutil.copytree(KIT_ROOT / "services" / "popularity", kit / "services" / "popularity",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kit_repo = git.Repo.init(kit, initial_branch="main")
    kit_repo.git.add(all=True)
    kit_repo.index.commit("the kit", author=git.Actor("t", "t@example.invalid"),
                          committer=git.Actor("t", "t@example.invalid"))
    code = kit / "services" / "popularity" / "popularity.py"
    text = code.read_text(encoding="utf-8")
    assert text.count("\ndef main()") == 1
    code.write_text(text.replace("\ndef main()", EDIT + "def main()"), encoding="utf-8")
    sources = {"popularity": default_sources(kit)["popularity"]}
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                database_url=seeded_sqlite(tmp_path), sources=sources) as wizard:
        live = wizard.svrun("popularity", "dev", UNCOMMITTED)
        assert live.folder == str(kit / "services" / "popularity")
        edited = requests.get(f"{live.url}/edited", timeout=5)
        assert (edited.status_code, edited.text) == (200, "an edit in the working tree")
        assert "users" in requests.get(f"{live.url}/", timeout=5).json()
        committed = wizard.svrun("popularity", "v1", "v1")
        assert requests.get(f"{committed.url}/edited", timeout=5).status_code == 404
