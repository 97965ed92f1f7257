def how_it_left(action, label: str) -> None:
    """Press a kill button (``action``) and report how the Directory heard of it."""
    clicked = time.time()
    action("v1")  # what the button does
    assert model.wait(timeout=60)
    left = []
    deadline = time.monotonic() + 20  # the crash waits for its lease to run out
    while not left and time.monotonic() < deadline:
        time.sleep(0.5)
        model.refresh()  # the Directory's new events
        left = [e for e in model.events.events() if e["time"] >= clicked
                and e["kind"] in ("deregistered", "expired")]
    failed = [r for r in model.recent() if r.time >= clicked and not r.ok]
    for event in left:
        print(f"{label}: {event['instance']} {event['kind']} "
              f"{event['time'] - clicked:.1f} s after the click")
    print(f"{label}: page reloads that failed since the click: {len(failed)}")


model.set_count("v1", 3)  # enough instances to lose one
assert model.wait(timeout=90)
how_it_left(model.kill_newest, "kill")
model.set_count("v1", 3)  # the slider back up
assert model.wait(timeout=90)
how_it_left(model.kill_hard, "kill -9")
