"""The one results model. Everything downstream (gradebook, feedback, reports, exports) reads it.

JSON contract (external tools rely on these fields; more may be added)::

    {"assignment": "<id>",
     "students": {"<student id>": {
        "status": "graded" | "error", "error": null | "<clear reason>",
        "score": <float>, "max_score": <float>,
        "cells": {"<grade id>": {"score": <float>, "max_score": <float>,
            "checks": [{"id": "<check id>", "passed": <bool>, "message": "<text>"}]}}}}}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from autograder.untrusted import plain_data

Outcome = Literal["passed", "failed", "not_attempted", "error"]


@dataclass(frozen=True)
class Note:
    """A text for people, as data: a catalogue id and its parameters, rendered where it is
    shown, in the reader's language (``autograder/messages/pipeline.toml``)."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, language: str = "en") -> str:
        from autograder import messages

        return messages.render(self.id, self.params, language)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Any) -> Note | None:
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            params = data.get("params")
            return cls(data["id"], dict(params) if isinstance(params, dict) else {})
        return None


class StageError(Exception):
    """A stage cannot do what the instructor asked (a folder that does not exist, nothing to
    export, an assignment not graded yet): its message as data, shown in their language."""

    def __init__(self, message_id: str, **params: Any):
        self.note = Note(message_id, params)
        super().__init__(self.note.text("en"))


class InvalidSetting(ValueError):
    """A value a settings schema refuses (raised in a settings dataclass's ``__post_init__``):
    its message as data; the configuration loader adds ``where`` and raises it as a
    ``ConfigError`` (``autograder/messages/config.toml``)."""

    def __init__(self, message_id: str, **params: Any):
        self.message_id = message_id
        self.params = params
        super().__init__(Note(message_id, {"where": "", **params}).text("en"))


def render_note(data: Any, language: str, fallback: str | None = None) -> str:
    """A stored note (``{"id", "params"}``) in ``language``; ``fallback`` for results written
    before notes existed, or a note the catalogue no longer knows."""
    note = Note.from_dict(data)
    if note is not None:
        try:
            return note.text(language)
        except Exception:  # noqa: BLE001 - an old or foreign results file
            pass
    return fallback or ""


@dataclass
class CheckResult:
    """One check of one graded cell."""

    id: str
    passed: bool
    message: str  # in the course language
    message_id: str
    params: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # every language
    hint: str | None = None
    outcome: Outcome = "failed"
    points: float = 0.0  # points earned
    max_points: float = 0.0


@dataclass
class CellResult:
    score: float
    max_score: float
    checks: list[CheckResult] = field(default_factory=list)
    reviewed: bool = False  # the score is the instructor's (a formgrader override), not ours

    @property
    def not_attempted(self) -> bool:
        return bool(self.checks) and all(c.outcome == "not_attempted" for c in self.checks)


@dataclass
class StudentResult:
    student: str
    assignment: str
    status: Literal["graded", "error"]
    error: str | None
    score: float
    max_score: float
    cells: dict[str, CellResult] = field(default_factory=dict)
    notebook: str | None = None
    problems: list[str] = field(default_factory=list)  # notes on repaired notebooks etc.
    timing: dict[str, float] = field(default_factory=dict)
    lateness: dict[str, Any] = field(default_factory=dict)
    submission_sha256: str | None = None
    # the same texts as data (``Note.to_dict``): ``error`` and ``problems`` are their English
    # renderings, kept for tools that read the JSON; pages and comments render these
    error_note: dict[str, Any] | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)

    def error_in(self, language: str) -> str | None:
        return error_text(self.error_note, self.error, language)

    def notes_in(self, language: str) -> list[str]:
        return note_texts(self.notes, self.problems, language)


def error_text(error_note: Any, fallback: str | None, language: str) -> str | None:
    """The reason a submission could not be graded, in ``language``, as a sentence."""
    if not error_note and not fallback:
        return None
    return _sentence(render_note(error_note, language, fallback))


def note_texts(notes: list[Any], fallback: list[str], language: str) -> list[str]:
    """The repair notes in ``language`` (results written before notes: their own texts)."""
    if notes:
        return [_sentence(render_note(n, language)) for n in notes]
    return [_sentence(p) for p in fallback]


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


