"""How a check says what it found, shared by the hidden checkers and the self-checks.

A check returns ``Passed(message_id, **params)`` or raises ``Fail(message_id, **params)`` or
``NotAttempted(name)``: verdicts are data (a message id and its parameters); the texts live in
the message catalogue. ``CapturedSubmission`` is one submission's captured artifacts as the
checks read them, from the grader's files or from a self-check's memory alike.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlcourse.artifacts import Answer, ArtifactError, ArtifactSource, short_summary

__all__ = [
    "Answers",
    "CapturedSubmission",
    "Fail",
    "Memo",
    "NotAttempted",
    "Passed",
    "as_letter",
    "describe_found",
    "short_summary",
]


@dataclass(frozen=True)
class Passed:
    """The check passed; ``message_id`` says why (shown in feedback and self-checks)."""

    message_id: str = "ok"
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, message_id: str = "ok", **params: Any):
        object.__setattr__(self, "message_id", message_id)
        object.__setattr__(self, "params", params)


class Fail(Exception):  # noqa: N818 - it reads as a verdict: raise Fail("steps.wrong", ...)
    """The check failed; ``message_id`` names the message in the catalogue."""

    def __init__(self, message_id: str, **params: Any):
        super().__init__(message_id)
        self.message_id = message_id
        self.params = params


class NotAttempted(Exception):  # noqa: N818
    """The student has not attempted this question (distinct from a wrong answer)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.params = {"name": name}


def describe_found(value: Any) -> str:
    """A short, language-neutral description of a value a message shows, as the student would
    write it: ``'40'``, ``50``, ``{'a', 'c'}``, ``DataFrame 1279 × 11`` (``short_summary``; no
    type tags, no internal reprs, no file paths)."""
    return short_summary(value, limit=80)


def as_letter(value: Any) -> str | None:
    """The multiple-choice letter a value spells: ``"c"``, ``"C"``, ``" c) "``, ``{"c"}``."""
    if isinstance(value, frozenset) and len(value) == 1:
        (value,) = value
    if isinstance(value, str):
        letter = value.strip().lower().rstrip(")").strip()
        if len(letter) == 1:
            return letter
    return None


