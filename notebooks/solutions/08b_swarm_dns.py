from mwkit.swarm import service_name

if swarm_stack:
    name = f"tasks.{service_name(SWARM_WORKDIR, 'popularity', 'v1')}"
    [monolith] = swarm_stack.runtime.client.containers.list(
        filters={"label": ["mwkit.service=lobsters", f"mwkit.workdir={SWARM_WORKDIR}"]})
    code, output = monolith.exec_run(["python3", "-c", (
        "import socket, sys; print(' '.join(sorted({a[4][0] for a in "
        f"socket.getaddrinfo({name!r}, None)}})))")])
    from_dns = sorted(output.decode().split())
    from_directory = sorted(i["address"].rpartition(":")[0]
                            for i in services.registered("popularity", "v1"))
    print("Swarm's DNS:  ", from_dns)
    print("the Directory:", from_directory)
    print("the same addresses:", from_dns == from_directory)
else:
    print("skipped: this exercise needs the Docker runtime")