@dataclass
class AssignmentResult:
    assignment: str
    students: dict[str, StudentResult] = field(default_factory=dict)
    # folders of submitted/ that were not graded, and why ({"folder", "reason"}): an invalid
    # student id never becomes a student, so it never reaches the gradebook or an export
    refused: list[dict[str, str]] = field(default_factory=list)
    # this run only (not written): students recorded earlier who have no submission any more,
    # and those of them removed from the results and the gradebook (``grade --prune``)
    absent: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    # this run only: graded students ``regrade`` could not re-check (artifacts gone or of
    # another layout); their old result stands until they are graded again
    unchecked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "assignment": self.assignment,
            "students": {sid: student_to_dict(r) for sid, r in sorted(self.students.items())},
        }
        if self.refused:
            data["refused"] = plain_data(self.refused, max_depth=3)
        return data

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write atomically, so a crash never leaves a half-written results file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.to_dict(), ensure_ascii=False, indent=1, allow_nan=False)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(data.encode("utf-8"))
        Path(tmp.name).replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssignmentResult:
        result = cls(assignment=data["assignment"], refused=list(data.get("refused", [])))
        for sid, raw in data.get("students", {}).items():
            result.students[sid] = student_from_dict(raw)
        return result

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> AssignmentResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


class ResultsFile:
    """An assignment's results on disk: ``<A>.json`` plus an append-only journal beside it.

    While a class is graded, each finished student is appended to ``<A>.journal.jsonl`` (one
    line, flushed to disk), so a crash loses nothing that had finished, and the cost per student
    stays constant; rewriting the whole JSON per student would cost O(class size) each time, which
    at 10,000 students makes the writer the bottleneck. ``save`` folds everything into the JSON
    and removes the journal; ``load`` replays a journal left by an interrupted run.
    """

    def __init__(self, folder: str | os.PathLike, assignment_id: str):
        self.assignment_id = assignment_id
        self.path = Path(folder) / f"{assignment_id}.json"
        self.journal = Path(folder) / f"{assignment_id}.journal.jsonl"
        self._journal_handle: Any = None

    def load(self) -> AssignmentResult:
        results = (
            AssignmentResult.read_json(self.path)
            if self.path.is_file()
            else AssignmentResult(self.assignment_id)
        )
        if self.journal.is_file():
            with self.journal.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        result = student_from_dict(json.loads(line))
                    except (ValueError, TypeError, KeyError):
                        break  # the line a crash cut short: that student is graded again
                    results.students[result.student] = result
        return results

    def append(self, result: StudentResult) -> None:
        if self._journal_handle is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._journal_handle = self.journal.open("a", encoding="utf-8")
        line = json.dumps(student_to_dict(result), ensure_ascii=False, allow_nan=False)
        self._journal_handle.write(line + "\n")
        self._journal_handle.flush()
        os.fsync(self._journal_handle.fileno())

    def save(self, results: AssignmentResult) -> Path:
        """The whole results in ``<A>.json`` (atomically); the journal is then redundant."""
        self.close()
        results.write_json(self.path)
        self.journal.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        if self._journal_handle is not None:
            self._journal_handle.close()
            self._journal_handle = None


def student_to_dict(result: StudentResult) -> dict[str, Any]:
    """One student's result as JSON-safe data. Results quote the submission (messages, errors,
    lateness): whatever could not be written as UTF-8 JSON (a lone surrogate, a non-finite
    float, a deep structure) is cleaned here, so one student can never stop the results file."""
    data = asdict(result)
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        data = plain_data(data, max_depth=12, limit=100_000)
    return data


def student_from_dict(raw: dict[str, Any]) -> StudentResult:
    cells = {
        gid: CellResult(
            score=c["score"],
            max_score=c["max_score"],
            checks=[CheckResult(**check) for check in c.get("checks", [])],
            reviewed=bool(c.get("reviewed", False)),
        )
        for gid, c in raw.get("cells", {}).items()
    }
    fields = {k: v for k, v in raw.items() if k != "cells"}
    return StudentResult(cells=cells, **fields)
