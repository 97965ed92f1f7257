# Exercise: version 2. Change what the service answers, commit, tag it v2.
app_py = MY_SERVICE / "app.py"
app_py.write_text(app_py.read_text().replace("VERSION = 1\n", "VERSION = 2\n"))
if repo.is_dirty(untracked_files=True):
    repo.git.add(all=True)
    repo.index.commit("v2: says it is version 2", author=ME, committer=ME)
repo.create_tag("v2", force=True)  # force: running this cell again moves the tag, no error
print(repo.git.log("--format=%h%d %s", "--decorate=short"))
