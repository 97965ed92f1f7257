"""Execute every notebook and write it as HTML with its pictures: the instructor's preview.

The committed notebooks keep only their checked outputs, so neither a repository browser
nor a reader without a machine sees a plot. This runs each notebook top to bottom in a
fresh kernel (the process runtime unless ``MWKIT_RUNTIME`` says otherwise), in a workdir of
its own so that a stack someone has open in JupyterLab is left alone, and writes:

- ``build/notebooks/NN_x.html``: the executed notebook, pictures inside (ignored by Git),
  and ``build/notebooks/index.html`` linking them with the time each took;
- ``docs/pictures/NN_x.png``: the notebook's main picture, its last PNG output or that of
  the cells tagged ``gallery`` (committed:
  the gallery docs/instructor.md shows).

It prints how long each notebook took; the timing plan in docs/instructor.md uses them.

    make render                                   # every notebooks/[0-9]*.ipynb
    .venv/bin/python scripts/render_notebooks.py notebooks/04_*.ipynb
"""

from __future__ import annotations

import base64
import html
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUTPUT = ROOT / "build" / "notebooks"
PICTURES = ROOT / "docs" / "pictures"
GALLERY_TAG = "gallery"  # the cell whose picture the gallery shows, where the last is not
CELL_TIMEOUT = 600  # seconds; a notebook's longest cell takes well under a minute


def main_picture(notebook) -> bytes | None:
    """The PNG of the notebook's main picture, or None if it has none: the last picture of
    the cells tagged ``gallery`` if there are any (06 shows its broken run), else the
    notebook's last picture (its summary figure)."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    chosen = [cell for cell in cells if GALLERY_TAG in cell.metadata.get("tags", [])]
    pngs = [output["data"]["image/png"]
            for cell in chosen or cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})]
    return base64.b64decode(pngs[-1]) if pngs else None


def execute(path: Path, workdir: Path):
    """Run the notebook at ``path`` in its own folder; returns it executed and any error.

    On a failing cell the notebook is returned as far as it ran, with the error in that
    cell's output, so the HTML shows where it stopped. The workdir's stack is torn down
    afterwards whatever happened.
    """
    from mwkit.stack import teardown  # the kit, as the notebooks import it

    notebook = nbformat.read(path, as_version=4)
    env = {**os.environ, "MWKIT_WORKDIR": str(workdir),
           "MWKIT_RUNTIME": os.environ.get("MWKIT_RUNTIME", "process")}
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            record_timing=False)
    try:
        client.execute(env=env, cwd=str(path.parent))
        return notebook, None
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        return notebook, str(error).splitlines()[-1] if str(error) else type(error).__name__
    finally:
        teardown(workdir, progress=lambda line: None)


def render(path: Path) -> tuple[float, str | None]:
    """Execute, write the HTML and the gallery picture; returns (seconds, error or None)."""
    started = time.monotonic()
    notebook, error = execute(path, OUTPUT / "workdir" / path.stem)
    seconds = time.monotonic() - started
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    (OUTPUT / f"{path.stem}.html").write_text(body, encoding="utf-8")
    picture = PICTURES / f"{path.stem}.png"
    png = main_picture(notebook)
    if png:
        picture.write_bytes(png)
    elif not error:  # a notebook that no longer draws leaves no stale picture behind
        picture.unlink(missing_ok=True)
    return seconds, error


def write_index(results: dict[str, tuple[float, str | None]]) -> None:
    rows = "\n".join(
        f'<tr><td><a href="{stem}.html">{stem}</a></td><td>{seconds:.0f} s</td>'
        f"<td>{html.escape(error or 'ok')}</td></tr>"
        for stem, (seconds, error) in results.items())
    (OUTPUT / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>mwkit notebooks</title>"
        "<h1>mwkit notebooks, executed</h1><table><tr><th>notebook</th><th>time</th>"
        f"<th>result</th></tr>\n{rows}\n</table>\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    paths = [Path(arg).resolve() for arg in argv] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    PICTURES.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in paths:
        print(f"{path.stem} ...", flush=True)
        results[path.stem] = render(path)
        seconds, error = results[path.stem]
        print(f"{path.stem}: {seconds:.0f} s{'  FAILED: ' + error if error else ''}",
              flush=True)
    write_index(results)
    total = sum(seconds for seconds, _ in results.values())
    print(f"\n{len(results)} notebook(s) in {total:.0f} s; open {OUTPUT / 'index.html'}")
    return 1 if any(error for _, error in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
