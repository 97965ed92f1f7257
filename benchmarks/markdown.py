"""The report as Markdown: the machine, one table per figure, notes, and the findings.

A table row shows what ``summary.json`` keeps of a metric (:func:`metric_row`), so the two
committed files always agree.
"""

from __future__ import annotations

from benchmarks.common import Figure

FINDINGS = "FINDINGS.md"  # hand-written causes and proposed fixes, appended to the report


def number(value: float | None) -> str:
    if value is None:
        return "-"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 else 3
    return f"{value:,.{digits}f}"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: ""}[met]


def metric_row(metric: dict) -> str:
    """A metric's row, from its summary (``Metric.summary_json()``, as in summary.json)."""
    name = metric["name"] + (f" ({metric['note']})" if metric["note"] else "")
    return (f"| {name} | {metric['unit']} | {metric['n']} ({metric['per']}) | "
            f"{number(metric['median'])} | {number(metric['p99'])} | "
            f"{metric['target']} | {verdict(metric['met'])} |")


def figure_table(figure: Figure) -> str:
    lines = [f"### Figure {figure.number}: {figure.title}", ""]
    if figure.error:
        lines += [f"**The benchmark failed:** {figure.error}", ""]
    if figure.metrics:
        lines += ["| metric | unit | n (per) | median | p99 | target | |",
                  "| --- | --- | --- | ---: | ---: | --- | --- |"]
        lines += [metric_row(metric.summary_json()) for metric in figure.metrics]
        lines.append("")
    lines += [f"- {note}" for note in figure.notes]
    lines.append(f"- measured in {figure.seconds:.0f} s")
    return "\n".join(lines) + "\n"


def report(data: dict, figures: list[Figure], findings: str = "") -> str:
    host = data["machine"]
    missed = [f"{f.number}: {m.name}" for f in figures for m in f.metrics if m.met is False]
    failed = [f"{f.number}" for f in figures if f.error]
    head = [
        "# mwkit benchmarks", "",
        f"Produced by `{data['command']}` on {data['started']} in {data['seconds']:.0f} s"
        f"{' (quick mode)' if data['quick'] else ''}; runtimes: {', '.join(data['runtimes'])}.",
        "Every figure is the median and the p99 (nearest rank) of its samples; `n (per)` says "
        "how many samples and what one sample is. All traffic on loopback (and the project's "
        "own containers). The same figures as JSON: `summary.json`; every raw sample: "
        "`raw/report.json` (not committed).", "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, Linux "
        f"{host['kernel']}, Python {host['python']}; {host['etcd'] or 'no etcd'}; "
        f"{host['haproxy'] or 'no HAProxy'}; Docker {host['docker'] or 'not answering'}.", "",
        f"Targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else "") +
        (f". Figures that failed to run: {', '.join(failed)}" if failed else "") + ".", "",
    ]
    body = [figure_table(figure) for figure in figures]
    tail = f"\n{findings.strip()}\n" if findings else ""
    return "\n".join(head) + "\n" + "\n".join(body) + tail
