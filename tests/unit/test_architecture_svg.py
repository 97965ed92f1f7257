"""docs/architecture.svg is what scripts/draw_architecture.py draws, byte for byte.

The diagram is generated from code; this fails when the script changed and the SVG was not
regenerated (or the other way round), and when the output stops being deterministic. The
bytes are compared only under the matplotlib version that drew the file (named in it):
another version may draw the same picture with other bytes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "draw_architecture.py"
COMMITTED = ROOT / "docs" / "architecture.svg"


def drawn_with() -> str:
    """The matplotlib version named in the committed SVG's metadata."""
    match = re.search(r"draw_architecture\.py with matplotlib ([\w.+-]+)", COMMITTED.read_text())
    assert match, "the SVG does not say which matplotlib drew it: regenerate it"
    return match[1]


def test_the_script_reproduces_the_committed_svg(tmp_path):
    if drawn_with() != matplotlib.__version__:
        pytest.skip(f"drawn with matplotlib {drawn_with()}, this is {matplotlib.__version__}")
    fresh = tmp_path / "architecture.svg"
    subprocess.run([sys.executable, str(SCRIPT), str(fresh)], check=True,
                   capture_output=True, timeout=120)
    assert fresh.read_bytes() == COMMITTED.read_bytes(), (
        "docs/architecture.svg is stale: run .venv/bin/python scripts/draw_architecture.py")


def test_the_svg_carries_no_date():
    text = COMMITTED.read_text()
    assert "<svg" in text and "dc:date" not in text
