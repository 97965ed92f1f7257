"""The fault and policy lab: each of Sherlock's settings against one broken instance of four.

One *cell* of the lab is: restart the monolith with a Sherlock setting
(:meth:`mwkit.stack.Stack.use_sherlock`), break one popularity instance on purpose
(:meth:`mwkit.stack.Stack.inject`, see :mod:`mwkit.faults`), reload the page for a few
seconds, mend the instance (``clear``) and count what a visitor saw::

    row = run_cell(stack, {"policy": "peak_ewma", "outlier_5xx": 3}, ("fast-fail", {}))

A row says how many reloads answered within 1 s, how many failed, and how many *extra*
calls Sherlock made to popularity (a retry or a hedge is one call more than the reload
needed): the price of its shielding. :func:`run_matrix` runs every setting against every
fault; :func:`summary_table` prints the rows, :func:`mwkit.plots.lab_matrix` draws them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from mwkit.contract import Phase
from mwkit.settings import Settings
from mwkit.sherlock.guards import BUDGET_MIN_PER_SECOND, BUDGET_WINDOW, HEDGE_MIN_SAMPLES
from mwkit.traffic import Reload

LIMIT = 1.0  # seconds: a reload slower than this counts as slow
#: Reloads before the fault, not counted, at 20 a second: Sherlock has met all four, and
#: hedging has the answers it needs before it hedges at all (HEDGE_MIN_SAMPLES).
WARM_UP = HEDGE_MIN_SAMPLES + 5
#: Sherlock's settings a lab cell may set; the rest stay as use_sherlock leaves them.
SETTINGS = ("policy", "retries", "eject", "outlier_5xx", "retry_budget", "hedge", "deadline",
            "retry_5xx")
#: The lab's faults: a name for the table, the fault, its values.
FAULTS: dict[str, tuple[str, dict]] = {
    "slow": ("latency", {"seconds": 1.5}),
    "failing": ("errors", {"fraction": 0.5, "status": 503}),
    "fast-fail": ("fast-fail", {}),
    "hang": ("hang", {}),
}


def extra_calls(records: Sequence[Reload]) -> int:
    """Calls made beyond one a reload: every retry and every hedge."""
    return sum(record.attempts - 1 for record in records)


def row_of(name: str, fault: str, records: Sequence[Reload], faulty: str | None,
           settings: dict, counted_calls: int) -> dict:
    """What the visitors saw in one cell, and what it cost: one row of the lab's table.

    ``counted_calls``: the calls a retry budget counted meanwhile (warm-up included), so
    that the row can say how many extra calls the budget allowed."""
    n = len(records)
    extra = extra_calls(records)
    share = settings.get("retry_budget") or 0
    return {
        "setting": name, "fault": fault, "reloads": n,
        "within_1s": 100.0 * sum(r.ok and r.latency <= LIMIT for r in records) / max(1, n),
        "failed": sum(not record.ok for record in records),
        "extra_calls": extra,
        "budget": budget_allows(share, counted_calls, records) if share else None,
        "ejections": sum(record.ejected for record in records),
        "instance": faulty,
        "records": list(records),  # for a plot of the cell (plots.latency, calls_per_second)
    }


def budget_allows(share: float, calls: int, records: Sequence[Reload]) -> int:
    """The most extra calls a retry budget of ``share`` lets through (Finagle's rule, see
    :class:`mwkit.sherlock.guards.RetryBudget`): ``share`` of the calls, plus one a second
    for every second of the run and of one window before it."""
    seconds = (records[-1].time - records[0].time) if records else 0.0
    return int(share * calls + BUDGET_MIN_PER_SECOND * (seconds + BUDGET_WINDOW))


def name_of(settings: dict) -> str:
    """A short name for a setting: its policy and the options it turns on."""
    options = [f"{key}={value}" for key, value in settings.items() if key != "policy"]
    return " ".join([settings.get("policy", "default"), *options])


def use(stack, settings: dict) -> list[Reload]:
    """Restart the monolith with ``settings`` (a setting left out is the kit's default, so
    that cells do not inherit from each other) and reload the page :data:`WARM_UP` times, so
    that its new Sherlock has met the instances while all were healthy (and measured them:
    without that, a hedge-on setting would meet the fault unable to hedge yet)."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not a Sherlock setting: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(SETTINGS)}")
    defaults = Settings()
    stack.use_sherlock(**{key: settings.get(key, getattr(defaults, key)) for key in SETTINGS})
    return stack.reloads(rate=20, count=WARM_UP).run()


