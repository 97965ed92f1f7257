"""The Microwizard: from a Git commit of a service to running instances of it.

Importing this package stays cheap (no ``docker``, no ``git``) so that it also works inside
a container that has neither: the modules that need them import them where they are used.
"""

from mwkit.wizard.wizard import Wizard

__all__ = ["Wizard"]
