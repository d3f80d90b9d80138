"""What the capture writes, as the checkers read it: answers, opaque values, artifact errors.

The kernel-side capture (``dlcourse.capture``, ``dlcourse.keras_capture``) writes JSON and
``.npz`` files; the grader reads them back from disk (``autograder.capture.Artifacts``) and a
self-check reads them back from memory (``MemoryArtifacts``). Both give the same objects, so a
public check judges a live notebook exactly as the hidden checker judges a submission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

ANSWERS = "answers"


class ArtifactError(Exception):
    """An artifact is missing, unreadable, too large or not plain data."""


@dataclass
class Answer:
    """A captured answer: whether the variable existed and its description (see ``describe``)."""

    name: str
    present: bool
    description: dict[str, Any] | None

    @property
    def kind(self) -> str | None:
        return None if self.description is None else self.description.get("kind")

    @property
    def value(self) -> Any:
        return to_python(self.description) if self.description else None


def to_python(desc: dict[str, Any]) -> Any:
    """Rebuild the plain Python value of a description (sets, dicts, numbers, strings)."""
    kind = desc.get("kind")
    if kind in ("int", "bool", "str"):
        return desc["value"]
    if kind == "float":
        return float(desc["value"]) if desc.get("nonfinite") else desc["value"]
    if kind == "none":
        return None
    if kind == "list":
        return [to_python(d) for d in desc["items"]]
    if kind == "tuple":
        return tuple(to_python(d) for d in desc["items"])
    if kind == "set":
        return frozenset(_hashable(to_python(d)) for d in desc["items"])
    if kind == "dict":
        return {_hashable(to_python(k)): to_python(v) for k, v in desc["items"]}
    if kind == "placeholder":
        return Ellipsis
    return Opaque(desc.get("type", "?"), desc.get("repr", ""))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items(), key=repr))
    return value


@dataclass(frozen=True)
class Opaque:
    """A value the capture could not turn into plain data (a model, a function...)."""

    type: str
    repr: str


class ArtifactSource(Protocol):
    """Where checks read captured artifacts: files (the grader) or memory (a self-check)."""

    def read_json(self, relative: str) -> Any: ...

    def read_npz(self, relative: str) -> dict[str, Any]: ...

    def answer(self, name: str) -> Answer | None: ...

    def execution(self) -> dict[str, Any]: ...


class MemoryArtifacts:
    """Artifacts kept in memory: what a self-check captured in the student's own kernel.

    It reads like the grader's ``Artifacts`` (``read_json``, ``read_npz``, ``answer``,
    ``execution``). JSON payloads go through a JSON round trip, so a self-check sees exactly
    the plain data the hidden checker would read from the files.
    """

    def __init__(self) -> None:
        self._json: dict[str, Any] = {}
        self._npz: dict[str, dict[str, Any]] = {}

    def write_json(self, relative: str, payload: Any) -> None:
        self._json[relative] = json.loads(json.dumps(payload, ensure_ascii=False, allow_nan=False))

    def write_npz(self, relative: str, arrays: dict[str, Any]) -> None:
        self._npz[relative] = dict(arrays)

    def read_json(self, relative: str) -> Any:
        if relative not in self._json:
            raise FileNotFoundError(relative)
        return self._json[relative]

    def read_npz(self, relative: str) -> dict[str, Any]:
        if relative not in self._npz:
            raise FileNotFoundError(relative)
        return self._npz[relative]

    def answer(self, name: str) -> Answer | None:
        data = self._json.get(f"{ANSWERS}/{name}.json")
        if data is None:
            return None
        return Answer(name=name, present=bool(data.get("present")), description=data.get("value"))

    def execution(self) -> dict[str, Any]:
        return {}
