"""Run notebooks and keep the outputs of their checked cells only.

nbval (``pytest --nbval-lax``) compares a cell marked ``# NBVAL_CHECK_OUTPUT`` with the
output stored in the notebook, so those outputs must be committed; every other cell is
committed without outputs, since they are noise (times, ports, pictures, widgets).
Run this after changing a lesson, then review the diff:

    .venv/bin/python scripts/record_notebook_outputs.py notebooks/04_*.ipynb
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
from render_notebooks import execute  # the run `make render` makes: own workdir, torn down

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.source.lstrip().startswith(CHECK_MARK) or \
        "nbval-check-output" in cell.metadata.get("tags", [])


def merged_streams(outputs: list) -> list:
    """One output per run of printed text: how a cell's prints arrive in pieces depends on
    timing, and the stored notebook should not."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (previous is not None and output.output_type == previous.output_type == "stream"
                and output.name == previous.name):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def record(path: Path) -> None:
    """Execute ``path`` in a workdir of its own (a learner's stack in ``.mwkit`` is left
    alone), then keep only the checked cells' outputs; a failing notebook is not written."""
    with tempfile.TemporaryDirectory(prefix="mwkit-record-") as workdir:
        notebook, error = execute(path, Path(workdir))
    if error:
        raise SystemExit(f"{path}: {error}; nothing recorded")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for position, cell in enumerate(code, 1):
        if is_checked(cell):  # its position: nbclient does not count empty cells
            cell.execution_count = position
            cell.outputs = merged_streams(cell.outputs)
        else:
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)  # the widgets' saved state: noise, too
    nbformat.write(notebook, path)
    checked = sum(is_checked(c) for c in notebook.cells if c.cell_type == "code")
    print(f"{path}: recorded the outputs of {checked} checked cell(s)")


if __name__ == "__main__":
    paths = [Path(arg) for arg in sys.argv[1:]] or sorted(Path("notebooks").glob("[0-9]*.ipynb"))
    for notebook_path in paths:
        record(notebook_path)
