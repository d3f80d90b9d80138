"""The playground of lesson 4 in a real JupyterLab, driven by a headless Chromium.

What a student does: open the release notebook, "Run All", then click STEP in the widget. The
counter must say "Paso 1" after Run All (the ``pg.step();`` cell ran once), then "Paso 2" and
"Paso 3" after each click: the widget and ``pg.step()`` share one state.

The notebook is a copy of the release notebook cut after the ``pg.step();`` cell: the answer
cells after it raise NotImplementedError in the release, which would stop Run All. JupyterLab
runs on 127.0.0.1 with a token, its settings and runtime files in a temporary folder; the
server, its kernel and the browser are always stopped. A screenshot is saved
(``$PLAYGROUND_SCREENSHOTS``, else a temporary folder).

Needs JupyterLab, Debian's ``chromium`` and ``chromium-driver`` and ``selenium``; skipped with
that message when missing.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dlcourse.playground import Playground
from tests.helpers import headless_chromium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "release" / "lesson4_learning_rate" / "learning_rate.ipynb"
LAST_CELL = "playground-step"  # the ``pg.step();`` cell
WAIT = 60  # seconds, for every wait: a server start, a kernel start, a cell, a redraw
# The playground's VBox in the output of the show() cell: rate box and buttons, counter, plot.
WIDGET = ".jp-Cell-outputArea .jp-OutputArea-output > .widget-vbox"
COUNTER = f"{WIDGET} > .widget-label"
# JupyterLab user settings: no news toast over the page, every cell attached to the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _notebook_until_the_step_cell(folder: Path) -> Path:
    notebook = json.loads(RELEASE.read_text(encoding="utf-8"))
    ids = [cell.get("id") for cell in notebook["cells"]]
    last = ids.index(LAST_CELL)
    assert "".join(notebook["cells"][last]["source"]).strip() == "pg.step();"
    notebook["cells"] = notebook["cells"][: last + 1]
    path = folder / RELEASE.name
    path.write_text(json.dumps(notebook, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(server: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels); kill what is left, by pid."""
    import psutil

    try:
        started = psutil.Process(server.pid).children(recursive=True)  # the kernel
    except psutil.NoSuchProcess:
        started = []
    try:
        request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        server.wait(timeout=30)
    except Exception:
        server.kill()
        server.wait(timeout=30)
    for process in started:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab on a copy of the release notebook: ``(notebook URL, server log)``."""
    pytest.importorskip("jupyterlab", reason="this test needs JupyterLab (pip install jupyterlab)")
    pytest.importorskip("psutil")
    root = tmp_path / "course"
    root.mkdir()
    notebook = _notebook_until_the_step_cell(root)
    home = tmp_path / "jupyter"
    for name, settings in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {
        **os.environ,
        # nothing read from or written to the user's ~/.jupyter or ~/.local/share/jupyter
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    env.pop("NBGRADER_EXECUTION", None)  # the widget, not the static plot of grading
    token, port = secrets.token_hex(16), _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "jupyter-lab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={root}",
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
        yield f"{url}/lab/tree/{notebook.name}?token={token}", log_path
    finally:
        _stop(server, url, token)


@pytest.fixture
def driver(tmp_path):
    driver = headless_chromium(tmp_path / "chromium-profile", 1200, WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The JupyterLab page: bounded waits that leave a screenshot behind when they time out."""

    def __init__(self, driver, shots: Path):
        self.driver = driver
        self.shots = shots

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} failed"
        return path

    def wait(self, what, condition, timeout: float = WAIT):
        """``condition(driver)`` once truthy, within ``timeout`` s; else fail saying ``what``
        (a string, or a function that says what was seen instead)."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(
                self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
            ).until(condition)
        except TimeoutException:
            shot = self.screenshot("timeout")
            pytest.fail(f"after {timeout} s: {what if isinstance(what, str) else what()} ({shot})")

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.wait(f"no {css}", lambda d: d.find_element(By.CSS_SELECTOR, css))

    def counters(self) -> list[str]:
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
            COUNTER,
        )

    def expect_counter(self, expected: str) -> None:
        """The widget's counter says exactly ``expected``."""
        self.wait(
            lambda: f"the counter should read {expected!r}, it reads {self.counters()!r}",
            lambda _: self.counters() == [expected],
        )

    def plot_source(self) -> str:
        image = self.find(f"{WIDGET} .widget-output img")
        assert self.driver.execute_script("return arguments[0].naturalWidth", image) > 0
        return image.get_attribute("src")


def kernel_idle(driver) -> bool:
    from selenium.webdriver.common.by import By

    return "Python 3 (ipykernel) | Idle" in driver.find_element(By.ID, "jp-main-statusbar").text


def test_run_all_then_step_clicks_count_one_by_one(lab, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    notebook_url, log_path = lab
    shots = Path(os.environ.get("PLAYGROUND_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = Page(driver, shots)
    # What the counter must read, from the same playground in this process.
    expected = Playground(learning_rate=0.03)
    statuses = [expected.status()]
    for _ in range(3):
        expected.step(verbose=False)
        statuses.append(expected.status())
    assert [s.split(":")[0] for s in statuses] == ["Paso 0", "Paso 1", "Paso 2", "Paso 3"]

    driver.get(notebook_url)
    page.wait(
        "the kernel is not idle",
        kernel_idle,
    )
    # Run > Run All Cells, as a student does
    page.wait(
        "no Run menu",
        lambda d: d.find_element(
            By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][normalize-space()='Run']"
        ),
    ).click()
    page.find("li.lm-Menu-item[data-command='runmenu:run-all']").click()

    def all_cells_ran(d):
        errors = d.find_elements(
            By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
        )
        if errors:
            pytest.fail(f"a cell failed:\n{errors[0].text}\n{log_path.read_text()[-3000:]}")
        prompts = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return prompts and all(p.strip("[]: ").isdigit() for p in prompts)

    page.wait("not every cell ran", all_cells_ran)
    step_output = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell")[-1].text
    assert "Paso 1: w = " in step_output  # what pg.step() printed

    page.expect_counter(statuses[1])  # Run All took one step: the widget says so
    before = page.plot_source()
    step = page.find(f"{WIDGET} button[title='STEP']")
    step.click()
    page.expect_counter(statuses[2])
    # the plot is redrawn too (its own message: it may arrive after the counter's)
    page.wait("the plot was not redrawn", lambda _: page.plot_source() != before)
    step.click()
    page.expect_counter(statuses[3])
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", page.find(WIDGET))
    print(f"\nplayground screenshot: {page.screenshot('playground')}")

    # A new rate typed in the box restarts at step 0 as soon as it is committed (Enter)...
    rate = page.find(f"{WIDGET} .widget-text input")
    rate.send_keys(Keys.CONTROL, "a")
    before = page.plot_source()
    rate.send_keys("0.1", Keys.ENTER)
    page.expect_counter(Playground(learning_rate=0.1).status())
    # ipywidgets holds back a state update while the kernel still answers an earlier
    # message (the redraw) but sends a click at once: a click a few milliseconds after
    # typing may overtake the new rate. A student's hand takes longer than the redraw.
    page.wait("the plot was not redrawn", lambda _: page.plot_source() != before)
    page.wait("the kernel is not idle", kernel_idle)
    # ... or when the student goes straight to STEP (exercise 2): that click is step 1.
    rate.send_keys(Keys.CONTROL, "a")
    rate.send_keys("0.05")
    step.click()
    fast = Playground(learning_rate=0.05)
    fast.step(verbose=False)
    page.expect_counter(fast.status())
    assert rate.get_attribute("value") == "0.05"
