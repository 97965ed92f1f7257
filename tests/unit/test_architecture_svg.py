"""docs/architecture.svg is what scripts/draw_architecture.py draws, byte for byte.

The diagram is generated from code; this fails when the script changed and the SVG was not
regenerated (or the other way round), and when the output stops being deterministic.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "draw_architecture.py"
COMMITTED = ROOT / "docs" / "architecture.svg"


def test_the_script_reproduces_the_committed_svg(tmp_path):
    fresh = tmp_path / "architecture.svg"
    subprocess.run([sys.executable, str(SCRIPT), str(fresh)], check=True,
                   capture_output=True, timeout=120)
    assert fresh.read_bytes() == COMMITTED.read_bytes(), (
        "docs/architecture.svg is stale: run .venv/bin/python scripts/draw_architecture.py")


def test_the_svg_carries_no_date_and_no_version():
    text = COMMITTED.read_text()
    assert "<svg" in text
    assert "dc:date" not in text and "Matplotlib v" not in text
