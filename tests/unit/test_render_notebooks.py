"""scripts/render_notebooks.py: which picture of a notebook goes to the gallery."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_notebooks.py"
spec = importlib.util.spec_from_file_location("render_notebooks", SCRIPT)
render_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_notebooks)


def picture(payload: bytes):
    return new_output("display_data", data={"image/png": base64.b64encode(payload).decode(),
                                            "text/plain": "<Figure>"})


def test_the_main_picture_is_the_last_png():
    notebook = new_notebook(cells=[
        new_code_cell("first", outputs=[picture(b"early")]),
        new_markdown_cell("![not an output](x.png)"),
        new_code_cell("summary", outputs=[new_output("stream", text="hi"),
                                          picture(b"summary")]),
        new_code_cell("text only", outputs=[new_output("stream", text="done")]),
    ])
    assert render_notebooks.main_picture(notebook) == b"summary"


def test_a_notebook_without_png_has_no_main_picture():
    svg = new_output("display_data", data={"image/svg+xml": "<svg/>"})
    notebook = new_notebook(cells=[new_code_cell("diagram", outputs=[svg]),
                                   new_code_cell("nothing run yet")])
    assert render_notebooks.main_picture(notebook) is None


def test_a_cell_tagged_gallery_chooses_the_picture():
    chosen = new_code_cell("broken run", outputs=[picture(b"broken")])
    chosen.metadata["tags"] = ["pause-before", "gallery"]
    notebook = new_notebook(cells=[chosen, new_code_cell("fixed", outputs=[picture(b"fixed")])])
    assert render_notebooks.main_picture(notebook) == b"broken"
