"""The report as Markdown: the machine, one table per figure, notes, and the findings."""

from __future__ import annotations

from benchmarks.common import Figure, Metric

FINDINGS = "FINDINGS.md"  # hand-written causes and proposed fixes, appended to the report


def number(value: float | None) -> str:
    if value is None:
        return "-"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 else 3
    return f"{value:,.{digits}f}"


def verdict(metric: Metric) -> str:
    return {True: "met", False: "**missed**", None: ""}[metric.met]


def figure_table(figure: Figure) -> str:
    lines = [f"### Figure {figure.number}: {figure.title}", ""]
    if figure.error:
        lines += [f"**The benchmark failed:** {figure.error}", ""]
    if figure.metrics:
        lines += ["| metric | unit | n (per) | median | p99 | target | |",
                  "| --- | --- | --- | ---: | ---: | --- | --- |"]
        for metric in figure.metrics:
            summary = metric.summary()
            name = metric.name + (f" ({metric.note})" if metric.note else "")
            lines.append(f"| {name} | {metric.unit} | {summary['n']} ({metric.per}) | "
                         f"{number(summary['median'])} | {number(summary['p99'])} | "
                         f"{metric.target} | {verdict(metric)} |")
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
        "own containers). Raw samples: `report.json`.", "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, Linux "
        f"{host['kernel']}, Python {host['python']}; {host['etcd'] or 'no etcd'}; "
        f"{host['haproxy'] or 'no HAProxy'}; Docker {host['docker'] or 'not answering'}.", "",
        f"Targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else "") +
        (f". Figures that failed to run: {', '.join(failed)}" if failed else "") + ".", "",
    ]
    body = [figure_table(figure) for figure in figures]
    tail = f"\n{findings.strip()}\n" if findings else ""
    return "\n".join(head) + "\n" + "\n".join(body) + tail
