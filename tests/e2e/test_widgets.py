"""The control panel: its model against a real stack on processes, and its widgets."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ElementTree

import pytest

from mwkit.stack import Stack
from mwkit.widgets import render
from mwkit.widgets.model import ControlPanelModel

PANEL_THREADS = ("panel-worker", "panel-refresher", "page-reloads")


@pytest.fixture
def stack(tmp_path):
    with Stack(tmp_path / "work", runtime="process", database="sqlite") as running:
        yield running


@pytest.fixture
def model(stack):
    model = ControlPanelModel(stack, rate=20).start()
    yield model
    model.stop()


def registered(model, tag="v1") -> list[str]:
    return [row.instance for row in model.refresh_snapshot()
            if row.tag == tag and row.phase == "registered"]


def in_thread(action, *args) -> None:
    """Call ``action`` from another thread, as a widget callback or a test script might."""
    thread = threading.Thread(target=action, args=args)
    thread.start()
    thread.join(5)


def panel_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in PANEL_THREADS and t.is_alive()]


# -- the model ---------------------------------------------------------------------------

def test_set_count_from_threads_scales_up_and_down(model):
    assert model.counts == {"v1": 0, "v2": 0} and registered(model) == []
    in_thread(model.set_count, "v1", 2)
    assert model.wait(60), f"still scaling: {model.current}"
    assert registered(model) == ["popularity-v1-1", "popularity-v1-2"]
    in_thread(model.set_count, "v1", 1)
    assert model.wait(60)
    assert registered(model) == ["popularity-v1-1"]
    assert model.counts["v1"] == 1 and model.last_error is None
    time.sleep(1.5)
    assert model.answered_by(1.0) == ["popularity-v1-1"]


def test_the_latest_count_wins_while_a_scale_runs(model, stack):
    scaled = []
    real_scale = stack.scale

    def recording_scale(n, tag="v1", ref=None):
        scaled.append((tag, n))
        return real_scale(n, tag=tag, ref=ref)

    stack.scale = recording_scale
    model.set_count("v1", 1)
    deadline = time.monotonic() + 10
    while model.current is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert model.current is not None, "the worker never took the first request"
    for n in (3, 4, 2):  # asked for while the first scale runs: only the last one counts
        model.set_count("v1", n)
    assert model.wait(60)
    assert scaled == [("v1", 1), ("v1", 2)]
    assert len(registered(model)) == 2 and model.counts["v1"] == 2


def test_kill_hard_keeps_the_reloads_flowing(model):
    model.set_count("v1", 2)
    assert model.wait(60) and len(registered(model)) == 2
    killed_at = time.time()
    model.kill_hard("v1")
    assert model.counts["v1"] == 1
    assert model.wait(30)
    time.sleep(2.0)
    after = [r for r in model.recent() if r.time >= killed_at]
    assert len(after) >= 20, f"too few reloads after the kill: {len(after)}"
    assert [r.error for r in after if not r.ok] == []
    assert model.answered_by(1.0) == ["popularity-v1-1"]
    assert model.last_error is None


def test_errors_of_the_worker_land_in_last_error(model):
    model.kill_newest("v1")  # nothing runs: the wizard refuses, in the worker thread
    assert model.wait(30)
    assert model.last_error and model.last_error.startswith("kill newest v1 failed")
    assert "no running instance tagged 'v1'" in model.last_error
    assert model.counts["v1"] == 0
    with pytest.raises(ValueError, match="0..5"):
        model.set_count("v1", 6)
    with pytest.raises(ValueError, match="not 'v3'"):
        model.set_count("v3", 1)
    model.clear_error()
    assert model.last_error is None


def test_a_stopped_model_refuses_requests(stack):
    model = ControlPanelModel(stack).start()
    model.stop()
    assert panel_threads() == []
    with pytest.raises(RuntimeError, match="call start"):
        model.set_count("v1", 1)


# -- the view ----------------------------------------------------------------------------

def test_the_panel_shows_instances_plot_and_stops_its_threads(stack):
    from mwkit.widgets import ControlPanel

    panel = ControlPanel(ControlPanelModel(stack, rate=20), refresh_seconds=0.2)
    try:
        assert panel.refreshing and "No popularity instance runs" in panel.table.value
        first_png = bytes(panel.plot.value)
        assert first_png.startswith(b"\x89PNG\r\n\x1a\n")
        panel.slider.value = 2  # as if the learner moved it: the model scales
        assert panel.model.counts["v1"] == 2
        assert panel.model.wait(60) and panel.model.last_error is None
        time.sleep(1.5)
        panel.update()
        for instance in ("popularity-v1-1", "popularity-v1-2"):
            assert f'data-instance="{instance}" data-phase="registered"' in panel.table.value
            assert render.short(instance) in panel.topology.value
        assert bytes(panel.plot.value)[:4] == b"\x89PNG" and bytes(panel.plot.value) != first_png
        assert "2 wanted, 2 registered" in panel.status.value

        panel.model.kill_hard("v1")  # the model changes: the slider follows
        assert panel.slider.value == 1
    finally:
        panel.close()
    assert not panel.refreshing and panel_threads() == []
    assert panel.slider.disabled and "panel closed" in panel.status.value


# -- the pictures, on their own ------------------------------------------------------------

class Row:
    def __init__(self, instance, phase, tag="v1"):
        self.instance, self.phase, self.tag = instance, phase, tag
        self.commit, self.address, self.reason = "abc1234", "127.0.0.1:5001", ""


def test_the_topology_is_valid_svg_with_one_box_per_instance():
    rows = [Row("popularity-v1-1", "registered"), Row("popularity-v2-1", "failed", "v2")]
    svg = render.topology_svg(rows, {"popularity-v1-1": "#1f77b4"})
    root = ElementTree.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"lobsters /popular", "Sherlock", "Directory"} <= set(texts)
    assert "v1-1  registered" in texts and "v2-1  failed" in texts
    assert render.PHASE_COLOURS["failed"] in svg and "#1f77b4" in svg


def test_the_status_line_names_the_error_and_the_work_under_way():
    line = render.status_html({"v1": 3, "v2": 1}, [Row("popularity-v1-1", "registered")], [],
                              "scale v1 to 3", "kill newest v1 failed: <none>", True)
    assert "3 wanted, 1 registered" in line and "v2 canary</b> on" in line
    assert "working: scale v1 to 3" in line and "&lt;none&gt;" in line
