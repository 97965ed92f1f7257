# Exercise: UNCOMMITTED. The solution edits a copy of services/popularity, so that the kit's
# folder never changes; a source whose live folder is the copy runs it, as the kit's own
# popularity source runs services/popularity.
import shutil

from mwkit.wizard.wizard import Wizard

my_tree = workdir / "my-popularity-tree"
shutil.rmtree(my_tree, ignore_errors=True)
shutil.copytree(KIT_ROOT / "services" / "popularity", my_tree,
                ignore=shutil.ignore_patterns("__pycache__"))
code = my_tree / "popularity.py"
ranking = "return jsonify(service_id=service_id, index=index, users=users)"
assert ranking in code.read_text(), "popularity.py changed: edit its ranking's jsonify by hand"
code.write_text(code.read_text().replace(
    ranking, ranking[:-1] + ', hello="from my working tree")'))

mine = ServiceSource(repo_path, live_folder=my_tree)  # commits from the demo repository
with Wizard(workdir, sources={"popularity": mine}) as wizard:
    dev = wizard.svrun("popularity", "dev", "UNCOMMITTED")
    answer = requests.get(dev.url, timeout=5).json()
    print(dev.id, "runs", dev.folder, "| commit:", dev.commit)
    print("hello:", answer.get("hello"))
# the with block has removed the dev instance
