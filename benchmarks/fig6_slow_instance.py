"""Figure 6: one slow instance of four (the bad v2): reloads answered within 1 s, per policy.

Three popularity v1 and one v2 (which sleeps 1.5 s before its query) serve the monolith.
For each policy the monolith is restarted with it (``Stack.use_sherlock``: the policy is
the client's own setting) and page reloads run open-loop at ``RATE`` a second for
``seconds``; the share of reloads that answered ok within 1 s is counted over the whole
run (the sample) and, for the notes, per window of ``WINDOW`` seconds.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Deadline, Figure, Metric, at_least
from mwkit.sherlock import POLICIES
from mwkit.stack import Stack
from mwkit.traffic import PageReloads

RATE = 10.0
WINDOW = 5.0
LIMIT = 1.0  # seconds
LOAD_AWARE = ("least_request", "peak_ewma")


def within(records: list) -> float:
    return 100.0 * sum(r.ok and r.latency <= LIMIT for r in records) / max(1, len(records))


def shares(records: list, window: float) -> list[float]:
    """The share within the limit, per window of the run."""
    if not records:
        return []
    start = records[0].time
    groups: dict[int, list] = {}
    for record in records:
        groups.setdefault(int((record.time - start) / window), []).append(record)
    return [within(group) for _, group in sorted(groups.items())]


def run(quick: bool, scratch: Path, runtime: str = "process") -> Figure:
    figure = Figure(6, "one slow instance of four: reloads within 1 s, per policy")
    seconds = 5.0 if quick else 20.0
    deadline = Deadline(60 if quick else 150)
    policies = ["round_robin", "peak_ewma"] if quick else list(POLICIES)
    with Stack(scratch / f"stack-{runtime}", runtime=runtime, policy=policies[0]) as stack:
        stack.scale(3)
        stack.scale(1, tag="v2", ref="v2")
        for policy in policies:
            if deadline.expired:
                figure.notes.append(f"{policy}: not measured, the time budget ran out")
                continue
            if policy != stack.policy:
                stack.use_sherlock(policy=policy)
            reloads = PageReloads(f"{stack.monolith_url}/popular.json", rate=RATE,
                                  duration=seconds, max_in_flight=64)
            records = reloads.run()
            windows = ", ".join(f"{share:.0f}" for share in shares(records, WINDOW))
            figure.add(Metric(
                f"{policy}: reloads answered within 1 s", "%", [within(records)], per="run",
                target=">= 99 %" if policy == "peak_ewma" else
                ("about 75 %" if policy == "round_robin" else ""),
                check=at_least(99) if policy == "peak_ewma" else None,
                note=f"{len(records)} reloads; per {WINDOW:.0f}-s window: {windows} %"
                     + ("; load-aware" if policy in LOAD_AWARE else "")))
    figure.notes.append(
        f"1 of 4 instances slow (v2: +1.5 s per call), open-loop page reloads at {RATE:.0f}/s "
        f"for {seconds:.0f} s per policy through the monolith (restarted per policy, so each "
        "policy starts knowing nothing about the slow instance).")
    return figure
