"""The committed notebooks are clean lessons that nbval can check.

The notebooks themselves run under nbval (``pytest --nbval-lax --nbval-sanitize-with
notebooks/sanitize.cfg notebooks/``). These tests check, without running anything, what
makes that possible and keeps the diffs readable:

- a two-digit number prefix (the teaching order; a letter after it for a notebook that
  slots in between, as 03b), kernel ``python3``, a Markdown cell first;
- the first code cell calls ``teardown(...)``, so a crashed earlier run cannot get in the way;
- at least one *checked* cell (``# NBVAL_CHECK_OUTPUT`` as its first line, or the
  ``nbval-check-output`` tag), and each checked cell stores the output nbval compares with:
  plain printed text, nothing else. nbval compares a checked cell's new output with the
  stored one (a checked cell without a stored output would only check that it prints
  nothing), and it compares only cells stored as run, so a checked cell also keeps its
  execution count: its position among the code cells, as after a fresh top-to-bottom run
  (stable diffs). Every other cell stores no output and no execution count;
- no notebook chooses the runtime itself (``MWKIT_RUNTIME`` decides, so CI can run the
  series on processes and on Docker; a Swarm stack is a lesson's subject, not a choice);
- ``sanitize.cfg`` parses, and its rules replace what differs between runs.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CHECK_COMMENT = "# NBVAL_CHECK_OUTPUT"
CHECK_TAG = "nbval-check-output"
NAME = re.compile(r"^\d{2}[a-z]?_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
#: ``runtime="swarm"`` is no choice of where the series runs but the subject of 08b's
#: Swarm section (which runs only when the series runs on Docker).
CHOOSES_RUNTIME = re.compile(
    r"""runtime\s*=\s*["'](?!swarm["'])|environ\[["']MWKIT_RUNTIME["']\]\s*=""")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def is_checked(cell: dict) -> bool:
    return (source(cell).lstrip().startswith(CHECK_COMMENT)
            or CHECK_TAG in cell.get("metadata", {}).get("tags", []))


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert PATHS, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_name_kernel_and_first_cells(path):
    assert NAME.match(path.name), (f"{path.name}: name notebooks NN_words_with_underscores"
                                   ".ipynb (a two-digit number, the teaching order)")
    notebook = load(path)
    kernel = notebook.get("metadata", {}).get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name}: kernel is {kernel!r}, not python3"
    assert notebook["cells"] and notebook["cells"][0]["cell_type"] == "markdown", \
        f"{path.name}: the first cell must be Markdown that says what the lesson is"
    cells = code_cells(notebook)
    assert cells and re.search(r"\bteardown\(", source(cells[0])), \
        f"{path.name}: the first code cell must call teardown(WORKDIR) (leftovers of a crash)"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_outputs_only_where_nbval_compares_them(path):
    cells = code_cells(load(path))
    checked = [number for number, cell in enumerate(cells, 1) if is_checked(cell)]
    assert checked, (f"{path.name}: no checked cell; start the cells that carry the lesson "
                     f"with {CHECK_COMMENT}")
    for number, cell in enumerate(cells, 1):
        where = f"{path.name}, code cell {number}"
        outputs = cell.get("outputs", [])
        if number not in checked:
            assert not outputs and cell.get("execution_count") is None, \
                f"{where}: stores an output or execution count, but only checked cells may"
            continue
        assert cell.get("execution_count") == number, \
            (f"{where}: a checked cell stores the execution count {number} (its position), "
             f"not {cell.get('execution_count')}; nbval skips cells stored as unrun")
        assert outputs, (f"{where}: a checked cell without its expected output checks "
                         "nothing; run it and keep what it prints")
        for output in outputs:
            assert output.get("output_type") == "stream" and output.get("name") == "stdout", \
                f"{where}: a checked cell may store printed text only, not {output!r:.80}"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_the_environment_chooses_the_runtime(path):
    for number, cell in enumerate(code_cells(load(path)), 1):
        assert not CHOOSES_RUNTIME.search(source(cell)), \
            f"{path.name}, code cell {number}: leave the runtime to MWKIT_RUNTIME"


def test_the_readme_lists_every_notebook():
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    missing = [path.name for path in PATHS if path.name not in readme]
    assert not missing, f"notebooks/README.md does not list {missing}"


def sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    assert parser.read(NOTEBOOKS / "sanitize.cfg"), "notebooks/sanitize.cfg is missing"
    return [(re.compile(parser[name]["regex"]), parser[name]["replace"])
            for name in parser.sections()]


def sanitize(text: str) -> str:
    for pattern, replacement in sanitizers():
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.parametrize(("first", "second"), [
    ("answered by http://127.0.0.1:41523/popular", "answered by http://127.0.0.1:5001/popular"),
    ("service_id 0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
     "service_id 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
    ("fd4bccb (tag: v1) v1", "0a1b2c3 (tag: v1) v1"),
    ("commit fd4bccb1ddc51ffa01aa461d494b586ec1631335",
     "commit 1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5"),
    ("folder /tmp/nbrun/notebooks/.mwkit/checkouts", "folder /work/main/notebooks/.mwkit/x"),
    ("took 12.5 ms, then 3 s", "took 830 ms, then 1.25 s"),
    ("at 23:14:05.123 on 2026-11-28", "at 01:02:03 on 2025-01-01"),
    ("asking the running `mwkit up` (pid 4242) to stop",
     "asking the running `mwkit up` (pid 77) to stop"),
    ("registered at 172.18.0.5:5000", "registered at 172.18.0.12:5000"),
])
def test_sanitize_makes_runs_alike(first, second):
    assert sanitize(first) == sanitize(second)


@pytest.mark.parametrize("fact", [
    "answered: ['popularity-v1-1', 'popularity-v1-2', 'popularity-v1-3']",
    "failed reloads: 0",
    "NO SERVICES AVAILABLE: True",
    "12 users (1 banned), 1000 stories",
])
def test_sanitize_keeps_the_facts(fact):
    assert sanitize(fact) == fact
