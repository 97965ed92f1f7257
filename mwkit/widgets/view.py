"""The control panel's widgets: a thin view over :class:`ControlPanelModel`.

Controls call the model (a slider change asks for a count, a button queues a kill); a
background *refresher* thread redraws the table, the topology, the plot and the status line
a few times a second. It changes widgets only by assigning their values: ipykernel sends
such a change to the browser from any thread, whereas ``print`` or ``display`` from a
thread would land in whatever cell happens to run. Replacing an ``Image`` widget's bytes
swaps the picture in place, without the flicker of clearing and redrawing an output.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

from mwkit.contract import LEAVING
from mwkit.widgets import render
from mwkit.widgets.model import FAULT_KINDS, LIMITS, ControlPanelModel

REFRESH_SECONDS = 0.5  # between two redraws
REFRESH_LIMIT = 3600.0  # the refresher stops after an hour; build a new panel to go on
FAILURES_BEFORE_GIVING_UP = 20  # consecutive failed refreshes (the stack is gone)


class ControlPanel:
    """Sliders, buttons and live pictures for a :class:`ControlPanelModel`.

    Building the panel starts the model (its page reloads and its worker); ``close()``
    stops the refresher and the model and leaves the last picture in place.
    """

    def __init__(self, model: ControlPanelModel, refresh_seconds: float = REFRESH_SECONDS):
        self.model = model
        self.refresh_seconds = refresh_seconds
        self.slider = widgets.IntSlider(
            value=model.counts["v1"], min=0, max=LIMITS["v1"], description="v1 instances",
            continuous_update=False, style={"description_width": "initial"},
            layout=widgets.Layout(width="320px"))
        self.canary = widgets.ToggleButton(
            value=model.counts["v2"] > 0, description="v2 canary (slow)", icon="flask",
            tooltip="run one instance of the slow v2 beside v1", layout=self._button_layout())
        self.kill = widgets.Button(description="kill newest v1", icon="stop",
                                   tooltip="deregister, drain, SIGTERM",
                                   layout=self._button_layout())
        self.kill_hard = widgets.Button(description="kill -9 newest v1", icon="bolt",
                                        button_style="danger",
                                        tooltip="SIGKILL: a crash, no goodbye to the Directory",
                                        layout=self._button_layout())
        self.traffic = widgets.ToggleButton(value=True, description="page reloads",
                                            icon="refresh", layout=self._button_layout(),
                                            tooltip=f"{model.rate:g} reloads a second")
        self._build_fault_controls()
        self.table = widgets.HTML()
        self.topology = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.status = widgets.HTML()
        for widget, name in ((self.table, "mwkit-instances"), (self.plot, "mwkit-plot"),
                             (self.topology, "mwkit-topology-box"),
                             (self.status, "mwkit-status-box"), (self.slider, "mwkit-v1")):
            widget.add_class(name)
        controls = widgets.VBox(
            [self.slider, self.canary, self.kill, self.kill_hard, self.traffic],
            layout=widgets.Layout(width="330px", flex="0 0 auto"))
        top = widgets.HBox([controls, self.topology],
                           layout=widgets.Layout(flex_flow="row wrap"))  # narrow: stacked
        self.widget = widgets.VBox(
            [widgets.HTML("<b>popularity control panel</b>"), top, self.fault_box, self.plot,
             self.table, self.status],
            layout=widgets.Layout(border="1px solid #ddd", padding="6px"))
        self.widget.add_class("mwkit-panel")

        self.slider.observe(self._on_slider, "value")
        self.canary.observe(self._on_canary, "value")
        self.traffic.observe(self._on_traffic, "value")
        self.kill.on_click(lambda _: self._act(model.kill_newest, "v1"))
        self.kill_hard.on_click(lambda _: self._act(model.kill_hard, "v1"))
        model.observe(self._on_model)

        self._stop = threading.Event()
        self._last_png = b""
        model.start()
        self.update()
        self._thread = threading.Thread(target=self._refresh_loop, name="panel-refresher",
                                        daemon=True)
        self._thread.start()

    def _build_fault_controls(self) -> None:
        """A fault for one instance (which, what, how much, inject), and the active faults,
        each with its remove button."""
        small = {"style": {"description_width": "initial"}}
        self.fault_instance = widgets.Dropdown(description="fault on", options=[],
                                               layout=widgets.Layout(width="200px"), **small)
        self.fault_kind = widgets.Dropdown(options=FAULT_KINDS, value="latency",
                                           layout=widgets.Layout(width="110px"))
        self.fault_seconds = widgets.FloatSlider(
            value=0.5, min=0.05, max=3.0, step=0.05, description="latency s",
            layout=widgets.Layout(width="230px"), **small)
        self.fault_fraction = widgets.FloatSlider(
            value=1.0, min=0.0, max=1.0, step=0.05, description="share of calls",
            layout=widgets.Layout(width="250px"), **small)
        self.inject = widgets.Button(description="inject", icon="bug", button_style="warning",
                                     tooltip="start this fault (the same fault on the "
                                             "instance is replaced)",
                                     layout=widgets.Layout(width="90px"))
        self.clear_all = widgets.Button(description="clear all faults", icon="times",
                                        layout=self._button_layout())
        self.fault_list = widgets.VBox()
        self.fault_list.add_class("mwkit-faults")
        self._shown_faults: list[str] = []
        self.inject.on_click(lambda _: self._act(self._inject))
        self.clear_all.on_click(lambda _: self._act(self.model.clear_fault))
        self.fault_box = widgets.VBox([
            widgets.HBox([self.fault_instance, self.fault_kind, self.fault_seconds,
                          self.fault_fraction, self.inject],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.fault_list])

    def _inject(self) -> None:
        kind = self.fault_kind.value
        params = {"latency": {"seconds": self.fault_seconds.value,
                              "fraction": self.fault_fraction.value},
                  "errors": {"fraction": self.fault_fraction.value}}.get(kind, {})
        self.model.inject(self.fault_instance.value, kind, **params)

    def update_faults(self) -> None:
        """The instances a fault may go to, and the active faults with their buttons
        (rebuilt only when they changed: a click must find its button still there)."""
        running = [row.instance for row in self.model.snapshot if row.phase not in LEAVING]
        if list(self.fault_instance.options) != running:
            self.fault_instance.options = running
        shown = [str(fault) for fault in self.model.faults]
        if shown == self._shown_faults:
            return
        rows = []
        for fault in self.model.faults:
            remove = widgets.Button(description="remove", icon="times", tooltip=f"clear "
                                    f"{fault.id}", layout=widgets.Layout(width="90px"))
            remove.on_click(lambda _, fault_id=fault.id: self._act(self.model.clear_fault,
                                                                   fault_id))
            rows.append(widgets.HBox([remove, widgets.HTML(render.fault_html(fault))]))
        self.fault_list.children = ([widgets.HTML("<b>active faults</b>"), *rows,
                                     self.clear_all] if rows else [])
        self._shown_faults = shown

    @staticmethod
    def _button_layout() -> widgets.Layout:
        return widgets.Layout(width="200px")

    def _repr_mimebundle_(self, **kwargs):
        """Show the panel when it is a cell's last value."""
        return self.widget._repr_mimebundle_(**kwargs)

    # -- from the controls to the model ----------------------------------------------------

    def _act(self, action, *args) -> None:
        """Call the model; a refusal (the model is stopped, a bad count) shows in the panel."""
        try:
            action(*args)
        except (ValueError, RuntimeError) as error:
            self.model.last_error = str(error)
        self.update_status()

    def _on_slider(self, change) -> None:
        if change["new"] != self.model.counts["v1"]:  # not just the view catching up
            self._act(self.model.set_count, "v1", change["new"])

    def _on_canary(self, change) -> None:
        if change["new"] != (self.model.counts["v2"] > 0):
            self._act(self.model.add_canary if change["new"] else self.model.remove_canary)

    def _on_traffic(self, change) -> None:
        self._act(self.model.start_traffic if change["new"] else self.model.stop_traffic)

    # -- from the model to the widgets -----------------------------------------------------

    def _on_model(self, what: str) -> None:
        if what == "counts":
            self.slider.value = self.model.counts["v1"]
            self.canary.value = self.model.counts["v2"] > 0
        if what == "faults":
            self.update_faults()
        self.update_status()

    def update_status(self) -> None:
        model = self.model
        current = model.current
        self.status.value = render.status_html(
            model.counts, model.snapshot, model.recent(), current and current.describe(),
            model.last_error, model.traffic_on)

    def update(self) -> None:
        """Redraw everything from a fresh look at the model (the refresher calls this)."""
        model = self.model
        model.refresh()
        records = model.recent()
        rows = model.snapshot
        colours = render.instance_colours(records, [row.instance for row in rows])
        self.table.value = render.instance_table(rows, colours)
        self.topology.value = render.topology_svg(rows, colours)
        since = records[0].time if records else time.time()
        events = [e for e in model.events.events() if e["time"] >= since] if model.events else []
        marks = [m for m in model.events.marks() if m.time >= since] if model.events else []
        png = render.plot_png(records, events, marks)
        if png != self._last_png:
            self.plot.value = self._last_png = png
        self.traffic.value = model.traffic_on
        self.update_faults()
        self.update_status()

    def _refresh_loop(self) -> None:
        deadline = time.monotonic() + REFRESH_LIMIT
        failures = 0
        while time.monotonic() < deadline and self.model.running_model:
            started = time.monotonic()
            try:
                self.update()
                failures = 0
            except Exception as error:  # noqa: BLE001 - shown in the panel, never raised
                failures += 1
                self.model.last_error = f"refreshing the panel failed: {error}"
                if failures >= FAILURES_BEFORE_GIVING_UP:
                    self.model.last_error += " (gave up: is the stack down?)"
                    break
            spent = time.monotonic() - started
            if self._stop.wait(max(0.1, self.refresh_seconds - spent)):
                return
        self._disable("stopped refreshing")

    def _disable(self, why: str) -> None:
        for control in (self.slider, self.canary, self.kill, self.kill_hard, self.traffic,
                        self.inject, self.clear_all, *self._fault_buttons()):
            control.disabled = True
        self.update_status()
        self.status.value += f'<div style="color: #666">panel {why}</div>'

    def _fault_buttons(self) -> list:
        return [child.children[0] for child in self.fault_list.children
                if isinstance(child, widgets.HBox)]

    # -- the end ---------------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Stop the refresher and the model (its reloads, its worker); keep the picture."""
        self._stop.set()
        self._thread.join(timeout)
        self.model.unobserve(self._on_model)
        self.model.stop(timeout)
        self._disable("closed")

    @property
    def refreshing(self) -> bool:
        return self._thread.is_alive()
