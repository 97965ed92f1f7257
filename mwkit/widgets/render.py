"""The control panel's pictures as plain values: HTML, SVG and PNG bytes.

The view puts these into widgets; keeping them here, as functions of the model's data,
lets a test read the table or the topology without a browser, and keeps the view thin.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

from mwkit import plots
from mwkit.traffic import Reload, instance_labels, label_for

PHASE_COLOURS = {  # how far an instance is on its way in (or out)
    "registered": "#2ca02c",
    "live": "#98c379",
    "starting": "#f0ad4e",
    "initializing": "#f0ad4e",
    "checking-out": "#f0ad4e",
    "unhealthy": "#e8743b",
    "draining": "#9e9e9e",
    "stopping": "#9e9e9e",
    "stopped": "#9e9e9e",
    "failed": "#d62728",
}
UNKNOWN_PHASE = "#bdbdbd"
FONT = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px;"


def phase_colour(phase: str) -> str:
    return PHASE_COLOURS.get(phase, UNKNOWN_PHASE)


def instance_colours(records: Sequence[Reload], instances: Sequence[str]) -> dict[str, str]:
    """Each instance's colour as the plot of ``records`` draws it.

    The plot gives colours with :func:`mwkit.plots.colours_for` over the instances that
    answered; the same call here keeps the table and the plot in step. Instances that have
    not answered yet take their own hashed colour.
    """
    labels = instance_labels(records)
    answered = {label_for(r.service_id, labels) for r in records if r.ok}
    colours = plots.colours_for(answered)
    return {name: colours.get(name) or plots.colour_for(name) for name in instances}


def short(instance: str, service: str = "popularity") -> str:
    """``popularity-v1-2`` -> ``v1-2``."""
    return instance.removeprefix(service + "-")


# -- the instance table --------------------------------------------------------------------

def instance_table(rows: Sequence, colours: dict[str, str]) -> str:
    """An HTML table of ``InstanceStatus`` rows: instance, tag, commit, address, phase."""
    if not rows:
        return (f'<div class="mwkit-instances-empty" style="{FONT} color: #666; '
                'padding: 6px;">No popularity instance runs: move the slider.</div>')
    cell = "padding: 2px 10px; border-bottom: 1px solid #e6e6e6; text-align: left;"
    head = "".join(f'<th style="{cell} color: #555;">{title}</th>'
                   for title in ("instance", "tag", "commit", "address", "phase"))
    lines = []
    for row in rows:
        swatch = (f'<span style="display: inline-block; width: 10px; height: 10px; '
                  f'margin-right: 6px; background: {colours.get(row.instance, UNKNOWN_PHASE)};'
                  '"></span>')
        state = (f'<span style="color: white; background: {phase_colour(row.phase)}; '
                 f'border-radius: 8px; padding: 0 7px;">{html.escape(row.phase)}</span>')
        tip = f' title="{html.escape(row.reason)}"' if row.reason else ""
        values = (swatch + html.escape(row.instance), html.escape(row.tag),
                  f"<code>{html.escape(row.commit or '-')}</code>",
                  html.escape(row.address or "-"), state)
        cells = "".join(f'<td style="{cell}">{value}</td>' for value in values)
        lines.append(f'<tr data-instance="{html.escape(row.instance)}" '
                     f'data-phase="{html.escape(row.phase)}"{tip}>{cells}</tr>')
    return (f'<table class="mwkit-instance-table" style="{FONT} border-collapse: collapse;">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>')


# -- the topology picture ------------------------------------------------------------------

def box(x: float, y: float, width: float, height: float, fill: str, text: str,
        stroke: str = "#444", text_colour: str = "#222", dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" fill="{fill}" '
            f'stroke="{stroke}"{dash}/>'
            f'<text x="{x + width / 2}" y="{y + height / 2 + 4}" text-anchor="middle" '
            f'fill="{text_colour}">{html.escape(text)}</text>')


def line(x1: float, y1: float, x2: float, y2: float, colour: str = "#888",
         dashed: bool = False, width: float = 1.5) -> str:
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
            f'stroke-width="{width}"{dash}/>')


def topology_svg(rows: Sequence, colours: dict[str, str], slots: int = 6) -> str:
    """Monolith -> Sherlock -> each instance, the Directory beside: an inline SVG.

    Solid lines are the calls Sherlock can route (to registered instances); the dashed
    ones are the Directory's side: Watsons register instances, Sherlock gets the pushes.
    Each instance box has its state's colour and, at its left edge, its plot colour.
    """
    width, height = 470, 250
    left, right = 300, 460  # the instances' column
    row_height = (height - 20) / max(slots, len(rows), 1)
    middle = height / 2 - 30
    parts = [f'<svg class="mwkit-topology" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'style="{FONT}">',
             box(4, middle - 22, 110, 44, "#eef3fb", "lobsters /popular"),
             line(114, middle, 150, middle, "#444"),
             box(150, middle - 22, 90, 44, "#fff7e0", "Sherlock"),
             box(150, height - 52, 90, 40, "#f3eefb", "Directory", dashed=True),
             line(195, height - 52, 195, middle + 22, "#7a5aa8", dashed=True, width=1.2),
             f'<text x="201" y="{(height - 52 + middle + 22) / 2 + 4}" fill="#7a5aa8" '
             'font-size="10">push</text>']
    if not rows:
        parts.append(f'<text x="{left}" y="{middle + 4}" fill="#999">no popularity instances'
                     '</text>')
    for index, row in enumerate(rows):
        y = 10 + index * row_height
        centre = y + (row_height - 6) / 2
        colour = phase_colour(row.phase)
        routed = row.phase == "registered"
        parts.append(line(240, middle, left, centre, colour if routed else "#cccccc",
                          dashed=not routed, width=2 if routed else 1.2))
        parts.append(line(240, height - 32, left, centre, "#c9b8e0", dashed=True, width=0.8))
        parts.append(box(left, y, right - left, row_height - 6, colour,
                         f"{short(row.instance)}  {row.phase}", stroke=colour,
                         text_colour="white"))
        parts.append(f'<rect x="{left}" y="{y}" width="8" height="{row_height - 6}" '
                     f'fill="{colours.get(row.instance, UNKNOWN_PHASE)}"/>')
    parts.append("</svg>")
    return "".join(parts)


# -- the live plot -------------------------------------------------------------------------

def plot_png(records: Sequence[Reload], events: Sequence[dict] = (), marks: Sequence = (),
             size: tuple[float, float] = (9.0, 3.3), dpi: int = 80) -> bytes:
    """:func:`mwkit.plots.calls_per_second` of ``records`` as PNG bytes."""
    figure, (ax,) = plots.new_figure(size=size)
    plots.calls_per_second(records, events, marks, instance_labels(records), ax=ax)
    if records:
        ax.set_title(f"Which instance answered each page reload (last "
                     f"{records[-1].time - records[0].time:.0f} s)", loc="left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# -- the active faults ---------------------------------------------------------------------

def fault_html(fault) -> str:
    """One active fault (:class:`mwkit.faults.Fault`): where, which, and what it does."""
    where = short(fault.instance) if fault.instance else "the stack"
    return (f'<span class="mwkit-fault" style="{FONT}"><b>{html.escape(where)}</b> '
            f"{html.escape(fault.kind)}: {html.escape(fault.sentence)}</span>")


# -- the status line -----------------------------------------------------------------------

def status_html(counts: dict[str, int], rows: Sequence, records: Sequence[Reload],
                doing: str | None, error: str | None, traffic_on: bool) -> str:
    """One line: wanted and registered per tag, the recent reloads, what runs, the error."""
    registered = {tag: sum(1 for r in rows if r.tag == tag and r.phase == "registered")
                  for tag in counts}
    unserved = sum(1 for record in records if record.outcome == "no_service")
    failed = sum(1 for record in records if not record.ok) - unserved
    parts = [f"<b>v1</b> {counts.get('v1', 0)} wanted, {registered.get('v1', 0)} registered",
             f"<b>v2 canary</b> {'on' if counts.get('v2') else 'off'}",
             (f"<b>reloads</b> {len(records)} in the window: "
              f'<span style="color: {"#b35c5c" if unserved else "#2ca02c"}">{unserved} found '
              f'no service</span>, <span style="color: {"#d62728" if failed else "#2ca02c"}">'
              f"{failed} failed</span>" if traffic_on else "<b>reloads</b> off")]
    if doing:
        parts.append(f'<span style="color: #b8860b">working: {html.escape(doing)}\u2026</span>')
    text = " &nbsp;\u00b7&nbsp; ".join(parts)
    if error:
        text += (f'<div style="color: #d62728; white-space: pre-wrap;">'
                 f'{html.escape(error)}</div>')
    return f'<div class="mwkit-status" style="{FONT} padding: 4px 2px;">{text}</div>'
