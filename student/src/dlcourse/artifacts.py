"""What the capture writes, as the checkers read it: answers, opaque values, artifact errors.

The kernel-side capture (``dlcourse.capture``, ``dlcourse.keras_capture``) writes JSON and
``.npz`` files; the grader reads them back from disk (``autograder.capture.Artifacts``) and a
self-check reads them back from memory (``MemoryArtifacts``). Both give the same objects, so a
public check judges a live notebook exactly as the hidden checker judges a submission.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from dlcourse import layout

ANSWERS = layout.ANSWERS_DIR  # kept for older imports; paths: dlcourse.layout


class ArtifactError(Exception):
    """An artifact is missing, unreadable, too large or not plain data, as data: a catalogue
    id (``artifact.*``, ``dlcourse/messages/common.toml``) and its parameters. ``note``
    (``{"id", "params"}``) is what ``artifact_invalid`` quotes as its reason, rendered in that
    message's language; ``str()`` is the English text."""

    def __init__(self, message_id: str, **params: Any):
        self.message_id = message_id
        self.params = params
        super().__init__(message_id)

    @property
    def note(self) -> dict[str, Any]:
        return {"id": self.message_id, "params": dict(self.params)}

    def __str__(self) -> str:
        from dlcourse.catalogue import student_catalogue

        return student_catalogue().render(self.message_id, self.params, "en")


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
    return Opaque(desc.get("type", "?"), desc.get("repr", ""), _shape(desc.get("shape")))


def _shape(value: Any) -> tuple[int, ...] | None:
    """A captured shape (a list of whole numbers), or None for anything else."""
    if isinstance(value, list) and 0 < len(value) <= 8:
        if all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
            return tuple(value)
    return None


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items(), key=repr))
    return value


@dataclass(frozen=True)
class Opaque:
    """A value the capture could not turn into plain data (a model, a function...).

    ``shape`` is its shape when it has one (a DataFrame, an array, a tensor), else None."""

    type: str
    repr: str
    shape: tuple[int, ...] | None = None


# --- a short, human summary of a captured value (messages and the feedback page) -------------

_SUMMARY_LIMIT = 100
_ITEMS_SHOWN = 6
_TEXT_SHOWN = 40
_ABSOLUTE_PATH = re.compile(r"""(['"])(?:[A-Za-z]:[\\/]|/|~[\\/]|\\\\)[^'"]*\1""")
_MODULE = re.compile(r"<module '([^']{1,100})'")
_COUNT = re.compile(r"<(\d+) items>")


def short_summary(value: Any, limit: int = _SUMMARY_LIMIT) -> str:
    """A short, language-neutral summary of a captured value, as a student would recognise it.

    Plain values read as Python literals without type tags (``50``, ``'loss'``, ``True``,
    ``{'a', 'c'}``); objects the capture kept opaque read as their class and shape
    (``DataFrame 1279 × 11``, ``ndarray 320``, ``Sequential``, ``<module 'keras.callbacks'>``),
    never as an internal repr (``Opaque(...)``, ``{'__repr__': ...}``) nor with a file path of
    the machine that ran the notebook. Containers show their first items; the text is cut at
    ``limit`` characters. Shared by the checkers' messages (``describe_found``) and the
    feedback page."""
    text = _summary(value, 0)
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _summary(value: Any, depth: int) -> str:
    if isinstance(value, Opaque):
        return _object_summary(value.type, value.repr, value.shape)
    if isinstance(value, dict) and set(value) == {"__repr__", "__type__"}:
        # an object as ``keras_capture.plain`` writes it
        return _object_summary(str(value["__type__"]), str(value["__repr__"]), None)
    if value is Ellipsis:
        return "..."
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 12 else f"{value:.6g}"
    if isinstance(value, str):
        shown = value if len(value) <= _TEXT_SHOWN else value[: _TEXT_SHOWN - 1] + "…"
        return _ABSOLUTE_PATH.sub(lambda m: f"{m.group(1)}…{m.group(1)}", repr(shown))
    if depth >= 3:
        return type(value).__name__
    if isinstance(value, (set, frozenset)):
        items = sorted(_summary(v, depth + 1) for v in value)
        return "{" + _items(items) + "}" if items else "set()"
    if isinstance(value, list):
        return "[" + _items([_summary(v, depth + 1) for v in value[: _ITEMS_SHOWN + 1]]) + "]"
    if isinstance(value, tuple):
        items = [_summary(v, depth + 1) for v in value[: _ITEMS_SHOWN + 1]]
        return "(" + _items(items) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        pairs = list(value.items())[: _ITEMS_SHOWN + 1]
        return (
            "{"
            + _items([f"{_summary(k, depth + 1)}: {_summary(v, depth + 1)}" for k, v in pairs])
            + "}"
        )
    shape = getattr(value, "shape", None)
    try:
        dims = tuple(int(n) for n in shape) if shape is not None else None
    except (TypeError, ValueError):
        dims = None
    kind = type(value)
    return _object_summary(f"{kind.__module__}.{kind.__qualname__}", "", dims)


def _items(items: list[str]) -> str:
    if len(items) > _ITEMS_SHOWN:
        items = [*items[:_ITEMS_SHOWN], "…"]
    return ", ".join(items)


def _object_summary(type_name: str, text: str, shape: tuple[int, ...] | None) -> str:
    short = type_name.rsplit(".", 1)[-1] or "?"
    if shape:
        return f"{short} {' × '.join(str(n) for n in shape)}"
    if type_name == "builtins.module":
        found = _MODULE.match(text)
        return f"<module '{found.group(1)}'>" if found else "<module>"
    count = _COUNT.fullmatch(text)
    if count:
        return f"{short} {count.group(1)}"
    return short


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
        data = self._json.get(layout.answer(name))
        if data is None:
            return None
        return Answer(name=name, present=bool(data.get("present")), description=data.get("value"))

    def execution(self) -> dict[str, Any]:
        return {}
