"""The end-to-end demo, as the original Microwizard tutorial told it, in about a minute.

Open ``/popular`` with no service (NO SERVICES AVAILABLE), launch one popularity v1,
scale to three while reloading (watch the calls spread), add the slow v2 canary beside
them (some reloads turn slow), remove it, kill one v1 instance hard (no reload is lost:
Sherlock retries on another and ejects the dead one). Then plot what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mwkit import plots
from mwkit.settings import Settings
from mwkit.stack import Stack
from mwkit.traffic import format_table, instance_labels, summarize, to_markdown

MAX_RELOAD_SECONDS = 180  # a bound on the traffic, whatever happens to the steps


@dataclass(frozen=True)
class Step:
    label: str  # what the plot marks
    action: Callable[[Stack], object]
    watch: float  # seconds of reloads after the action, before the next step


STEPS = (
    Step("no service yet", lambda stack: None, 2.0),
    Step("1 x v1", lambda stack: stack.scale(1), 4.0),
    Step("scale to 3", lambda stack: stack.scale(3), 5.0),
    Step("add v2 canary", lambda stack: stack.scale(1, tag="v2", ref="v2"), 6.0),
    Step("remove canary", lambda stack: stack.scale(0, tag="v2"), 4.0),
    Step("kill -9 one v1", lambda stack: stack.wizard.svkill("v1", now=True), 5.0),
)


@dataclass(frozen=True)
class DemoResult:
    picture: Path
    table: str
    summary_path: Path
    reloads: int
    failed: int


def run_demo(settings: Settings | None = None, output: Path | str = "demo-output",
             rate: float = 10.0, pace: float = 1.0,
             progress: Callable[[str], None] = print) -> DemoResult:
    """Run every step under steady page reloads; write the picture and the table.

    ``settings`` (default ``Settings.from_env()``) say where and how the stack runs;
    ``pace`` scales how long each step is watched (0.5: twice as fast, for tests).
    """
    output = Path(output)
    started = time.monotonic()
    with Stack(settings=settings, progress=progress) as stack:
        events = stack.events()
        with stack.reloads(rate=rate, duration=MAX_RELOAD_SECONDS) as reloads:
            for step in STEPS:
                progress(f"--- {step.label} ---")
                events.mark(step.label)
                step.action(stack)
                time.sleep(step.watch * pace)
        events.poll()
        records = reloads.records()
    labels = instance_labels(records)
    rows = summarize(records, labels)
    picture = plots.save(plots.dashboard(records, events.events(), events.marks(), labels),
                         output / "demo.png")
    summary_path = output / "summary.md"
    summary_path.write_text(f"# mwkit demo ({stack.runtime.name}, {stack.database}, "
                            f"{stack.policy})\n\n"
                            f"{to_markdown(rows)}\n")
    table = format_table(rows)
    progress(f"\n{table}\n")
    progress(f"demo finished in {time.monotonic() - started:.0f} s; "
             f"the picture is {picture.resolve()}, the table {summary_path.resolve()}")
    return DemoResult(picture, table, summary_path, len(records),
                      sum(not r.ok for r in records))
