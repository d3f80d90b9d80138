"""Crafting artifacts for fast checker tests (no kernel, no training)."""

from __future__ import annotations

import json
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