def favourite(records: Sequence[Reload]) -> str | None:
    """The instance that answered most of ``records``: the one Sherlock likes best."""
    answered = Counter(record.instance for record in records if record.instance)
    return answered.most_common(1)[0][0] if answered else None


def run_cell(stack, settings: dict, fault: str, seconds: float = 6.0, rate: float = 10.0) -> dict:
    """Set the monolith's Sherlock to ``settings`` (see :func:`use`), inject ``fault`` (a
    name of :data:`FAULTS`) into the instance it liked best while all were healthy, reload
    the page ``rate`` times a second for ``seconds``, clear the fault, return the row.

    Breaking Sherlock's favourite makes every policy meet the fault at once: a latency-aware
    policy that never tried an instance would otherwise never see it fail. The fault is
    cleared even when the reloads fail."""
    kind, values = FAULTS[fault]
    warm = use(stack, settings)
    instance = favourite(warm) or popularity_instances(stack)[0]
    stack.inject(instance, kind, **values)
    try:
        records = stack.reloads(rate=rate, duration=seconds).run()
    finally:
        stack.clear(instance)
    return row_of(name_of(settings), fault, records, instance, settings,
                  len(warm) + len(records))


def retry_storm(stack, settings: dict, crashed: int = 3, seconds: float = 3.0,
                rate: float = 10.0) -> dict:
    """A failing service: ``crashed`` of the instances killed (``kill -9``) while the
    Directory still lists them, until their leases run out. Every call sent to a dead one
    is refused and, with ``retries``, sent again: how many calls did the reloads cost?
    Afterwards the dead instances' records are removed and the service scaled back."""
    instances = popularity_instances(stack)
    warm = use(stack, settings)
    for instance in instances[:crashed]:
        stack.inject(instance, "crash")
    try:
        records = stack.reloads(rate=rate, duration=seconds).run()
    finally:
        for instance in instances[:crashed]:
            stack.clear(instance)
        stack.scale(len(instances))
    return row_of(name_of(settings), f"{crashed} crashed", records, None, settings,
                  len(warm) + len(records))


def popularity_instances(stack) -> list[str]:
    """The live popularity instances' ids, in order."""
    return sorted(row.instance for row in stack.status()
                  if row.service == "popularity" and row.phase in (Phase.LIVE, Phase.REGISTERED))


def run_matrix(stack, settings: Sequence[dict], faults: Sequence[str], seconds: float = 6.0,
               rate: float = 10.0, progress: Callable[[str], None] = print) -> list[dict]:
    """Every setting against every fault: one row each, a progress line after each."""
    rows = []
    for fault in faults:
        for setting in settings:
            row = run_cell(stack, setting, fault, seconds=seconds, rate=rate)
            progress(f"{row['fault']}, {row['setting']}: {row['within_1s']:.1f} % within 1 s, "
                     f"{row['failed']} failed, {row['extra_calls']} extra calls")
            rows.append(row)
    return rows


def summary_table(rows: Sequence[dict]) -> str:
    """The rows as a fixed-width table a notebook prints ("budget": the most extra calls
    the retry budget allowed, when there was one)."""
    width = max([len("setting"), *(len(row["setting"]) for row in rows)])
    head = (f"{'fault':<9} {'setting':<{width}} {'reloads':>7} {'<= 1 s':>7} {'failed':>6} "
            f"{'extra':>5} {'budget':>6} {'ejected':>7}")
    lines = [head, "-" * len(head)]
    for row in rows:
        budget = "" if row["budget"] is None else row["budget"]
        lines.append(f"{row['fault']:<9} {row['setting']:<{width}} {row['reloads']:>7} "
                     f"{row['within_1s']:>6.1f}% {row['failed']:>6} {row['extra_calls']:>5} "
                     f"{budget:>6} {row['ejections']:>7}")
    return "\n".join(lines)
