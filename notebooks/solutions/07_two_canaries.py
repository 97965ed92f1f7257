stack.scale(2, tag="v2", ref="v2")
for name in ("round_robin", "peak_ewma"):
    stack.use_sherlock(policy=name)
    records = stack.reloads(rate=10, duration=6).run()
    print(f"{name:<12} {slow_share(records):3.0f} % of {len(records)} reloads slow")
# Round robin: two of five, about 40 %. Peak-EWMA does much worse than with one canary:
# it compares only two instances picked at random, and one time in ten (1 of the 10 pairs
# of five) both are canaries, so a canary gets the call whatever it has learnt. Power of
# two choices trades a perfect choice for a cheap one.
stack.scale(1, tag="v2")  # back to one canary