class Answers:
    """Typed access to the captured answers, turning every problem into a clear verdict."""

    def __init__(self, artifacts: ArtifactSource):
        self.artifacts = artifacts
        self._execution = artifacts.execution()

    def _cell(self, grade_id: str) -> dict[str, Any]:
        return self._execution.get("cells", {}).get(grade_id, {})

    def get(self, name: str) -> Any:
        """The value of answer ``name``, or raise ``NotAttempted`` / ``Fail``."""
        answer_cell = self._cell(f"ans_{name}")
        try:
            answer = self.artifacts.answer(name)
        except ArtifactError as exc:
            raise Fail("artifact_invalid", name=name, reason=exc.note) from None
        if answer is None:
            test_cell = self._cell(f"test_{name}")
            # the grader's record says why as data ({"id", "params"}), rendered in each
            # language by the grader; without one the cell was simply never reached
            reason = test_cell.get("reason_note") or {"id": "run.stopped_before"}
            raise Fail("not_executed", cell=f"test_{name}", reason=reason)
        status = answer_cell.get("status")
        if status == "timeout":
            raise Fail("answer_cell_timeout", name=name, seconds=answer_cell.get("timeout", "?"))
        if not answer.present or answer.kind == "placeholder":
            error = answer_cell.get("error") or {}
            if status == "error" and error.get("ename") not in (None, "NotImplementedError"):
                raise Fail(
                    "answer_cell_error",
                    name=name,
                    error=f"{error.get('ename')}: {error.get('evalue', '')}"[:200],
                )
            raise NotAttempted(name)
        return answer.value

    def answer(self, name: str) -> Answer | None:
        return self.artifacts.answer(name)

    def number(self, name: str) -> float:
        value = self.get(name)
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise Fail(
                "wrong_type",
                name=name,
                expected={"id": "kind.number"},  # rendered in each language
                found=describe_found(value),
            )
        return value

    def integer(self, name: str) -> int:
        value = self.get(name)
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or float(value) != int(value)
        ):
            raise Fail(
                "wrong_type",
                name=name,
                expected={"id": "kind.integer"},  # rendered in each language
                found=describe_found(value),
            )
        return int(value)

    def text(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise Fail(
                "wrong_type",
                name=name,
                expected={"id": "kind.text"},  # rendered in each language
                found=describe_found(value),
            )
        return value

    def mapping(self, name: str) -> dict:
        value = self.get(name)
        if not isinstance(value, dict):
            raise Fail(
                "wrong_type",
                name=name,
                expected={"id": "kind.mapping"},  # rendered in each language
                found=describe_found(value),
            )
        return value


class Memo:
    """Runs each analysis of a submission once; a ``Fail`` it raised is raised again for every
    check that uses it. With ``malformed``, a capture file of the right JSON syntax but the
    wrong shape (written by something other than the capture) is reported as unreadable
    (``artifact_invalid`` for the answer ``malformed[key]``), not as a grader error."""

    _SHAPE_ERRORS = (AttributeError, TypeError, KeyError, ValueError, IndexError)

    def __init__(self, malformed: dict[str, str] | None = None) -> None:
        self._done: dict[str, tuple[bool, Any]] = {}
        self._malformed = malformed

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._done:
            try:
                self._done[key] = (True, compute())
            except Fail as exc:
                self._done[key] = (False, exc)
            except self._SHAPE_ERRORS as exc:
                if self._malformed is None:
                    raise
                self._done[key] = (
                    False,
                    Fail(
                        "artifact_invalid",
                        name=self._malformed.get(key, key),
                        reason={
                            "id": "artifact.malformed",
                            "params": {"error": type(exc).__name__},
                        },
                    ),
                )
        ok, value = self._done[key]
        if not ok:
            raise Fail(value.message_id, **value.params)
        return value


class CapturedSubmission:
    """One submission as the Keras checkers read it: answers, thresholds (the assignment's
    ``defaults`` overridden by course_config.py), a memo, the execution record and the
    captured JSON/.npz files, every read problem turned into ``artifact_invalid``.

    A lesson subclasses it with its class-level ``DEFAULTS`` (public tolerances; the hidden
    checker passes ``defaults`` with its calibrated thresholds added) and ``MALFORMED`` (see
    ``Memo``). ``data`` gives the course's arrays (``dlcourse.data.course_arrays``, from
    wherever the reader keeps the data home)."""

    DEFAULTS: dict[str, Any] = {}
    MALFORMED: dict[str, str] | None = None

    def __init__(
        self,
        artifacts: ArtifactSource,
        thresholds: dict[str, Any] | None = None,
        *,
        data: Callable[[], Any] | None = None,
        defaults: dict[str, Any] | None = None,
    ):
        defaults = defaults or self.DEFAULTS
        self.artifacts = artifacts
        self.answers = Answers(artifacts)
        self.t = {**defaults, **{k: v for k, v in (thresholds or {}).items() if k in defaults}}
        self.memo = Memo(malformed=self.MALFORMED)
        self.data = data
        try:
            self.execution = artifacts.execution()
        except ArtifactError:
            self.execution = {}

    def cell(self, grade_id: str) -> dict[str, Any]:
        """How a cell ran (``status``, ``error``...), from the grader's execution record."""
        cells = self.execution.get("cells", {}) if isinstance(self.execution, dict) else {}
        found = cells.get(grade_id) if isinstance(cells, dict) else None
        return found if isinstance(found, dict) else {}

    def cell_error(self, grade_id: str) -> str | None:
        """``"AttributeError: ..."`` when cell ``grade_id`` ended with an error, else None: what
        an ``answer_cell_error`` message shows when an answer is there but incomplete (the cell
        raised after assigning it, e.g. in ``model.compile``)."""
        info = self.cell(grade_id)
        error = info.get("error")
        if info.get("status") != "error" or not isinstance(error, dict):
            return None
        if error.get("ename") in (None, "NotImplementedError"):
            return None
        return f"{error.get('ename')}: {error.get('evalue', '')}"[:200]

    def json(self, relative: str, name: str) -> dict:
        try:
            data = self.artifacts.read_json(relative)
        except FileNotFoundError:
            raise Fail(
                "artifact_invalid",
                name=name,
                reason={"id": "artifact.missing", "params": {"path": relative}},
            ) from None
        except ArtifactError as exc:
            raise Fail("artifact_invalid", name=name, reason=exc.note) from None
        if not isinstance(data, dict):
            raise Fail(
                "artifact_invalid",
                name=name,
                reason={"id": "artifact.not_an_object", "params": {"path": relative}},
            )
        return data

    def npz(self, relative: str, name: str) -> dict[str, Any]:
        try:
            return self.artifacts.read_npz(relative)
        except FileNotFoundError:
            return {}
        except ArtifactError as exc:
            raise Fail("artifact_invalid", name=name, reason=exc.note) from None
