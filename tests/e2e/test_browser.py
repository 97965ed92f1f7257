"""Notebooks in a real browser: JupyterLab, Debian's chromium, what nbval cannot see.

nbval runs the notebooks without a front end, so it cannot tell whether the widgets reach
a browser, or whether a page shown in an IFrame opens. Each test starts JupyterLab on a
free loopback port (with its own temporary config, runtime and data folders: nothing of
the user's is touched) over a copy of a notebook's cells up to a tagged one, opens it in
chromium through Playwright and runs it:

- notebook 05: types 3 into the panel's slider and waits for the panel's table to list
  three registered instances and for its plot to change;
- notebook 03b, as on a remote Jupyter (``MWKIT_LINKS=proxy``): the ``/popular`` page in
  its IFrame comes through JupyterLab's own ``/proxy/<port>/`` (jupyter-server-proxy), shows
  a service_id once an instance runs and, refreshing itself, the three instances' in turn;
  then the kernel is shut down and the stack that ``!mwkit up --owner`` made goes with it.

Screenshots land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
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
ORIGINAL_DEMO = "03b_the_original_demo.ipynb"
HUB_PREFIX = "/user/learner/"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def copy_up_to(source: Path, target: Path, tag: str) -> None:
    """The notebook's cells up to the one tagged ``tag``: the rest would stop the stack."""
    notebook = nbformat.read(source, as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    last = next((i for i, cell_tags in enumerate(tags) if tag in cell_tags), None)
    assert last is not None, f"{source} has no cell tagged {tag!r}"
    notebook.cells = notebook.cells[:last + 1]
    nbformat.write(notebook, target)


@pytest.fixture
def jupyter_lab(tmp_path):
    """``start(notebook, tag, base="/", **env)``: JupyterLab on 127.0.0.1 over a copy of
    the notebook's cells up to the one tagged ``tag``, serving under the path ``base`` (as
    a JupyterHub's single-user server does under ``/user/<name>/``), with ``env`` added to
    its environment (its kernels inherit it); returns (its URL with the base, without the
    last slash; the notebook folder). The notebook's workdir is ``.mwkit`` in that folder.

    Afterwards: its kernels are shut down, whatever the notebook's stack left is torn down,
    and JupyterLab is stopped.
    """
    root = tmp_path / "notebooks"
    root.mkdir()
    servers = []

    def start(notebook: str, tag: str, base: str = "/", **extra: str) -> tuple[str, Path]:
        copy_up_to(REPO / "notebooks" / notebook, root / notebook, tag)
        url, server = start_jupyter_lab(tmp_path, root, base, extra)
        servers.append((url, server))
        return url, root

    yield start
    for url, server in servers:
        try:
            shut_down_kernels(url)
        finally:
            teardown(root / ".mwkit", progress=lambda line: None)
            stop_group(server, grace=10)
    left = leftovers(tmp_path, root / ".mwkit")
    assert not left, f"JupyterLab, its kernel or the notebook's stack left: {left}"


def start_jupyter_lab(tmp_path: Path, root: Path, base: str, extra: dict[str, str]):
    """Start JupyterLab over ``root`` under ``base``; return its URL and process once it
    answers."""
    home = tmp_path / "jupyter"
    env = {"JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "run"),
           "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1", "MWKIT_WORKDIR": str(root / ".mwkit"), **extra}
    news = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" over the screenshot
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    url = f"http://127.0.0.1:{port}{base.rstrip('/')}"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
               "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}",
               f"--ServerApp.base_url={base}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    server = spawn(command, log_path=log, cwd=root, env=env)
    try:
        wait_for_http(f"{url}/api/status", timeout=60, proc=server, log_path=log)
    except BaseException:
        stop_group(server, grace=10)
        raise
    return url, server


def shut_down_kernels(url: str) -> int:
    """Shut down every kernel of the JupyterLab at ``url``, as its Kernel menu does."""
    try:
        kernels = requests.get(f"{url}/api/kernels", timeout=5).json()
        for kernel in kernels:
            requests.delete(f"{url}/api/kernels/{kernel['id']}", timeout=30)
        return len(kernels)
    except requests.RequestException as error:
        print(f"could not shut the kernels down through the API: {error}")
        return 0


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


@contextlib.contextmanager
def chromium_page():
    """A chromium page (Debian's chromium, driven by Playwright), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1400})
        finally:
            browser.close()


def run_all_cells(page, url: str, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab at ``url`` and run all its cells (without waiting)."""
    page.goto(f"{url}/lab/tree/{notebook}", timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
        timeout=60_000)
    page.evaluate("""async () => {
        const notebook = window.jupyterapp.shell.currentWidget;
        await notebook.context.ready;
        await notebook.sessionContext.ready;
    }""")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def test_the_slider_scales_popularity_in_a_real_browser(jupyter_lab):
    from playwright.sync_api import expect

    url, root = jupyter_lab(NOTEBOOK, "panel")
    with chromium_page() as page:
        run_all_cells(page, url, NOTEBOOK)

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
    shutil.rmtree(root / ".mwkit", ignore_errors=True)


@pytest.mark.parametrize("base, env", [
    pytest.param("/", {"MWKIT_LINKS": "proxy"}, id="remote-jupyter"),
    pytest.param(HUB_PREFIX, {"JUPYTERHUB_SERVICE_PREFIX": HUB_PREFIX}, id="jupyterhub"),
])
def test_the_popular_page_opens_through_jupyters_proxy_and_goes_with_the_kernel(
        jupyter_lab, base, env):
    """Notebook 03b as on a remote Jupyter server (told by MWKIT_LINKS) and as on a
    JupyterHub's single-user server (found by JUPYTERHUB_SERVICE_PREFIX, under its
    prefix): the IFrame's link is the kit's proxied one, never 127.0.0.1."""
    from playwright.sync_api import Error, expect

    url, root = jupyter_lab(ORIGINAL_DEMO, "three-v1", base=base, **env)
    workdir = root / ".mwkit"
    with chromium_page() as page:
        run_all_cells(page, url, ORIGINAL_DEMO)
        iframe = page.locator("iframe")
        expect(iframe).to_have_count(1, timeout=90_000)
        link = iframe.get_attribute("src")
        assert re.fullmatch(rf"{base}proxy/\d+/popular\?refresh=1", link), link
        frame = page.frame_locator("iframe")
        expect(frame.locator("h1")).to_have_text("The Most Popular Users", timeout=30_000)

        service_id = frame.locator("#service-id")
        expect(service_id).to_have_text(UUID, timeout=90_000)  # an instance runs
        page.get_by_text("popularity-v1-3 is registered").wait_for(timeout=90_000)
        seen, deadline = set(), time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:  # the page reloads itself
            with contextlib.suppress(Error):  # between two loads there is no element
                seen.add(service_id.inner_text(timeout=1_000))
            page.wait_for_timeout(300)
        assert len({text for text in seen if UUID.fullmatch(text)}) == 3, seen
        load = frame.locator("#refresh").inner_text()
        assert re.fullmatch(r"Load (\d+) of 300: the next in 1 s\.", load), load
        assert int(load.split()[1]) > 3

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook-03b.png"), full_page=True)
        print(f"screenshot: {ARTIFACTS / 'notebook-03b.png'}")

    assert groups_of(workdir), "the notebook's stack should run while its kernel does"
    assert shut_down_kernels(url) == 1
    deadline = time.monotonic() + 15
    while groups_of(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not groups_of(workdir), "the stack outlived its kernel"
    assert "is gone: taking its stack down" in (workdir / "watchdog.log").read_text()
