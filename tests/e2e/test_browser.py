"""Notebook 05 in a real browser: JupyterLab, Debian's chromium, the panel's slider.

nbval runs the notebooks without a front end, so it cannot tell whether the widgets reach
a browser. This test starts JupyterLab on a free loopback port (with its own temporary
config, runtime and data folders: nothing of the user's is touched), opens notebook 05 in
chromium through Playwright, runs its cells up to the panel, types 3 into the slider and
waits for the panel's table to list three registered instances and for its plot to change.
A screenshot lands in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
import requests

from mwkit.procs import free_port, spawn, stop_group, wait_for_http
from mwkit.stack import teardown
from mwkit.wizard.runtimes.process import groups_of

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "05_scaling_with_sliders.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def copy_up_to_the_panel(source: Path, target: Path) -> None:
    """The notebook's cells up to the one tagged ``panel``: the rest would stop the stack."""
    notebook = nbformat.read(source, as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    last = next((i for i, cell_tags in enumerate(tags) if "panel" in cell_tags), None)
    assert last is not None, f"{source} has no cell tagged 'panel' (the one showing it)"
    notebook.cells = notebook.cells[:last + 1]
    nbformat.write(notebook, target)


@pytest.fixture
def jupyter_lab(tmp_path):
    """JupyterLab on 127.0.0.1 over a copy of the notebook; yields (url, notebook folder).

    Afterwards: its kernels are shut down, whatever the notebook's stack left is torn down,
    and JupyterLab is stopped.
    """
    root = tmp_path / "notebooks"
    root.mkdir()
    copy_up_to_the_panel(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    home = tmp_path / "jupyter"
    env = {"JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "run"),
           "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    news = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" over the screenshot
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
               "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    server = spawn(command, log_path=log, cwd=root, env=env)
    try:
        wait_for_http(f"{url}/api/status", timeout=60, proc=server, log_path=log)
        yield url, root
    finally:
        try:
            for kernel in requests.get(f"{url}/api/kernels", timeout=5).json():
                requests.delete(f"{url}/api/kernels/{kernel['id']}", timeout=30)
        except requests.RequestException as error:
            print(f"could not shut the kernels down through the API: {error}")
        finally:
            teardown(root / ".mwkit", progress=lambda line: None)
            stop_group(server, grace=10)
    left = leftovers(tmp_path, root / ".mwkit")
    assert not left, f"JupyterLab, its kernel or the notebook's stack left: {left}"


def leftovers(tmp_path: Path, workdir: Path, wait: float = 10.0) -> list[str]:
    """This test's processes still alive after ``wait`` s: JupyterLab and its kernel (their
    command lines name ``tmp_path``) and the notebook's stack (marked with ``workdir``)."""
    deadline = time.monotonic() + wait
    while True:
        found = [f"process group {pgid}" for pgid in groups_of(workdir)]
        for proc in psutil.process_iter(["cmdline"]):
            command = " ".join(proc.info["cmdline"] or [])
            if str(tmp_path) in command and proc.pid != os.getpid():
                found.append(f"{proc.pid}: {command[:120]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_slider_scales_popularity_in_a_real_browser(jupyter_lab):
    from playwright.sync_api import expect, sync_playwright

    url, root = jupyter_lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}", timeout=60_000)
            page.wait_for_function(
                "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
                timeout=60_000)
            page.evaluate("""async () => {
                const notebook = window.jupyterapp.shell.currentWidget;
                await notebook.context.ready;
                await notebook.sessionContext.ready;
            }""")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            panel = page.locator(".mwkit-panel")
            expect(panel).to_be_visible(timeout=90_000)
            table = panel.locator(".mwkit-instances")
            expect(table).to_contain_text("No popularity instance runs", timeout=30_000)
            plot = panel.locator("img.mwkit-plot")
            expect(plot).to_have_attribute("src", re.compile(r".+"))
            before = plot.get_attribute("src")

            readout = panel.locator(".mwkit-v1 .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("3")
            page.keyboard.press("Enter")

            rows = table.locator('tr[data-phase="registered"]')
            expect(rows).to_have_count(3, timeout=90_000)
            for number in (1, 2, 3):
                expect(table).to_contain_text(f"popularity-v1-{number}")
            page.wait_for_function(
                "before => document.querySelector('.mwkit-panel img.mwkit-plot').src !== before",
                arg=before, timeout=10_000)
            page.wait_for_timeout(2_000)  # two redraws: the new instances' colours in the plot
            expect(panel.locator(".mwkit-status")).to_contain_text("3 wanted, 3 registered")

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = panel.screenshot(path=str(ARTIFACTS / "control-panel.png"))
            assert shot[:4] == b"\x89PNG"
            page.screenshot(path=str(ARTIFACTS / "notebook-05.png"), full_page=True)
            print(f"screenshots: {ARTIFACTS / 'control-panel.png'}, "
                  f"{ARTIFACTS / 'notebook-05.png'}")
        finally:
            browser.close()
    shutil.rmtree(root / ".mwkit", ignore_errors=True)
