with stack.reloads(rate=10, duration=8) as run:
    time.sleep(2)
    zero_at = time.time()
    stack.scale(0)
    time.sleep(3)
after_zero = [r for r in run.records() if r.time >= zero_at]
outcomes = {outcome: sum(r.outcome == outcome for r in after_zero)
            for outcome in ("ok", "no_service", "error", "timeout")}
print("reloads after scale(0):", outcomes)
first_empty = min((r.time for r in after_zero if r.outcome == "no_service"), default=None)
if first_empty is not None:
    print(f"the first NO SERVICES AVAILABLE came {first_empty - zero_at:.1f} s after scale(0)")
stack.scale(3)  # back to three, as before the exercise
