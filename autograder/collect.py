"""Collect stage: find the submissions of an assignment in nbgrader's ``submitted/`` layout.

Layout: ``<submitted>/<student id>/<assignment id>/<notebook>.ipynb`` (+ ``timestamp.txt``).
A student folder without the released notebook name is reported (nbgrader would skip it
silently): the notebook may have been renamed, and the student deserves to be told. A copy that
a browser or an LMS renamed (``learning_rate (1).ipynb``, ``learning_rate-2.ipynb``) is graded,
with a note; a notebook left outside the assignment folder (``<student>/learning_rate.ipynb``)
is reported for that student with the path it should have had.

Everything in ``submitted/`` came from students. A folder whose name is not a valid student id
is *refused*: it is listed with its reason (``Scan.refused``) and never becomes a submission, so
it never reaches the gradebook, the results or an export. ``timestamp.txt`` is read bounded and
parsed; free text, a folder or a link in its place leaves the time unknown, with a note.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.results import Note, StageError
from autograder.untrusted import UnsafeInput, clean_text, read_bounded
from dlcourse import layout

STUDENT_ID = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}"
)  # always fullmatch: "$" admits "ana\n"
TIMESTAMP_FILE = layout.TIMESTAMP_FILE
MAX_TIMESTAMP_BYTES = 256
MAX_FOLDERS = 100_000  # student folders scanned in one submitted/ tree
MAX_LISTED = 200  # entries of one student folder looked at for a copy or a misplaced notebook
# Canvas appends "-1", browsers " (1)" to a file downloaded or uploaded twice
_COPY_SUFFIX = re.compile(r"(?:-\d+|\s*\(\d+\))+$")


class MissingFolder(StageError):
    """The folder the instructor pointed at (or the course's ``submitted/``) does not exist."""

    def __init__(self, path: Path):
        super().__init__("collect.no_submitted_folder", path=str(path))


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: no notebook with the released name
    problem: Note | None = None  # why there is nothing to grade
    timestamp: str | None = None  # nbgrader's format, "2026-11-20 10:00:00.000000 UTC"
    notes: tuple[Note, ...] = ()  # what was wrong around the notebook (its timestamp...)


@dataclass(frozen=True)
class Refusal:
    """A folder in ``submitted/`` that is not a submission, and why (a note as data:
    ``{"id", "params"}``, rendered where it is shown, in the reader's language)."""

    folder: str  # the name, escaped: it may hold control characters
    reason: dict[str, Any]


@dataclass
class Scan:
    submissions: list[Submission] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def scan_submissions(
    submitted_dir: str | Path, assignment_id: str, notebook: str, students: list[str] | None = None
) -> Scan:
    """Every student folder holding ``assignment_id``, sorted by student id, and the folders
    refused (an invalid student id). Raises ``MissingFolder`` when ``submitted_dir`` is not a
    folder: "no submissions" and "looked in the wrong place" must not look alike."""
    root = Path(submitted_dir)
    scan = Scan()
    if not _is_real_dir(root):
        raise MissingFolder(root)
    folders = sorted(p for p in itertools.islice(root.iterdir(), MAX_FOLDERS) if _is_real_dir(p))
    for folder in folders:
        student = folder.name
        if students and student not in students:
            continue
        adir = folder / assignment_id
        if not _is_real_dir(adir):
            misplaced = _misplaced_notebook(folder, assignment_id, notebook)
            if misplaced is not None and STUDENT_ID.fullmatch(student):
                scan.submissions.append(Submission(student, None, misplaced))
            continue
        if not STUDENT_ID.fullmatch(student):
            scan.refused.append(Refusal(ascii(student), Note("collect.invalid_id").to_dict()))
            continue
        timestamp, notes = read_timestamp(adir / TIMESTAMP_FILE)
        path = adir / notebook
        if path.is_file() and not path.is_symlink():
            scan.submissions.append(Submission(student, path, None, timestamp, notes))
            continue
        copy = _renamed_copy(adir, notebook)
        if copy is not None:
            renamed = Note("note.notebook_copy", {"found": _shown(copy.name), "notebook": notebook})
            scan.submissions.append(Submission(student, copy, None, timestamp, (*notes, renamed)))
            continue
        others = [_shown(p.name) for p in itertools.islice(sorted(adir.glob("*.ipynb")), 5)]
        reason = Note("submission.no_notebook", {"notebook": notebook, "found": ", ".join(others)})
        scan.submissions.append(Submission(student, None, reason, timestamp, notes))
    return scan


def notebook_stem(filename: str) -> str:
    """``Learning_Rate-1.ipynb`` -> ``learning_rate``: the name without copy suffixes."""
    stem = filename[: -len(".ipynb")] if filename.lower().endswith(".ipynb") else filename
    return _COPY_SUFFIX.sub("", stem).strip().casefold()


def _copy_number(filename: str) -> int:
    digits = re.findall(r"\d+", filename[len(notebook_stem(filename)) :])
    return int(digits[-1]) if digits else 0


def _notebooks_named(folder: Path, notebook: str) -> list[Path]:
    """The regular files in ``folder`` that are ``notebook`` up to case and copy suffixes."""
    want = notebook_stem(notebook)
    entries = itertools.islice(folder.iterdir(), MAX_LISTED)
    return [
        p
        for p in entries
        if p.name.lower().endswith(".ipynb")
        and notebook_stem(p.name) == want
        and p.is_file()
        and not p.is_symlink()
    ]


def _renamed_copy(adir: Path, notebook: str) -> Path | None:
    """The released notebook under a copy's name; of several, the latest copy (the highest
    number a browser gave it), so the choice depends on the names alone."""
    copies = _notebooks_named(adir, notebook)
    return max(copies, key=lambda p: (_copy_number(p.name), p.name)) if copies else None


def _misplaced_notebook(folder: Path, assignment_id: str, notebook: str) -> Note | None:
    """A note when the student's folder holds the notebook outside ``<assignment_id>/``:
    directly, or in a folder of another name (``Lesson4_Learning_Rate/``, ``learning_rate/``)."""
    places = [folder]
    for entry in itertools.islice(sorted(folder.iterdir()), MAX_LISTED):
        if _is_real_dir(entry) and notebook_stem(entry.name) == notebook_stem(assignment_id):
            places.append(entry)
        elif _is_real_dir(entry) and notebook_stem(entry.name) == notebook_stem(notebook):
            places.append(entry)
    for place in places:
        found = _notebooks_named(place, notebook)
        if found:
            return Note(
                "submission.misplaced",
                {
                    "found": _shown(str(found[0].relative_to(folder.parent))),
                    "expected": _shown(f"{folder.name}/{assignment_id}/{notebook}"),
                },
            )
    return None


def _shown(name: str) -> str:
    return clean_text(name, 120, one_line=True)


def find_submissions(
    submitted_dir: str | Path, assignment_id: str, notebook: str, students: list[str] | None = None
) -> list[Submission]:
    """The submissions of ``scan_submissions`` (refused folders left out)."""
    return scan_submissions(submitted_dir, assignment_id, notebook, students).submissions


def read_timestamp(path: Path) -> tuple[str | None, tuple[Note, ...]]:
    """The submission time in nbgrader's format, or None with a note saying why."""
    if not path.exists() and not path.is_symlink():
        return None, ()
    try:
        text = read_bounded(path, MAX_TIMESTAMP_BYTES).decode("utf-8").strip()
    except (OSError, UnsafeInput, UnicodeDecodeError):
        return None, (Note("note.timestamp_unreadable"),)
    try:
        from nbgrader.utils import parse_utc

        moment = parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return None, (Note("note.timestamp_not_a_date"),)
    if not 1970 <= moment.year <= 9999:
        return None, (Note("note.timestamp_impossible"),)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), ()


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
