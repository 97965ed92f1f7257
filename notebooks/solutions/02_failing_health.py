# /health fails while tiny keeps running: Watson deregisters it, then registers it again.
(site / "health").unlink()  # http.server now answers 404
print("health file removed:", pushed(stream.next(timeout=WAIT)))
print("Watson's state:", watson.state)
(site / "health").write_text("OK\n")
print("health file back:", pushed(stream.next(timeout=WAIT)))
print("Watson's state:", watson.state)
print("its transitions:", [change for _, change in watson.transitions])
# In between, the Directory listed no tiny: a router sends it no calls, although the
# process never stopped. A health check answers "can you serve?", not "do you run?".
