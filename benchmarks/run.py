"""The one command that runs every benchmark and writes the report.

    python -m benchmarks                  # everything, about 25 minutes
    python -m benchmarks --quick          # all but figures 7 and 8, smaller, about 5 minutes
    python -m benchmarks --only 3,5       # some figures (7 and 8 only when asked or full)

Writes into ``--output`` (default: this folder), with the machine the figures were
measured on:

- ``REPORT.md``: one Markdown table per figure, then FINDINGS.md (committed);
- ``summary.json``: the same per figure as JSON, about 100 KB: number, title, seconds,
  error, notes and, per metric, n, median, p99, min, max, target and whether it was met,
  but no samples (committed; :func:`summary_of`);
- ``raw/report.json``: the same with every raw sample, about 2 MB for a full run (ignored
  by Git: each run rewrites it).

Each figure runs in a scratch folder that is removed afterwards; a figure that fails is
reported as failed and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import markdown
from benchmarks.common import Figure, machine

HERE = Path(__file__).resolve().parent
FIGURES = {1: "fig1_scale_up", 2: "fig2_scale_down", 3: "fig3_push", 4: "fig4_heartbeats",
           5: "fig5_overhead", 6: "fig6_slow_instance", 7: "fig7_notebooks",
           8: "fig8_fresh_clone", 9: "fig9_memory", 10: "fig10_policy_lab",
           11: "fig11_approaches", 12: "fig12_proxy_throughput", 13: "fig13_cost_curves"}
LONG = {7, 8}  # whole notebook series, fresh clone: not in --quick
WITH_RUNTIMES = {1, 7, 9}  # figures measured on each runtime (Docker unless --no-docker)
SUMMARY = Path("summary.json")  # under --output: committed
RAW = Path("raw") / "report.json"  # under --output: every sample; benchmarks/raw/ is ignored


def docker_answers() -> bool:
    from mwkit.wizard.engine import docker_available

    return docker_available()


def run_figure(number: int, quick: bool, runtimes: tuple[str, ...]) -> Figure:
    module = importlib.import_module(f"benchmarks.{FIGURES[number]}")
    scratch = Path(tempfile.mkdtemp(prefix=f"mwkit-bench-{number}-"))
    began = time.monotonic()
    try:
        kwargs = {"runtimes": runtimes} if number in WITH_RUNTIMES else {}
        figure = module.run(quick, scratch, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported, and the other figures still run
        figure = Figure(number, FIGURES[number], error=f"{type(error).__name__}: {error}")
        traceback.print_exc()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figure.seconds = time.monotonic() - began
    return figure


def parse_only(text: str | None, quick: bool) -> list[int]:
    if not text:
        return [n for n in FIGURES if not (quick and n in LONG)]
    numbers = [int(part) for part in text.split(",") if part.strip()]
    unknown = [n for n in numbers if n not in FIGURES]
    if unknown:
        raise SystemExit(f"--only: no figure {unknown}; figures are 1 to {len(FIGURES)}")
    return numbers


def summary_of(report: dict) -> dict:
    """The report as ``raw/report.json`` holds it, without the samples and with numbers to
    six significant digits (the rest is noise, and the file is committed): summary.json."""
    return {**report, "figures": [
        {**figure, "metrics": [{key: significant(value) for key, value in metric.items()
                                if key != "samples"} for metric in figure["metrics"]]}
        for figure in report["figures"]]}


def significant(value, digits: int = 6):
    """A float to ``digits`` significant digits; anything else as it is."""
    return float(f"{value:.{digits}g}") if isinstance(value, float) else value


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_reports(output: Path, report: dict, figures: list[Figure]) -> None:
    """REPORT.md, summary.json and raw/report.json, into ``output``."""
    write_json(output / RAW, report)
    write_json(output / SUMMARY, summary_of(report))
    findings = HERE / markdown.FINDINGS
    (output / "REPORT.md").write_text(markdown.report(
        report, figures, findings.read_text() if findings.exists() else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller runs of every figure but 7 and 8")
    parser.add_argument("--only", help="comma-separated figure numbers, e.g. 3,5")
    parser.add_argument("--no-docker", action="store_true",
                        help="skip the Docker runtime (figures 1, 7 and 9)")
    parser.add_argument("--output", type=Path, default=HERE,
                        help="folder for REPORT.md, summary.json and raw/report.json "
                        "(default: benchmarks/)")
    args = parser.parse_args(argv)
    numbers = parse_only(args.only, args.quick)
    runtimes: tuple[str, ...] = ("process",)
    if not args.no_docker and not args.quick:
        if docker_answers():
            runtimes = ("process", "docker")
        else:
            print("Docker does not answer: Docker figures skipped "
                  "(start it with `bash .ci/start-docker.sh`)", flush=True)
    started = datetime.now(UTC)
    began = time.monotonic()
    figures = []
    for number in numbers:
        print(f"--- figure {number}: {FIGURES[number]} ---", flush=True)
        figure = run_figure(number, args.quick, runtimes)
        figures.append(figure)
        print(markdown.figure_table(figure), flush=True)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "benchmarks", *given])
    report = {"command": command, "started": started.isoformat(timespec="seconds"),
              "seconds": round(time.monotonic() - began, 1), "quick": args.quick,
              "runtimes": list(runtimes), "machine": machine(),
              "figures": [f.to_json() for f in figures]}
    write_reports(args.output, report, figures)
    print(f"report: {args.output / 'REPORT.md'}, {SUMMARY} and {RAW} "
          f"({report['seconds']:.0f} s in all)", flush=True)
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
