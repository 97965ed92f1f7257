"""The notebook control panel: a plain model (:mod:`.model`) and an ipywidgets view of it.

    from mwkit.widgets import ControlPanel, ControlPanelModel
    panel = ControlPanel(ControlPanelModel(stack))
    panel                       # shows it; panel.close() stops it

The model does not import ipywidgets, so scripts and tests can use it without Jupyter.
"""

from mwkit.widgets.model import ControlPanelModel

__all__ = ["ControlPanel", "ControlPanelModel"]


def __getattr__(name: str):
    if name == "ControlPanel":  # imports ipywidgets only when the view is asked for
        from mwkit.widgets.view import ControlPanel

        return ControlPanel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
