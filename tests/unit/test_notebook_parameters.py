"""The tests' shorter runs of long lessons: papermill's ``parameters`` cell, overridden."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from tests.e2e.test_notebook_pace import SHORTER
from tests.helpers.notebooks import PARAMETERS_TAG, tags, with_parameters

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_of(*cells):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = list(cells)
    return notebook


def test_the_values_are_set_right_after_the_parameters_cell():
    parameters = nbformat.v4.new_code_cell("SECONDS = 5", metadata={"tags": [PARAMETERS_TAG]})
    notebook = notebook_of(nbformat.v4.new_code_cell("import time"), parameters,
                           nbformat.v4.new_code_cell("time.sleep(SECONDS)"))
    changed = with_parameters(notebook, SECONDS=2, NAME="x")
    assert [cell.source for cell in changed.cells] == [
        "import time", "SECONDS = 5", "SECONDS = 2\nNAME = 'x'", "time.sleep(SECONDS)"]
    assert len(notebook.cells) == 3  # the notebook given is left as it was


@pytest.mark.parametrize("count", [0, 2])
def test_a_notebook_needs_exactly_one_parameters_cell(count):
    cells = [nbformat.v4.new_code_cell("A = 1", metadata={"tags": [PARAMETERS_TAG]})
             for _ in range(count)]
    with pytest.raises(ValueError, match=f"exactly one cell tagged 'parameters', not {count}"):
        with_parameters(notebook_of(*cells), A=2)


@pytest.mark.parametrize("name", sorted(SHORTER))
def test_each_shortened_notebook_assigns_the_names_it_is_given(name):
    """A renamed parameter would leave the override setting a name nothing reads."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    [cell] = [cell for cell in notebook.cells if PARAMETERS_TAG in tags(cell)]
    assigned = {target.id for node in ast.parse(cell.source).body
                if isinstance(node, ast.Assign) for target in node.targets}
    assert set(SHORTER[name]) <= assigned
