"""What checkers use to say what they found: ``Fail``, ``NotAttempted`` and typed answers."""

from __future__ import annotations

import math
import numbers
from typing import Any

from autograder.capture import Answer, ArtifactError, Artifacts, Opaque


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
    """A short, language-neutral description of a wrong value, e.g. ``"40" (str)``."""
    if isinstance(value, Opaque):
        return f"un objeto {value.type} / an object {value.type}"
    text = repr(value) if not isinstance(value, frozenset) else repr(set(value))
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__ if not isinstance(value, frozenset) else 'set'})"


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

    def __init__(self, artifacts: Artifacts):
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
            raise Fail("artifact_invalid", name=name, reason=str(exc)) from None
        if answer is None:
            test_cell = self._cell(f"test_{name}")
            reason = test_cell.get("reason") or "the notebook stopped before it"
            raise Fail("not_executed", cell=f"test_{name}", reason=reason)
        status = answer_cell.get("status")
        if status == "timeout":
            raise Fail("answer_cell_timeout", name=name, seconds=answer_cell.get("timeout", "?"))
        if not answer.present or answer.kind == "placeholder":
            error = answer_cell.get("error") or {}
            if status == "error" and error.get("ename") not in (None, "NotImplementedError"):
                raise Fail("answer_cell_error", name=name,
                           error=f"{error.get('ename')}: {error.get('evalue', '')}"[:200])
            raise NotAttempted(name)
        return answer.value

    def answer(self, name: str) -> Answer | None:
        return self.artifacts.answer(name)

    def number(self, name: str) -> float:
        value = self.get(name)
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise Fail("wrong_type", name=name, expected_es="un número",
                       expected_en="a number", found=describe_found(value))
        return value

    def integer(self, name: str) -> int:
        value = self.get(name)
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(value) or float(value) != int(value)):
            raise Fail("wrong_type", name=name, expected_es="un número entero",
                       expected_en="a whole number", found=describe_found(value))
        return int(value)

    def text(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise Fail("wrong_type", name=name, expected_es="un texto entre comillas",
                       expected_en="a quoted string", found=describe_found(value))
        return value

    def mapping(self, name: str) -> dict:
        value = self.get(name)
        if not isinstance(value, dict):
            raise Fail("wrong_type", name=name, expected_es="un diccionario",
                       expected_en="a dict", found=describe_found(value))
        return value


class Verdict:
    """Lets a passing check say why it passed (the message shown in feedback)."""

    def __init__(self) -> None:
        self.message_id = "ok"
        self.params: dict[str, Any] = {}

    def ok(self, message_id: str, **params: Any) -> None:
        self.message_id = message_id
        self.params = params
