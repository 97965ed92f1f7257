# Be the agent: a lease of 2 s, renewed once a second for 5 s, then left to run out.
client.register("popularity", "beating", "127.0.0.1:11", ttl=2)
print(pushed(stream.next(timeout=WAIT)))
for second in range(1, 6):
    time.sleep(1)
    renewed = client.heartbeat("popularity", "beating")  # POST .../beating/heartbeat
    listed = "beating" in [instance["id"] for instance in client.instances("popularity")]
    print(f"{second} s: renewed {renewed}, listed {listed}")
last_heartbeat = time.monotonic()
print("while renewed:", pushed(stream.next(timeout=0.5)))  # a renewal is not news
print(pushed(stream.next(timeout=WAIT)))  # the expiry, about 2 s after the last heartbeat
print(f"pushed {time.monotonic() - last_heartbeat:.1f} s after the last heartbeat")
# An expired instance is unknown: heartbeat answers 404 (False). The agent must register
# again, as Watson does (mwkit/watson/agent.py, _renew).
print("heartbeat after the expiry:", client.heartbeat("popularity", "beating"))
