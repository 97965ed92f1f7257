with stack.directory() as directory:
    directory.register("popularity", "half-a-second", "127.0.0.1:9", ttl=0.5)
    [entry] = [e for e in directory.instances("popularity") if e["id"] == "half-a-second"]
    print("asked for 0.5 s, got a lease of", entry["ttl"], "s")
    directory.deregister("popularity", "half-a-second")
# etcd counts leases in whole seconds, and refuses very short ones: each lease lives on
# every member, and a new leader (elected within about a second after the old one died)
# must not expire leases that were renewed a moment ago. The kit rounds up, to at least 2 s.
