"""Figure 13, the cost curves, in a tiny form against a real Directory and a real etcd.

No timing is asserted: what is checked is that both curves hold every point for both
registries with sane numbers, that the three targets are judged, that a subscriber count
this machine cannot open and a service past its cap are left out with a note (not a
crash), and that the PNG is drawn.
"""

from __future__ import annotations

import asyncio
import math
import resource

import pytest

from benchmarks import fig13_cost_curves
from benchmarks.common import Deadline, Figure
from benchmarks.streams import MARKERS, Fanout, Subscriber

pytestmark = pytest.mark.timeout(180)

TOO_MANY = 10**7  # subscribers: more open files than any machine's hard limit here


def values(figure: Figure) -> dict[str, dict]:
    return {metric.name: metric.summary() for metric in figure.metrics}


@pytest.mark.etcd
def test_both_curves_for_both_registries(tmp_path):
    png = tmp_path / "curves.png"
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    figure = fig13_cost_curves.run(True, tmp_path, png=png, instances=(10, 40),
                                   subscribers=(5, 20, TOO_MANY))
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == limit  # restored
    assert figure.error is None and figure.number == 13
    got = values(figure)
    for name in ("Directory", "etcd"):
        for n in (10, 40):
            point = f"{name}, {n} instances"
            assert got[f"{point}: registrations per second"]["median"] > 0, figure.notes
            delays = got[f"{point}: push delay to 10 subscribers"]
            assert delays["n"] >= 10 and 0 < delays["p99"] < 5000  # 10 subscribers x changes
            assert 5 < got[f"{point}: memory (RSS)"]["median"] < 4096
            # one small change per subscriber, never the service's list or the snapshot
            assert 100 < got[f"{point}: bytes per change per subscriber"]["median"] < 1000
        for n in (5, 20):
            assert got[f"{name}, {n} subscribers: push delay"]["n"] >= n
            assert got[f"{name}, {n} subscribers: registrations per second"]["median"] > 0
        assert not any(f"{TOO_MANY:,} subscribers:" in metric for metric in got)
        assert any(note.startswith(f"{name}: {TOO_MANY:,} subscribers not measured: they "
                                   "need about") for note in figure.notes), figure.notes
    targets = {m.name: m for m in figure.metrics if m.target}
    assert sorted(targets) == [
        "Directory: registrations per second at 40 / at 10 instances",
        "ratio Directory / etcd, push delay p99 at 20 subscribers",
        "ratio Directory / etcd, registrations per second at 40 instances"]
    for metric in targets.values():
        assert metric.met in (True, False) and math.isfinite(metric.summary()["median"])
    assert png.stat().st_size > 10_000 and f"The figure: {png}" in figure.notes


def test_a_subscriber_counts_no_byte_of_a_snapshot_that_spans_many_reads():
    fanout = Fanout(1)
    subscriber = Subscriber(fanout, b"", *MARKERS["directory"])
    snapshot = b"id: 7\nevent: snapshot\ndata: {" + b"x" * 100_000 + b"}\n\n\r\n"
    for start in range(0, len(snapshot), 4096):
        assert not subscriber.ready.is_set()
        subscriber.data_received(snapshot[start:start + 4096])
    assert subscriber.ready.is_set() and subscriber.bytes_after_ready == 0
    fanout.changes = 1
    change = b"ed\r\nid: 8\nevent: put\ndata: {}\n\n\r\n"
    split = change.index(b"event: put") + 5  # the marker split between two reads
    subscriber.data_received(change[:split])
    subscriber.data_received(change[split:])
    assert subscriber.bytes_after_ready == len(change) and len(subscriber.arrivals) == 1


def test_a_service_at_its_cap_ends_the_curve_with_a_note(tmp_path):
    from mwkit.directory import run_directory
    from mwkit.directory.registry import MAX_INSTANCES_PER_SERVICE

    beyond = MAX_INSTANCES_PER_SERVICE + 1
    with run_directory(log_path=tmp_path / "directory.log") as url:
        curve = asyncio.run(fig13_cost_curves.against_instances(
            "directory", url, (10, beyond), True, Deadline(60)))
    assert list(curve.points) == [10]
    assert curve.notes[0].startswith(f"Directory: stopped filling the service at {beyond:,}")
    assert ": 409 " in curve.notes[0], curve.notes
