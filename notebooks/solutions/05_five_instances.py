started = time.monotonic()
model.set_count("v1", 5)  # what moving the slider to 5 does
assert model.wait(timeout=90), "scaling did not finish within 90 s"
print(f"scaling to 5 took {time.monotonic() - started:.1f} s; last error: {model.last_error}")
time.sleep(3)  # reloads shared by all five
last = model.recent(seconds=2)
print(format_table(summarize(last, instance_labels(last))))
per_instance = {name: sum(r.instance == name for r in last) / 2 for name in model.answered_by(2)}
print("reloads a second per instance:", per_instance)
model.set_count("v1", 2)  # the slider back to 2
assert model.wait(timeout=60)
