"""The Microwizard: from a Git commit of a service to running instances of it.

Importing this package stays cheap (no ``docker``, no ``git``) so that it also works inside
a container that has neither: the modules that need them import them where they are used.
"""

__all__ = ["Wizard"]


def __getattr__(name: str):
    """``Wizard`` is imported on first use: an instance's supervisor imports this package
    too, and should not pay for the whole wizard at every start."""
    if name == "Wizard":
        from mwkit.wizard.wizard import Wizard

        return Wizard
    raise AttributeError(f"module 'mwkit.wizard' has no attribute {name!r}")
