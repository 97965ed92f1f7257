"""Figure 11: four ways to find popularity through one scenario, side by side (notebook 07c).

Pure DNS (dnsmasq, records for every deployed instance, a caching resolver), DNS with
health (fed from the Directory, SRV records), HAProxy reloaded on every change (debounced)
and kept live through its runtime API, and Sherlock's push, each calling popularity
``RATE`` times a second, all at once, on the same instances, through the same events
(:func:`mwkit.approaches.scenario.run_scenario`): one instance; scale 1 -> 3; ``kill -9``
of the oldest; the slow v2 canary added; removed. Measured per approach: seconds from a
new instance's registration to its first call (one sample per new instance), calls failed
from the kill to the canary, the canary's share of the calls while it was registered, and
the approach's own costs (DNS queries, record updates, reloads, extra hops, pushes,
retries).

The target is the kit's claim for Sherlock: no call fails after the kill (a refused call
is retried on another instance). The others are measured, not judged. The figure itself
(:func:`mwkit.plots.approaches`) is written as a PNG, by default to
``benchmarks/raw/fig11_approaches.png`` (ignored by Git, as the raw samples).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Figure, Metric
from mwkit import plots
from mwkit.approaches import scenario
from mwkit.approaches.scenario import Phases
from mwkit.stack import Stack

HERE = Path(__file__).resolve().parent
PNG = HERE / "raw" / "fig11_approaches.png"
TTL = 5  # seconds a DNS answer may be cached: the notebook's
QUICK = Phases()  # about half a minute, as in the notebook
FULL = Phases(warm_up=3.0, scaled=15.0, killed=15.0, canary=15.0, after=5.0)


def approach_metrics(row: dict, delays: dict[str, float | None], phases: Phases) -> list[Metric]:
    """One approach's row as metrics; a new instance that got no call within its phase
    counts the phase's length (a lower bound), and says so."""
    name = row["approach"]
    never = sum(delay is None for delay in delays.values())
    sherlock = name == "Sherlock (push)"
    metrics = [
        Metric(f"{name}: first call on a new instance", "s",
               [phases.scaled if delay is None else delay for delay in delays.values()],
               per="new instance", note=f"{never} got no call within the phase's "
               f"{phases.scaled:.0f} s (counted as that)" if never else ""),
        Metric(f"{name}: failed calls after the kill", "calls", [row["failed_after_kill"]],
               target="0" if sherlock else "",
               check=(lambda summary: summary["max"] == 0) if sherlock else None),
        Metric(f"{name}: calls the slow canary answered", "%", [row["canary_share"] or 0.0],
               note=f"{row['calls']} calls in all, {row['failed']} failed"),
    ]
    metrics += [Metric(f"{name}: {cost}", "count", [value])
                for cost, value in row["costs"].items()]
    return metrics


def run(quick: bool, scratch: Path, runtime: str = "process", png: Path = PNG) -> Figure:
    figure = Figure(11, "approaches: pure DNS, DNS with health, HAProxy (reload, runtime "
                        "API) and Sherlock through one scenario")
    phases = QUICK if quick else FULL
    with Stack(scratch / f"stack-{runtime}", runtime=runtime,
               progress=lambda line: None) as stack:
        approaches, missing = scenario.the_four(stack, ttl=TTL)
        result = scenario.run_scenario(stack, approaches, phases, progress=lambda line: None)
    rows = scenario.summarize(result)
    for row in rows:
        delays = scenario.first_calls(result.records[row["approach"]], result.new)
        figure.add(*approach_metrics(row, delays, phases))
    picture = plots.approaches(result.records, result.marks, rows, result.labels)
    figure.notes += [f"left out: {sentence}" for sentence in missing]
    skipped = {name: count for name, count in result.skipped.items() if count}
    if skipped:  # the open loop's bound: too many calls of one approach waited at once
        figure.notes.append(f"calls not sent, too many waiting: {skipped}")
    figure.notes.append(
        f"{len(rows)} approaches at once on {runtime}, {phases.rate:.0f} calls/s each, DNS "
        f"TTL {TTL} s; phases (s): one instance {phases.warm_up:.0f}, three "
        f"{phases.scaled:.0f}, after the kill {phases.killed:.0f}, with the canary "
        f"{phases.canary:.0f}, after it {phases.after:.0f}. The figure: "
        f"{plots.save(picture, png)}")
    return figure
