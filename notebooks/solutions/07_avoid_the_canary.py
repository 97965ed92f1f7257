from mwkit.sherlock import Sherlock
from mwkit.sherlock.policies import POLICIES, round_robin


def avoid_tag(tag: str):
    """A policy factory: round robin over the instances not tagged ``tag``, if any."""
    rotate = round_robin()

    def pick(endpoints):
        others = [e for e in endpoints if e.metadata.get("tag") != tag]
        return rotate(others or endpoints)

    return pick


POLICIES["avoid_v2"] = lambda: avoid_tag("v2")
popularity = [row for row in stack.status() if row.service == "popularity"]
with Sherlock(stack.directory_url, policy="avoid_v2") as sherlock:
    sherlock.wait_for("popularity", len(popularity))
    with sherlock.session() as session:
        for _ in range(30):
            session.get("http://popularity/", timeout=5).raise_for_status()
    answered = {name: numbers["ok"] for name, numbers in sherlock.counters().items()
                if numbers["ok"]}
print("calls answered per instance:", answered)
