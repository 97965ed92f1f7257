"""Draw docs/architecture.svg: the parts of mwkit and the calls between them.

The picture is code so that it changes with the kit and regenerates byte for byte
(tests/unit/test_architecture_svg.py checks it). Coordinates are on a 112 x 66 grid;
every arrow is a polyline with a head, routed so that no two lines share a label.

    .venv/bin/python scripts/draw_architecture.py            # writes docs/architecture.svg
    .venv/bin/python scripts/draw_architecture.py out.png    # any format matplotlib knows
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.path import Path as Polyline  # noqa: E402

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "architecture.svg"
CREATOR = "scripts/draw_architecture.py with matplotlib "

# One colour per role, the same as in the notebooks' words: routing, discovery, deploying.
INK, MUTED = "#222222", "#666666"
MONOLITH, SHERLOCK = "#fdf1dc", "#f6c26b"
DIRECTORY, WATSON = "#dbe8f7", "#8fb8e8"
INSTANCE, APP = "#f2f2f2", "#ffffff"
WIZARD, DATA = "#e3f1dc", "#ececec"
CALLS, DISCOVERY, DEPLOY = "#b36b00", "#2a6bb5", "#3d8a2e"

# 7.9 in = 760 px: a notebook's output area holds it without a scrollbar. Sizes below are
# written for a 10 in drawing and scaled by pt().
WIDTH = 7.9


def pt(size: float) -> float:
    return size * WIDTH / 10


def box(ax, x0, y0, x1, y1, text, fill, *, bold=False, size=12, dashed=False, va="center"):
    """A rounded box from (x0, y0) to (x1, y1) with ``text`` centred (or at its top)."""
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0,
                                boxstyle="round,pad=0,rounding_size=1.2",
                                facecolor=fill, edgecolor=MUTED if dashed else INK,
                                linestyle="--" if dashed else "-", linewidth=pt(1.2)))
    y = (y0 + y1) / 2 if va == "center" else y1 - 1.2
    ax.text((x0 + x1) / 2, y, text, ha="center", va=va, fontsize=pt(size), color=INK,
            fontweight="bold" if bold else "normal", linespacing=1.3)


def arrow(ax, points, colour, label=None, at=None, *, ha="center"):
    """A polyline through ``points`` ending in a head; ``label`` written at ``at``."""
    ax.add_patch(FancyArrowPatch(path=Polyline(points), arrowstyle=f"-|>,head_length="
                                 f"{pt(7)},head_width={pt(3.5)}", color=colour,
                                 linewidth=pt(1.6),
                                 shrinkA=0, shrinkB=0))
    if label:
        ax.text(*at, label, ha=ha, va="center", fontsize=pt(11), color=colour,
                fontweight="bold", linespacing=1.25)


def draw() -> plt.Figure:
    fig = plt.figure(figsize=(WIDTH, WIDTH * 0.59))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 112)
    ax.set_ylim(-1, 65)
    ax.axis("off")

    # The monolith with Sherlock inside it, and the database both sides read.
    box(ax, 2, 18, 34, 50, "Lobsters\n(the monolith)\nserves the /popular page", MONOLITH)
    box(ax, 6, 38, 30, 47, "Sherlock\nclient-side router", SHERLOCK, bold=True)
    box(ax, 1.5, 1, 22.5, 9, "database\n(SQLite or MariaDB)", DATA)

    # The Directory, top right, above the instances whose Watsons keep it current.
    box(ax, 56, 54, 90, 63, "Directory\nleases, versions, push (SSE)", DIRECTORY, bold=True)

    # The popularity service: one supervisor (running mw.sh) and one Watson per instance.
    box(ax, 46, 12, 92, 53.5, "popularity instances", "none", dashed=True, size=11, va="top")
    tops = (50, 37, 24)
    for number, top in enumerate(tops, start=1):
        box(ax, 48, top - 10, 90, top, "", INSTANCE)
        box(ax, 49.5, top - 9, 71, top - 1,
            f"#{number}: supervisor\nruns mw.sh → app", APP, size=11)
        box(ax, 73, top - 9, 88.5, top - 1, "Watson\nchecks /health", WATSON, size=11)

    # The Microwizard turns a Git commit into instances.
    box(ax, 56, 1, 90, 9, "Microwizard\n(mwkit svrun, Wizard)", WIZARD, bold=True)
    box(ax, 26, 1, 45, 9, "Git commit\nof the service", DATA)

    # Discovery: each Watson registers and heartbeats; its line runs up the right margin,
    # the lowest instance outermost, so that no two lines cross.
    for step, top in enumerate(tops):
        bus = 92.5 + 1.6 * step
        entry = 56 + 2.4 * step
        arrow(ax, [(88.5, top - 5), (bus, top - 5), (bus, entry), (90, entry)], DISCOVERY)
    ax.text(97.5, 36, "Watson\nregisters,\nheartbeats\n(lease)", ha="left", va="center",
            fontsize=pt(11), color=DISCOVERY, fontweight="bold", linespacing=1.25)
    arrow(ax, [(56, 58.5), (18, 58.5), (18, 47)], DISCOVERY,
          "Directory pushes changes → Sherlock", (35, 60.5))

    # Routing: Sherlock calls one of the instances the Directory listed.
    for top in tops:
        arrow(ax, [(30, 42), (40, 42), (40, top - 5), (49.5, top - 5)], CALLS)
    arrow(ax, [(30, 42), (40, 42)], CALLS, "Sherlock\ncalls", (35, 33.5))

    # Deploying and data.
    arrow(ax, [(56, 5), (45, 5)], DEPLOY, "checkout", (50.5, 7))
    arrow(ax, [(73, 9), (73, 12)], DEPLOY, "launches instances", (75, 10.6), ha="left")
    arrow(ax, [(10, 18), (10, 9)], MUTED)
    arrow(ax, [(46, 13), (17, 13), (17, 9)], MUTED, "SQL", (13.5, 11), ha="center")
    return fig


def main(argv: list[str]) -> None:
    output = Path(argv[0]) if argv else OUTPUT
    plt.rcParams["svg.hashsalt"] = "mwkit-architecture"  # stable ids in the SVG
    plt.rcParams["svg.fonttype"] = "path"  # glyphs drawn: the same in every browser
    fig = draw()
    # No date in the file, so regenerating gives the same bytes; the matplotlib version is
    # named because another version may draw the same picture with other bytes.
    metadata = {"Date": None, "Creator": f"{CREATOR}{matplotlib.__version__}"} \
        if output.suffix == ".svg" else None
    fig.savefig(output, metadata=metadata, dpi=100)
    plt.close(fig)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
