"""Every notebook survives a learner: exercises done, cells run again, minutes between cells.

nbval (``make test``) runs each notebook once, quickly, without the exercises. Here each one
runs with every ``# %load solutions/...`` cell replaced by its solution, and all its cells a
second time in the same kernel (a learner re-runs cells). Then every notebook with cells
tagged ``pause-before`` (whose outcome once depended on timing; 02, 04 and 05 must have some)
runs with a 40 s pause before each of them: three at a time, each in its own kernel and
workdir, so the pauses overlap. Every run has a temporary workdir and the process runtime; what it
started is torn down after it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.helpers.notebooks import (
    PAUSE_TAG,
    execute,
    tags,
    twice,
    with_parameters,
    with_pauses,
    with_solutions,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
MUST_PAUSE = ("02", "04", "05")  # their lessons once broke at a learner's pace
PAUSE = 40  # seconds: longer than any lease, reload run or timeout a lesson relies on
#: Shorter runs of the long lessons: twice with solutions is about their steps, not their
#: figures (nbval checks those, at the notebook's own length).
SHORTER = {"07b_the_fault_and_policy_lab": {"SECONDS": 2}}


def read(path: Path):
    return with_solutions(nbformat.read(path, as_version=4), NOTEBOOKS)


def run(notebook, workdir: Path) -> None:
    execute(notebook, env={"MWKIT_WORKDIR": str(workdir), "MWKIT_RUNTIME": "process"},
            cwd=NOTEBOOKS, timeout=240)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_with_solutions_twice_in_one_kernel(path, tmp_path):
    notebook = read(path)
    if path.stem in SHORTER:
        notebook = with_parameters(notebook, **SHORTER[path.stem])
    run(twice(notebook), tmp_path / "workdir")


def pauses(notebook) -> int:
    return sum(PAUSE_TAG in tags(cell) for cell in notebook.cells)


def paused(notebook) -> bool:
    return pauses(notebook) > 0


@pytest.mark.timeout(900)
def test_at_a_learners_pace(tmp_path):
    notebooks = {path.stem: read(path) for path in PATHS}
    must = {name: notebook for name, notebook in notebooks.items()
            if name.split("_")[0] in MUST_PAUSE}
    assert len(must) == len(MUST_PAUSE), f"notebooks {MUST_PAUSE} must be in {NOTEBOOKS}"
    untagged = [name for name, notebook in must.items() if not paused(notebook)]
    paced = {name: with_pauses(notebook, PAUSE) for name, notebook in notebooks.items()
             if paused(notebook)}
    # Three at a time: the pauses overlap, and two CPUs still serve the timing checks. The
    # most paused first, so that the three finish about together (about a minute sooner).
    longest_first = sorted(paced.items(), key=lambda item: -pauses(item[1]))
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {name: pool.submit(run, notebook, tmp_path / name)
                for name, notebook in longest_first}
    failed = {name: future.exception() for name, future in runs.items() if future.exception()}
    problems = [f"{name}: no cell is tagged {PAUSE_TAG!r}, nothing proves the pace"
                for name in untagged]
    problems += [f"{name}, with a {PAUSE} s pause before each {PAUSE_TAG!r} cell:\n{error}"
                 for name, error in failed.items()]
    assert not problems, "\n\n".join(problems)
