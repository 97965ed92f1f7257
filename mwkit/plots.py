"""Figures of how page reloads spread across instances, and what happened meanwhile.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot: no window
opens, no global state grows, and it works on a headless machine (Agg). In a notebook the
returned Figure shows itself (a :class:`Picture`); elsewhere :func:`save` writes a PNG.

A learner should read at a glance "three instances shared the load, then a slow canary
came, then it left": one colour per instance (the same in every plot and every run), failed
reloads in red on top, and a vertical line for each Directory event and each mark. In the
latency plot, a hollow marker around a reload says that Sherlock retried it, hedged it,
or ejected an instance on its way.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mwkit.traffic import Reload, label_for

# tab20 without its reds, greys and greens (red means failure, grey "left", green
# "registered"), with tab20b's indigo instead: the eight strong colours first, which
# colour_for hashes into, then their light twins for crowded figures.
PALETTE = ("#1f77b4", "#ff7f0e", "#393b79", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#9c9ede", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5")
STRONG = 8
FAILURES = {  # outcome: (legend label, face colour, hatch)
    "no_service": ("no service", "#f4a3a3", "///"),
    "error": ("error", "#d62728", "xx"),
    "timeout": ("timeout", "#3b0a0a", ".."),
}
EVENT_STYLES = {  # Directory event kind: (colour, line style, sign before the instance)
    "registered": ("#2ca02c", "--", "+"),
    "updated": ("#7f7f7f", "-.", "~"),
    "expired": ("#d62728", ":", "\u2212"),
    "deregistered": ("#7f7f7f", ":", "\u2212"),
}
#: What the monolith's Sherlock did for a reload (its options: see mwkit.sherlock.guards),
#: drawn around the reload's point: (Reload attribute, legend label, marker, size).
SHERLOCK_MARKS = (
    ("retried", "retried on another instance", "^", 70),
    ("hedged", "hedged: a second copy sent", "D", 55),
    ("ejected", "got an instance ejected", "*", 140),
)
MARK_STYLE = ("#000000", "-", "")
LANES = 4  # rows of event labels above the plot before they are allowed to overlap
DPI = 110


def colour_for(label: str) -> str:
    """The colour of ``label``: a hash into the strong colours, the same in every run.

    A hash, not the order of appearance: an instance keeps its colour in every plot, even
    when others come and go.
    """
    return PALETTE[zlib.crc32(label.encode()) % STRONG]


def colours_for(labels: Iterable[str]) -> dict[str, str]:
    """Distinct colours for the labels of one figure, each its :func:`colour_for` if free.

    When two labels hash to the same colour, the one that sorts first keeps it and the
    other takes the next free strong colour, then a light one; so colours stay stable
    while staying apart (up to 16 labels).
    """
    ordered = sorted(set(labels), key=lambda label: (PALETTE.index(colour_for(label)), label))
    taken: dict[str, str] = {}
    for label in ordered:
        start = PALETTE.index(colour_for(label))
        for step in range(len(PALETTE)):
            colour = PALETTE[(start + step) % STRONG if step < STRONG else step]
            if colour not in taken.values() or len(taken) >= len(PALETTE):
                taken[label] = colour
                break
    return taken


class Picture(Figure):
    """A Figure that shows itself in a notebook as a PNG, with no pyplot and no
    ``%matplotlib inline`` needed (IPython asks an object for ``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def new_figure(rows: int = 1, height_ratios: Sequence[float] | None = None,
               size: tuple[float, float] = (11, 4.5)) -> tuple[Figure, list[Axes]]:
    """A Figure with ``rows`` axes sharing x, on an Agg canvas (no GUI, no pyplot)."""
    figure = Picture(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": height_ratios})[:, 0]
    return figure, list(axes)


def figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    """Draw into ``ax`` when given (a dashboard's row), else into a new Figure."""
    if ax is not None:
        return ax.figure, ax
    figure, axes = new_figure()
    return figure, axes[0]


def empty_message(ax: Axes) -> None:
    ax.text(0.5, 0.5, "No page reloads recorded yet.\nStart PageReloads(...) and plot again.",
            ha="center", va="center", transform=ax.transAxes, fontsize=12, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


# -- calls per second ----------------------------------------------------------------------

def binned(records: Sequence[Reload], labels: dict[str, str] | None,
           bin_seconds: float) -> tuple[list[float], dict[str, list[int]], dict[str, list[int]]]:
    """Bin edges (s since the first reload) and counts per bin: per instance, per failure."""
    start = records[0].time
    bins = max(1, math.ceil((records[-1].time - start) / bin_seconds + 1e-9))
    lefts = [index * bin_seconds for index in range(bins)]
    answered: dict[str, list[int]] = {}
    failed: dict[str, list[int]] = {}
    for record in records:
        index = min(bins - 1, int((record.time - start) / bin_seconds))
        if record.ok:
            series = answered.setdefault(label_for(record.service_id, labels), [0] * bins)
        else:
            series = failed.setdefault(record.outcome, [0] * bins)
        series[index] += 1
    return lefts, answered, failed


def calls_per_second(records: Sequence[Reload], events: Sequence[dict] | None = None,
                     marks: Sequence | None = None, labels: dict[str, str] | None = None,
                     bin_seconds: float = 1.0, ax: Axes | None = None) -> Figure:
    """Stacked bars of reloads per second, one colour per instance, failures on top.

    ``events`` are the Directory's (``EventLog.events()``), ``marks`` the learner's
    (``EventLog.marks()``); ``labels`` names service ids (default: their first 8 characters).
    """
    figure, ax = figure_and_axes(ax)
    records = sorted(records, key=lambda record: record.time)
    if not records:
        empty_message(ax)
        return figure
    lefts, answered, failed = binned(records, labels, bin_seconds)
    colours = colours_for(answered)
    bottom = [0.0] * len(lefts)

    def stack(counts: list[int], label: str, **style) -> None:
        heights = [count / bin_seconds for count in counts]
        ax.bar(lefts, heights, width=bin_seconds, bottom=bottom, align="edge",
               label=f"{label} ({sum(counts)})", linewidth=0.4, **style)
        bottom[:] = [b + h for b, h in zip(bottom, heights, strict=True)]

    for label in sorted(answered):
        stack(answered[label], label, color=colours[label], edgecolor="white")
    for outcome, (label, colour, hatch) in FAILURES.items():
        if outcome in failed:
            stack(failed[outcome], label, color=colour, hatch=hatch, edgecolor="#3b0a0a")
    # The axis ends just after the last reload: the last bin is still filling (or the run
    # stopped in it), and drawn whole it would look like a drop in traffic.
    end = max(bin_seconds, records[-1].time - records[0].time + 0.1 * bin_seconds)
    headroom = 1.45 if events or marks else 1.08  # room for the event labels at the top
    ax.set_xlim(0, end)
    ax.set_ylim(0, max(bottom) * headroom + 0.5)
    ax.set_ylabel("page reloads per second")
    ax.set_xlabel("seconds since the first reload")
    ax.set_title("Which instance answered each page reload", loc="left")
    items = timeline(records[0].time, end, events, marks)
    legend(ax, items)
    draw_timeline(ax, items, text=True)
    return figure


# -- latency -------------------------------------------------------------------------------

def latency(records: Sequence[Reload], events: Sequence[dict] | None = None,
            marks: Sequence | None = None, labels: dict[str, str] | None = None,
            log: bool = True, ax: Axes | None = None) -> Figure:
    """Each reload's latency (s) over time, one colour per instance, with the 1 s line."""
    figure, ax = figure_and_axes(ax)
    records = sorted(records, key=lambda record: record.time)
    if not records:
        empty_message(ax)
        return figure
    start = records[0].time
    groups: dict[str, list[Reload]] = {}
    for record in records:
        key = label_for(record.service_id, labels) if record.ok else record.outcome
        groups.setdefault(key, []).append(record)
    colours = colours_for(key for key in groups if key not in FAILURES)
    for key in sorted(groups, key=lambda key: (key in FAILURES, key)):
        points = groups[key]
        style = ({"color": FAILURES[key][1], "marker": "x", "s": 22}
                 if key in FAILURES else {"color": colours[key], "marker": "o", "s": 12})
        ax.scatter([r.time - start for r in points], [r.latency for r in points],
                   label=FAILURES[key][0] if key in FAILURES else key, alpha=0.8,
                   linewidths=0.8 if key in FAILURES else 0, **style)
    draw_what_sherlock_did(ax, records, start)
    end = records[-1].time - start + 1
    ax.axhline(1.0, color="#555555", linewidth=0.8, linestyle="--")
    ax.annotate("1 s", (0, 1.0), xytext=(2, 2), textcoords="offset points", fontsize=8,
                color="#555555", va="bottom")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(min(min(r.latency for r in records) * 0.7, 0.5) or 1e-4,
                    max(max(r.latency for r in records) * 1.5, 2.0))
    draw_timeline(ax, timeline(start, end, events, marks), text=False)
    ax.set_ylabel("reload latency (s)")
    ax.set_xlabel("seconds since the first reload")
    ax.set_title("How long each page reload took", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="answered by", title_fontsize=8)
    return figure


def draw_what_sherlock_did(ax: Axes, records: Sequence[Reload], start: float) -> None:
    """A hollow black marker around each reload Sherlock retried, hedged, or that got an
    instance ejected (:data:`SHERLOCK_MARKS`); nothing when it did none of that."""
    for attribute, label, marker, size in SHERLOCK_MARKS:
        points = [r for r in records if getattr(r, attribute)]
        if points:
            ax.scatter([r.time - start for r in points], [r.latency for r in points],
                       marker=marker, s=size, facecolors="none", edgecolors="#000000",
                       linewidths=0.9, label=f"{label} ({len(points)})", zorder=3.5)


# -- both ----------------------------------------------------------------------------------

def dashboard(records: Sequence[Reload], events: Sequence[dict] | None = None,
              marks: Sequence | None = None, labels: dict[str, str] | None = None,
              bin_seconds: float = 1.0) -> Figure:
    """Calls per second above, latency below, on one time axis."""
    if not records:
        return calls_per_second(records)  # one panel with the message, not an empty one
    figure, (top, bottom) = new_figure(2, height_ratios=(3, 2), size=(11, 7.5))
    calls_per_second(records, events, marks, labels, bin_seconds, ax=top)
    latency(records, events, marks, labels, ax=bottom)
    top.set_xlabel("")
    top.tick_params(labelbottom=True)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG (the folder is made if needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


# -- events and marks ----------------------------------------------------------------------

def short_instance(event: dict) -> str:
    """``popularity-v1-1`` -> ``v1-1``: the service's name is in the title already."""
    instance, prefix = event["instance"], event["service"] + "-"
    return instance[len(prefix):] if instance.startswith(prefix) else instance


TimelineItem = tuple[float, str, tuple[str, str, str]]  # x, label, (colour, line style, sign)


def timeline(start: float, end: float, events: Sequence[dict] | None,
             marks: Sequence | None) -> list[TimelineItem]:
    """``(x, text, style)`` for each event and mark inside the plotted time window.

    Events of one kind within half a second of each other share one line and one label
    ("+ v1-1, v1-2, v1-3"), so a burst of registrations stays readable.
    """
    items: list[TimelineItem] = []
    for event in sorted(events or (), key=lambda event: event["time"]):
        x = event["time"] - start
        if not -0.5 <= x <= end:
            continue
        style = EVENT_STYLES.get(event["kind"], EVENT_STYLES["updated"])
        name = short_instance(event) + (" expired" if event["kind"] == "expired" else "")
        previous = items[-1] if items else None
        if previous and previous[2] == style and x - previous[0] < 0.5:
            items[-1] = (previous[0], f"{previous[1]}, {name}", style)
        else:
            items.append((max(x, 0.0), f"{style[2]}{name}", style))
    for mark in marks or ():
        x = mark.time - start
        if -0.5 <= x <= end:
            items.append((max(x, 0.0), mark.label, MARK_STYLE))
    return sorted(items, key=lambda item: item[0])


def draw_timeline(ax: Axes, items: list[TimelineItem], text: bool) -> None:
    """Vertical lines at events and marks; with ``text``, labels in lanes that avoid overlap."""
    for x, _, (colour, style, sign) in items:
        mark = (colour, style, sign) == MARK_STYLE  # under the events: both stay visible
        ax.axvline(x, color=colour, linestyle=style, linewidth=1.4 if mark else 1.1,
                   alpha=0.55 if mark else 1.0, zorder=2.9 if mark else 3)
    if not text or not items:
        return
    ax.figure.draw_without_rendering()  # settle the layout, so that text sizes are right
    renderer = ax.figure.canvas.get_renderer()
    lane_ends = [-math.inf] * LANES
    for x, label, (colour, style, _) in items:
        lane = next((i for i, lane_end in enumerate(lane_ends) if lane_end < x), None)
        if lane is None:
            lane = min(range(LANES), key=lane_ends.__getitem__)
        artist = ax.annotate(
            label, (x, 1.0), xycoords=("data", "axes fraction"),
            xytext=(2, -3 - 11 * lane), textcoords="offset points", va="top", ha="left",
            fontsize=7.5, color=colour, fontweight="bold" if style == "-" else "normal",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.8,
                  "edgecolor": "none"}, zorder=4, annotation_clip=False)
        box = artist.get_window_extent(renderer).transformed(ax.transData.inverted())
        lane_ends[lane] = box.x1 + 0.005 * (ax.get_xlim()[1] - ax.get_xlim()[0])


def legend(ax: Axes, items: list[TimelineItem]) -> None:
    """The series, then a key to the line styles of the events and marks drawn."""
    handles, names = ax.get_legend_handles_labels()
    drawn = {style for _, _, style in items}
    for name, style in [*EVENT_STYLES.items(), ("your marks", MARK_STYLE)]:
        if style in drawn:
            handles.append(Line2D([], [], color=style[0], linestyle=style[1]))
            names.append(name)
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, title="answered by", title_fontsize=8)


# -- the fault and policy lab (mwkit.lab) ---------------------------------------------------

LAB_PANELS = (  # row key, y label
    ("within_1s", "reloads within 1 s (%)"),
    ("failed", "failed reloads"),
    ("extra_calls", "extra calls (retries + hedges)"),
)


def lab_matrix(rows: Sequence[dict]) -> Figure:
    """The lab's rows (:func:`mwkit.lab.run_matrix`) as bars: one panel per measure (share
    within 1 s, failed reloads, extra calls), the faults along x, one bar per setting in
    the setting's own colour, the same in every panel."""
    faults = list(dict.fromkeys(row["fault"] for row in rows))
    settings = list(dict.fromkeys(row["setting"] for row in rows))
    colours = colours_for(settings)
    figure, axes = new_figure(len(LAB_PANELS), size=(11, 7.5))
    width = 0.8 / max(1, len(settings))
    for ax, (key, label) in zip(axes, LAB_PANELS, strict=True):
        for n, setting in enumerate(settings):
            cells = {row["fault"]: row[key] for row in rows if row["setting"] == setting}
            xs = [i + (n - (len(settings) - 1) / 2) * width for i, fault in enumerate(faults)
                  if fault in cells]
            ax.bar(xs, [cells[fault] for fault in faults if fault in cells], width,
                   color=colours[setting], label=setting)
        ax.set_ylabel(label)
    axes[0].set_ylim(0, 100)
    axes[0].axhline(99, color="#555555", linestyle="--", linewidth=1)
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize="small",
                   frameon=False)  # above the bars, never on them
    axes[-1].set_xticks(range(len(faults)), faults)
    return figure


# -- approaches side by side (mwkit.approaches.scenario) --------------------------------------

APPROACH_BARS = (  # summary row key, title, unit shown after the value
    ("first_new_s", "first call on a new instance (s)", " s"),
    ("failed_after_kill", "failed calls after the kill -9", ""),
    ("canary_share", "calls the slow canary answered (%)", " %"),
)
BAR_GREY = "#6f6f6f"


def approaches(records: dict[str, Sequence[Reload]], marks: Sequence, rows: Sequence[dict],
               labels: dict[str, str] | None = None, bin_seconds: float = 1.0) -> Figure:
    """The scenario's runs side by side: per approach (``records``: name -> its calls) a
    row of calls per second coloured by the instance that answered, with the scenario's
    ``marks``; below, the summary (``rows`` of :func:`mwkit.approaches.scenario.summarize`)
    as bars, one colour per approach: time to the first call on a new instance ("never"
    when none came), failed calls after the kill, the slow canary's share.

    ``labels`` names service ids (``popularity-v1-2`` is shown as ``v1-2``)."""
    names = list(records)
    short = {sid: name.removeprefix("popularity-") for sid, name in (labels or {}).items()}
    figure = Picture(figsize=(12, 2.2 * len(names) + 3.0), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(len(names) + 1, len(APPROACH_BARS),
                               height_ratios=[1.0] * len(names) + [1.3])
    first = None
    for index, name in enumerate(names):
        ax = figure.add_subplot(grid[index, :], sharex=first)
        first = first or ax
        calls_per_second(records[name], marks=marks, labels=short, bin_seconds=bin_seconds,
                         ax=ax)
        ax.set_title(name, loc="left", fontsize=10, fontweight="bold")
        ax.set_ylabel("calls/s")
        if index < len(names) - 1:
            ax.set_xlabel("")
    by_name = {row["approach"]: row for row in rows}
    for column, (key, title, unit) in enumerate(APPROACH_BARS):
        ax = figure.add_subplot(grid[len(names), column])
        values = [by_name.get(name, {}).get(key) for name in names]
        top = max([value for value in values if value is not None] or [1.0]) or 1.0
        # one grey for all: the colours above are instances', not approaches'
        ax.barh(range(len(names)), [top if value is None else value for value in values],
                color=["#ffffff" if value is None else BAR_GREY for value in values],
                edgecolor=BAR_GREY, hatch=["//" if value is None else "" for value in values])
        for y, value in enumerate(values):
            text = "never" if value is None else f"{value:.1f}{unit}" if unit == " s" \
                else f"{value:.0f}{unit}"
            ax.annotate(text, (top if value is None else value, y), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(range(len(names)), names if column == 0 else [""] * len(names),
                      fontsize=8)
        ax.invert_yaxis()  # the first approach on top, as in the rows above
        ax.set_xlim(0, top * 1.3)  # room for the value after the bar
        ax.set_title(title, loc="left", fontsize=9)
    return figure
