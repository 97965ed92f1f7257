"""The exercises follow the convention learners know, and every solution is where it says.

An exercise is a Markdown cell with a ``## Exercise: <title>`` (or ``### Exercise``) heading,
then an empty code cell for the learner, then a cell whose whole source is
``# %load solutions/NN_name.py``: the solution, in ``notebooks/solutions/``, prefixed with its
notebook's number. These checks run nothing; ``tests/e2e/test_notebook_pace.py`` runs every
notebook with its solutions filled in.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests.helpers.notebooks import loaded_solution

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
SOLUTIONS = sorted(path for path in (NOTEBOOKS / "solutions").glob("*")
                   if path.is_file() and not path.name.startswith("."))
EXERCISE_HEADING = re.compile(r"^#{2,3} Exercise\b", re.MULTILINE)
LOAD = re.compile(r"%load\b")


def number(name: str) -> str:
    """The teaching order a file name starts with: ``03b`` of ``03b_the_terminal.ipynb``."""
    return name.split("_", 1)[0]


def cells(path: Path) -> list:
    return nbformat.read(path, as_version=4).cells


def loads() -> dict[str, list[str]]:
    """Each solution a notebook cell loads -> the notebooks whose cells load it."""
    found: dict[str, list[str]] = {}
    for path in PATHS:
        for cell in cells(path):
            if name := loaded_solution(cell):
                found.setdefault(name, []).append(path.name)
    return found


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_load_cells_name_existing_solutions_of_their_notebook(path):
    problems = []
    for index, cell in enumerate(cells(path)):
        if cell.cell_type != "code" or not LOAD.search(cell.source):
            continue
        name, where = loaded_solution(cell), f"cell {index}"
        if not name:
            problems.append(f"{where}: a %load cell's whole source must be one line "
                            f"'# %load solutions/NN_name.py', not {cell.source!r}")
        elif not (NOTEBOOKS / name).is_file():
            problems.append(f"{where} loads {name}: there is no such file")
        elif number(Path(name).name) != number(path.name):
            problems.append(f"{where} loads {name}: name it {number(path.name)}_..., "
                            "after its notebook")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_each_exercise_has_a_cell_for_the_learner_then_its_solution(path):
    notebook, problems = cells(path), []
    for index, cell in enumerate(notebook):
        if cell.cell_type != "markdown" or not EXERCISE_HEADING.search(cell.source):
            continue
        empty, solution = (notebook[index + 1:index + 3] + [None, None])[:2]
        if not (empty and empty.cell_type == "code" and not empty.source.strip()):
            problems.append(f"the exercise in cell {index}: the next cell must be an empty "
                            "code cell, for the learner")
        elif not (solution and loaded_solution(solution)):
            problems.append(f"the exercise in cell {index}: the cell after the learner's must "
                            "be '# %load solutions/NN_name.py'")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_every_solution_is_loaded_by_exactly_one_cell():
    loaded = loads()
    problems = [f"solutions/{path.name} is loaded by {len(by)} cells ({', '.join(by) or 'none'})"
                for path in SOLUTIONS
                if len(by := loaded.get(f"solutions/{path.name}", [])) != 1]
    assert not problems, "exactly one cell must load each solution:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.name)
def test_solution_compiles(path):
    compile(path.read_text(encoding="utf-8"), str(path), "exec")
