"""Figures from synthetic reloads and events: what they draw, and that they save as PNG."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys

import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer

from mwkit import plots
from mwkit.plots import PALETTE, calls_per_second, colour_for, colours_for, dashboard, latency
from mwkit.traffic import Mark, Reload

T0 = 1_700_000_000.0
A, B, C = ("aaaaaaaa-1111-4000-8000-000000000001", "bbbbbbbb-2222-4000-8000-000000000002",
           "cccccccc-3333-4000-8000-000000000003")


def reload(at: float, service_id: str | None, seconds: float = 0.01,
           outcome: str = "ok") -> Reload:
    return Reload(T0 + at, seconds, service_id, seconds * 1000, outcome, 200)


def story() -> tuple[list[Reload], list[dict], list[Mark]]:
    """Two seconds without service, three instances taking turns, a slow canary, a kill."""
    records = [reload(0.1 * i, None, 0.004, "no_service") for i in range(20)]
    for i in range(20, 100):
        service = (A, B, C)[i % 3] if i < 60 or i % 3 else "dddddddd-canary"
        records.append(reload(0.1 * i, service, 1.5 if service.startswith("d") else 0.01))
    records.append(reload(9.95, None, 2.0, "timeout"))

    def event(at, kind, instance):
        return {"version": 0, "time": T0 + at, "kind": kind, "service": "popularity",
                "instance": instance, "address": "127.0.0.1:1"}

    events = [event(1.9, "registered", "popularity-v1-1"),
              event(1.95, "registered", "popularity-v1-2"),
              event(2.0, "registered", "popularity-v1-3"),
              event(5.9, "registered", "popularity-v2-1"),
              event(9.0, "deregistered", "popularity-v2-1"),
              event(-50, "expired", "popularity-v0-1")]  # long before: not drawn
    marks = [Mark(T0 + 1.8, "scale to 3"), Mark(T0 + 5.8, "add v2 canary")]
    return records, events, marks


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def bars(ax) -> dict[str, BarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}


def test_stacked_counts_match_the_records(tmp_path):
    records, events, marks = story()
    figure = calls_per_second(records, events, marks, labels={A: "popularity-v1-1"})
    ax = figure.axes[0]
    stacks = bars(ax)
    # i = 20..59 take turns A, B, C by i % 3 (13, 13, 14); from 60 the canary takes i % 3 == 0
    expected = {"popularity-v1-1": 13, "bbbbbbbb": 26, "cccccccc": 27, "dddddddd": 14,
                "no service": 20, "timeout": 1}
    assert {label.rsplit(" (", 1)[0]: int(label.rsplit("(", 1)[1][:-1])
            for label in stacks} == expected
    for label, container in stacks.items():
        heights = [patch.get_height() for patch in container]
        assert len(heights) == 10  # 10 one-second bins
        assert sum(heights) == expected[label.rsplit(" (", 1)[0]]
    no_service = [p.get_height() for p in stacks["no service (20)"]]
    assert no_service == [10, 10] + [0] * 8
    # each bin stacks to the reloads that started in it, failures on top
    tops = [max(p.get_y() + p.get_height() for c in stacks.values() for p in c
                if p.get_x() == second) for second in range(10)]
    assert tops == [10] * 9 + [11]
    assert ax.get_xlim() == pytest.approx((0, 10.05))  # ends just after the last reload
    timeout = stacks["timeout (1)"][9]
    assert (timeout.get_y(), timeout.get_height()) == (10, 1)
    assert png_size(plots.save(figure, tmp_path / "calls.png")) == (1210, 495)


def test_per_second_scale_with_wider_bins():
    records, _, _ = story()
    stacks = bars(calls_per_second(records, bin_seconds=2.0).axes[0])
    heights = [p.get_height() for p in stacks["no service (20)"]]
    assert heights == [10, 0, 0, 0, 0]  # 20 reloads in the first 2 s: 10 per second


def test_event_lines_and_labels():
    records, events, marks = story()
    ax = calls_per_second(records, events, marks).axes[0]
    vertical = sorted((round(line.get_xdata()[0], 6), to_hex(line.get_color()),
                       line.get_linestyle()) for line in ax.lines)
    assert vertical == [
        (1.8, "#000000", "-"), (1.9, "#2ca02c", "--"),  # three registrations: one line
        (5.8, "#000000", "-"), (5.9, "#2ca02c", "--"), (9.0, "#7f7f7f", ":")]
    texts = sorted(text.get_text() for text in ax.texts)
    assert texts == ["+v1-1, v1-2, v1-3", "+v2-1", "add v2 canary", "scale to 3",
                     "\u2212v2-1"]
    labels = [text for text in ax.texts if text.get_text() in ("scale to 3", "+v1-1, v1-2, v1-3")]
    boxes = [text.get_window_extent() for text in labels]
    assert not boxes[0].overlaps(boxes[1]), "labels of close events must not overlap"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[-3:] == ["registered", "deregistered", "your marks"]


def test_latency_scatter_and_the_one_second_line():
    records, events, marks = story()
    ax = latency(records, events, marks).axes[0]
    points = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert sum(len(offsets) for offsets in points.values()) == len(records)
    assert {label: len(offsets) for label, offsets in points.items()}["dddddddd"] == 14
    assert all(y == 1.5 for _, y in points["dddddddd"])
    assert points["timeout"][0][0] == pytest.approx(9.95)
    assert ax.get_yscale() == "log"
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.lines)
    assert latency(records, log=False).axes[0].get_yscale() == "linear"


def test_retried_hedged_and_ejected_reloads_are_marked_in_the_latency_plot():
    """Each has its own hollow marker and legend line; a run with none of them has none."""
    records, _, _ = story()
    plain = {c.get_label() for c in dashboard(records).axes[1].collections}
    assert not any(label.startswith(("retried", "hedged", "got an")) for label in plain)
    records[30] = dataclasses.replace(records[30], attempts=2)  # retried
    records[31] = dataclasses.replace(records[31], attempts=2, ejected=True)
    records[40] = dataclasses.replace(records[40], attempts=2, hedged=True)
    ax = dashboard(records).axes[1]
    marked = {c.get_label(): c for c in ax.collections}
    retried = marked["retried on another instance (2)"]
    hedged = marked["hedged: a second copy sent (1)"]
    ejected = marked["got an instance ejected (1)"]
    assert [tuple(p) for p in hedged.get_offsets()] == [(4.0, records[40].latency)]
    assert len(retried.get_offsets()) == 2 and len(ejected.get_offsets()) == 1
    shapes = {len(c.get_paths()[0].vertices) for c in (retried, hedged, ejected)}
    assert len(shapes) == 3  # three marker shapes, told apart without colour
    assert all(to_hex(c.get_edgecolor()[0]) == "#000000" and len(c.get_facecolor()) == 0
               for c in (retried, hedged, ejected))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "hedged: a second copy sent (1)" in labels


def test_dashboard_png(tmp_path):
    records, events, marks = story()
    figure = dashboard(records, events, marks)
    top, bottom = figure.axes[:2]
    assert top.get_shared_x_axes().joined(top, bottom)
    path = plots.save(figure, tmp_path / "figures" / "dashboard.png")
    assert path.exists() and png_size(path) == (1210, 825)
    assert path.stat().st_size > 30_000


@pytest.mark.parametrize("draw", [calls_per_second, latency, dashboard])
def test_no_records_gives_a_message_not_a_crash(draw, tmp_path):
    figure = draw([])
    texts = [text.get_text() for ax in figure.axes for text in ax.texts]
    assert any("No page reloads recorded yet" in text for text in texts)
    assert len(figure.axes) == 1  # no empty second panel
    assert png_size(plots.save(figure, tmp_path / "empty.png"))[0] == 1210


def test_colours_stable_across_runs_and_distinct():
    ids = [f"popularity-v1-{n}" for n in range(1, 9)]
    here = [colour_for(label) for label in ids]
    assert here == [colour_for(label) for label in ids]
    code = ("from mwkit.plots import colour_for; "
            f"print(' '.join(colour_for(x) for x in {ids!r}))")
    for seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."}, check=True)
        assert other.stdout.split() == here
    assert set(here) <= set(PALETTE[:plots.STRONG])
    spread = colours_for(ids)
    assert len(set(spread.values())) == 8
    # failures are red, registrations green, departures grey: no instance wears them
    assert not {"#d62728", "#2ca02c", "#7f7f7f"} & set(PALETTE)
    assert colours_for(ids) == spread  # the same figure, the same colours
    lone = ids[3]
    assert colours_for([lone]) == {lone: colour_for(lone)}
    many = colours_for(f"id-{n}" for n in range(16))
    assert len(set(many.values())) == 16


def test_a_figure_shows_itself_in_a_notebook_without_pyplot():
    """IPython displays objects through _repr_png_: no `%matplotlib inline` needed."""
    from IPython.core.formatters import PNGFormatter

    png = PNGFormatter()(plots.calls_per_second([]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def lab_row(setting: str, fault: str, within: float, failed: int, extra: int) -> dict:
    return {"setting": setting, "fault": fault, "within_1s": within, "failed": failed,
            "extra_calls": extra}


def test_lab_matrix_draws_one_bar_per_setting_and_fault_in_each_panel(tmp_path):
    rows = [lab_row("round_robin", "slow", 75.0, 0, 0), lab_row("peak_ewma", "slow", 99.0, 0, 2),
            lab_row("round_robin", "fast-fail", 75.0, 15, 0),
            lab_row("peak_ewma", "fast-fail", 60.0, 24, 0)]
    figure = plots.lab_matrix(rows)
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == [label for _, label in plots.LAB_PANELS]
    assert [tick.get_text() for tick in axes[-1].get_xticklabels()] == ["slow", "fast-fail"]
    for ax, key in zip(axes, ("within_1s", "failed", "extra_calls"), strict=True):
        containers = {c.get_label(): c for c in ax.containers}
        assert set(containers) == {"round_robin", "peak_ewma"}
        for setting, container in containers.items():
            heights = [bar.get_height() for bar in container]
            assert heights == [row[key] for row in rows if row["setting"] == setting]
            colours = {to_hex(bar.get_facecolor()) for bar in container}
            assert colours == {colours_for(["round_robin", "peak_ewma"])[setting]}
        ps = [bar.get_x() for c in ax.containers for bar in c]
        assert len(set(ps)) == 4  # no two bars on top of each other
    path = plots.save(figure, tmp_path / "lab.png")
    assert png_size(path)[0] > 0
