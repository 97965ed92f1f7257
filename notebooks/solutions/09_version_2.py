# Exercise: version 2. Change what the service answers, then commit and tag it with the
# notebook's commit(message, tag).
app_py = MY_SERVICE / "app.py"
app_py.write_text(app_py.read_text().replace("VERSION = 1\n", "VERSION = 2\n"))
commit("v2: says it is version 2", "v2")
print(repo.git.log("--format=%h%d %s", "--decorate=short"))
