kill_mark = kill_events.marks()[-1]
expired = next(e for e in kill_events.events()
               if e["kind"] == "expired" and e["instance"] == killed.id)
with stack.directory() as directory:
    ttl = directory.instances("popularity")[0]["ttl"]
waited = expired["time"] - kill_mark.time
print(f"the lease: {ttl} s; the Directory dropped the instance {waited:.1f} s after the kill")
# Not exactly the lease: it runs from the last heartbeat (up to one period before the kill),
# and the Directory removes expired leases on a periodic sweep, a little later.
