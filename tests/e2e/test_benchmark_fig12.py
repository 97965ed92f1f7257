"""Figure 12 in quick mode on real parts: popularity, a fixed answer, the Sherlock proxy,
Sherlock's HAProxy data plane and plain HAProxy, loaded closed-loop."""

from __future__ import annotations

import pytest

from benchmarks import fig12_proxy_throughput as fig12

pytestmark = pytest.mark.haproxy


def test_figure_12_proxy_throughput(tmp_path):
    png = tmp_path / "fig12.png"
    figure = fig12.run(True, tmp_path / "scratch", png=png)
    metrics = {m.name: m.summary() for m in figure.metrics}
    for backend in fig12.BACKENDS:
        for connections in fig12.CONNECTIONS:
            at = f"{backend}, {connections} connections"
            for way in fig12.WAYS:
                assert metrics[f"{at}, {way}: requests per second"]["median"] > 50
                if backend == fig12.FIXED:  # popularity's latencies are in the picture only
                    p50 = metrics[f"{at}, {way}: latency p50"]["median"]
                    assert 0 < p50 <= metrics[f"{at}, {way}: latency p99"]["median"] < 1000
                else:
                    assert f"{at}, {way}: latency p50" not in metrics
            rates = metrics[f"{at}: ratio {fig12.PLANE} / HAProxy, requests per second"]
            assert rates["n"] == 2 and rates["median"] > 0
    targeted = [m for m in figure.metrics if m.target]
    assert len(targeted) == 2 * 2 + 2  # the data plane's rate ratios, and its added p50's
    assert "failed calls: {'direct': 0, 'Python proxy': 0, 'HAProxy data plane': 0, " \
           "'HAProxy': 0}" in figure.notes[0]
    assert png.stat().st_size > 10_000
