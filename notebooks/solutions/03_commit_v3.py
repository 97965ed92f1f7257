# Exercise: a v3 in a clone of the demo repository, deployed by a wizard that knows the clone.
import shutil

from mwkit.wizard.wizard import Wizard

clone_path = workdir / "my-popularity"
shutil.rmtree(clone_path, ignore_errors=True)  # running it again starts from a fresh clone
clone = git.Repo.clone_from(repo_path, clone_path)
code = clone_path / "popularity.py"
ranking = "return jsonify(service_id=service_id, index=index, users=users)"
text = code.read_text()
assert ranking in text, "popularity.py changed: edit its ranking's jsonify by hand"
code.write_text(text.replace("QUERY_DELAY_SECONDS = 1.5", "QUERY_DELAY_SECONDS = 0.0")
                .replace(ranking, ranking[:-1] + ', version="v3")'))
you = git.Actor("You", "you@example.invalid")  # no Git identity needed on this machine
clone.git.add(all=True)
clone.index.commit("v3: fast again, and says its version", author=you, committer=you)
clone.create_tag("v3")
print(clone.git.log("--format=%h%d %s", "--decorate=short"))

with Wizard(workdir, sources={"popularity": ServiceSource(clone_path)}) as wizard:
    v3 = wizard.svrun("popularity", "v3", "v3")
    print(v3.id, "runs", Path(v3.folder).relative_to(workdir))
    with stack.directory() as client:
        for entry in client.instances("popularity"):
            print(entry["id"], "| ref", entry["metadata"]["ref"],
                  "| commit", entry["metadata"]["commit"])
    print("version:", requests.get(v3.url, timeout=5).json().get("version"))
