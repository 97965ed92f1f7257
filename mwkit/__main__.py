"""``python -m mwkit`` is the ``mwkit`` command."""

import sys

from mwkit.cli import main

sys.exit(main())
