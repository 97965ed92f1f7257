from mwkit.errors import DirectoryError

stack.etcd.kill(1)
stack.etcd.kill(2)  # one member of three left: no majority
try:
    with stack.directory() as directory:
        directory.register("popularity", "by-hand", "127.0.0.1:9", ttl=5)
    print("registered (the majority was back already?)")
except DirectoryError as error:
    print("registering failed:", str(error)[:120], "...")
with stack.reloads(rate=10, duration=3) as reloads:
    reloads.wait(10)
done = reloads.records()
print(f"reloads meanwhile: {len(done)}, failed: {sum(not r.ok for r in done)}")
stack.etcd.restart(1)
stack.etcd.restart(2)
with stack.directory() as directory:
    directory.deregister("popularity", "by-hand")  # in case it got in after all
    print("members:", sorted(set(directory.health()["members"].values())))
