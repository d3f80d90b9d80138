"""The sample class: submissions generated from the release notebook, never hand-edited JSON.

Each student is a recipe (what they wrote in which answer cell, what else they did to the
notebook). ``build_sample_class`` writes them in nbgrader's ``submitted/`` layout; ``EXPECTED``
says what a careful teacher would give each of them, cell by cell.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

TIMESTAMP = "2026-11-20 10:00:00.000000 UTC"


def recipes(assignment_id: str) -> dict[str, Callable]:
    """The sample students of an assignment (module ``tests.sample_class.<assignment id>``)."""
    return importlib.import_module(f"tests.sample_class.{assignment_id}").RECIPES


def expected(assignment_id: str) -> dict[str, dict]:
    """What a careful teacher gives each sample student: status, per-cell scores, messages."""
    return importlib.import_module(f"tests.sample_class.{assignment_id}").EXPECTED


def fill(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the source of each answer cell (by grade id) replaced."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def cell_by_id(nb: nbformat.NotebookNode, gid: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == gid:
            return cell
    raise KeyError(gid)


def insert_after(nb: nbformat.NotebookNode, gid: str, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a new plain code cell after the cell ``gid``."""
    nb = copy.deepcopy(nb)
    index = next(
        i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid
    )
    nb.cells.insert(index + 1, new_code_cell(source))
    return nb


def build_sample_class(
    release_dir: Path, submitted_dir: Path, assignment_id: str, notebook: str
) -> list[str]:
    """Write every sample student of ``assignment_id``; returns their ids."""
    release_nb = nbformat.read(Path(release_dir) / assignment_id / notebook, as_version=4)
    written = []
    for student, recipe in recipes(assignment_id).items():
        folder = Path(submitted_dir) / student / assignment_id
        folder.mkdir(parents=True, exist_ok=True)
        produced = recipe(release_nb)
        target = folder / notebook
        if isinstance(produced, (bytes, str)):
            data = produced.encode() if isinstance(produced, str) else produced
            target.write_bytes(data)
        elif isinstance(produced, tuple):  # (file name, notebook): a renamed submission
            name, nb = produced
            nbformat.write(nb, folder / name)
        else:
            nbformat.write(produced, target)
        (folder / "timestamp.txt").write_text(TIMESTAMP, encoding="utf-8")
        written.append(student)
    return written
