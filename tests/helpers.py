"""Crafting artifacts for fast checker tests (no kernel, no training)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from dlcourse import capture

MISSING = object()


def write_answers(folder: Path, monkeypatch, **answers) -> Path:
    """Capture ``answers`` exactly as a hidden test cell would (``MISSING`` = undefined)."""
    monkeypatch.setenv(capture.ENV_ARTIFACTS, str(folder))
    namespace = {k: v for k, v in answers.items() if v is not MISSING}
    capture.answers(namespace, *answers)
    return folder


def write_execution(folder: Path, cells: dict[str, dict], status: str = "completed") -> None:
    (folder / "execution.json").write_text(
        json.dumps({"status": status, "reason": None, "seconds": 1.0, "cells": cells})
    )


def check_outcomes(cells) -> dict[str, list[tuple[str, str]]]:
    """``{grade id: [(check id, message id), ...]}`` of the failed checks."""
    return {
        gid: [(c.id, c.message_id) for c in cell.checks if not c.passed]
        for gid, cell in cells.items()
    }


# --- a headless browser for the pages and notebooks a person sees --------------------------------

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver", "/usr/lib/chromium/chromedriver")
BROWSER_INSTALL = (
    "this test needs a headless browser: apt-get install -y chromium chromium-driver "
    "(Debian) and pip install selenium"
)


def which(names) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


def headless_chromium(profile: Path, width: int, page_timeout: float):
    """A selenium driver on Debian's headless Chromium (skips the test when it is missing).

    The flags keep Chromium off this machine's closed network (no background connections, no
    component updates, no sync) and in a fresh profile."""
    import pytest

    pytest.importorskip("selenium", reason=BROWSER_INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = which(CHROMIUM), which(CHROMEDRIVER)
    if not chromium or not chromedriver:
        pytest.skip(BROWSER_INSTALL)
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={width},900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # selenium must never try to download a driver
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(page_timeout)
    return driver
