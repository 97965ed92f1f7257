for name in ("round_robin", "least_request"):
    stack.use_sherlock(policy=name)
    records = stack.reloads(rate=30, duration=5).run()
    print(f"{name:<14} {slow_share(records):3.0f} % of {len(records)} reloads slow")
# Under load the canary holds many calls at once (each for 1.5 s), the fast ones almost none:
# the count in flight is a latency signal that needs no clock.
