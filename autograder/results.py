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

Outcome = Literal["passed", "failed", "not_attempted", "error"]


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


@dataclass
class AssignmentResult:
    assignment: str
    students: dict[str, StudentResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment": self.assignment,
            "students": {sid: asdict(r) for sid, r in sorted(self.students.items())},
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write atomically, so a crash never leaves a half-written results file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8"
        ) as tmp:
            json.dump(self.to_dict(), tmp, ensure_ascii=False, indent=1)
        Path(tmp.name).replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssignmentResult:
        result = cls(assignment=data["assignment"])
        for sid, raw in data.get("students", {}).items():
            result.students[sid] = student_from_dict(raw)
        return result

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> AssignmentResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def student_from_dict(raw: dict[str, Any]) -> StudentResult:
    cells = {
        gid: CellResult(
            score=c["score"],
            max_score=c["max_score"],
            checks=[CheckResult(**check) for check in c.get("checks", [])],
        )
        for gid, c in raw.get("cells", {}).items()
    }
    fields = {k: v for k, v in raw.items() if k != "cells"}
    return StudentResult(cells=cells, **fields)
