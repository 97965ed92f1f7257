"""Run a notebook the way a learner does: exercises done, pauses between cells, cells re-run.

nbval checks the stored outputs of one quick top-to-bottom run. A learner does more: runs
the exercises' solutions (a ``# %load solutions/NN_x.py`` cell with the ``# `` removed),
pauses minutes before a cell, runs cells again. Each function here makes a changed copy of
a notebook for one of those (the file is never touched); :func:`execute` runs the copy::

    notebook = nbformat.read(path, as_version=4)
    execute(twice(with_solutions(notebook, path.parent)),
            env={"MWKIT_WORKDIR": str(tmp_path / "workdir")}, cwd=path.parent)
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from mwkit.settings import Settings
from mwkit.stack import teardown

#: A cell whose whole source is this line is an exercise's solution, loaded by ``%load``.
LOAD_LINE = re.compile(r"# %load (solutions/[\w.-]+\.py)")
PAUSE_TAG = "pause-before"
#: The cell whose assignments a run may override (papermill's convention).
PARAMETERS_TAG = "parameters"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def loaded_solution(cell) -> str | None:
    """``solutions/NN_x.py`` when ``cell`` is a ``# %load`` cell, else None."""
    match = cell.cell_type == "code" and LOAD_LINE.fullmatch(cell.source.strip())
    return match[1] if match else None


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def with_solutions(notebook, notebooks_dir: Path | str):
    """A copy in which each ``# %load solutions/X.py`` cell holds the file's content."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if name := loaded_solution(cell):
            path = Path(notebooks_dir) / name
            if not path.is_file():
                raise FileNotFoundError(f"a cell loads {name}, but there is no {path}")
            cell.source = path.read_text(encoding="utf-8")
    return notebook


def with_pauses(notebook, seconds: float, tag: str = PAUSE_TAG):
    """A copy with a ``time.sleep(seconds)`` cell before each code cell tagged ``tag``."""
    notebook = copy.deepcopy(notebook)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and tag in tags(cell):
            # __import__ leaves the notebook's own names (a `time` of its own) alone
            cells.append(nbformat.v4.new_code_cell(
                f"__import__('time').sleep({seconds})  # a learner's pause",
                metadata={"inserted": "a learner's pause"}))
        cells.append(cell)
    notebook.cells = cells
    return notebook


def with_parameters(notebook, **values):
    """A copy with a cell setting ``values`` right after the cell tagged ``parameters``, as
    papermill injects them: a test can run a lesson shorter than a learner does."""
    notebook = copy.deepcopy(notebook)
    where = [n for n, cell in enumerate(notebook.cells) if PARAMETERS_TAG in tags(cell)]
    if len(where) != 1:
        raise ValueError(f"a notebook given parameters needs exactly one cell tagged "
                         f"{PARAMETERS_TAG!r}, not {len(where)}")
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(where[0] + 1, nbformat.v4.new_code_cell(
        source, metadata={"inserted": "parameters"}))
    return notebook


def twice(notebook):
    """A copy whose code cells run a second time, in order, after the first run."""
    notebook = copy.deepcopy(notebook)
    again = [copy.deepcopy(cell) for cell in notebook.cells if cell.cell_type == "code"]
    for cell in again:
        cell.metadata["inserted"] = "the second run"
    notebook.cells += again
    return notebook


def execute(notebook, env: Mapping[str, str], cwd: Path | str, timeout: float = 300):
    """Run ``notebook`` in a fresh python3 kernel (the one nbval starts), in ``cwd``.

    The kernel's environment is this process's plus ``env``: give each run its own
    ``MWKIT_WORKDIR`` and several notebooks run at once without meeting. ``timeout`` is per
    cell. On a failure raises AssertionError naming the cell (its source and error). The
    kernel is always shut down, then the workdir's stack torn down, so nothing outlives
    the run. Returns the executed notebook.
    """
    environment = {**os.environ, **env}
    workdir = Settings.from_env(environment).workdir
    started = []  # the index of each cell as it starts: the last one is the one that failed
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            record_timing=False,
                            on_cell_start=lambda cell, cell_index: started.append(cell_index))
    try:
        return client.execute(env=environment, cwd=str(cwd))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        where = describe(notebook, started[-1]) if started else "before its first cell"
        raise AssertionError(f"the notebook failed at {where}:\n{ANSI.sub('', str(error))}") \
            from None
    finally:
        teardown(workdir)


def describe(notebook, index: int) -> str:
    """``code cell 7 of 24 (the second run)``: where a cell is, as a reader counts."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    cell = notebook.cells[index]
    number = next(n for n, other in enumerate(code, 1) if other is cell)  # copies are equal
    inserted = cell.metadata.get("inserted")
    return (f"code cell {number} of {len(code)}"
            + (f" ({inserted})" if inserted else ""))
