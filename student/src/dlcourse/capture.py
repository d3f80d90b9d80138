"""Kernel-side capture: the hidden test cells save answers as plain data, nothing else.

During grading the executor sets ``AUTOGRADER_ARTIFACTS`` to a folder; each captured answer is
written there as ``answers/<name>.json``. The checkers read those files in the grader's own
process (``autograder.capture``). Nothing here judges anything, and nothing here can set a
score: a student who tampers with this module only changes what the checkers then verify.
Outside grading (the variable is unset) every function is a no-op, except inside
``recording(store)``: a self-check captures into memory and judges what it captured.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlcourse import layout
from dlcourse.artifacts import MemoryArtifacts

ENV_ARTIFACTS = "AUTOGRADER_ARTIFACTS"
MAX_ITEMS = 1000  # containers larger than this are summarised, not stored
MAX_TEXT = 10_000


_recording: list[MemoryArtifacts] = []  # innermost last; a self-check's in-memory store


def artifacts_dir() -> Path | None:
    """The grading artifacts folder, or None outside grading."""
    folder = os.environ.get(ENV_ARTIFACTS)
    return Path(folder) if folder else None


def active() -> bool:
    """Whether a capture writes anything: while graded, or inside ``recording``."""
    return bool(_recording) or artifacts_dir() is not None


@contextlib.contextmanager
def recording(store: MemoryArtifacts) -> Iterator[MemoryArtifacts]:
    """Capture into ``store`` (in memory) instead of the artifacts folder, for a self-check."""
    _recording.append(store)
    try:
        yield store
    finally:
        _recording.remove(store)


def _target(relative: str) -> Path | None:
    """Where a capture file goes in the artifacts folder (its parents made), or None."""
    folder = artifacts_dir()
    if folder is None:
        return None
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json(relative: str, payload: Any) -> None:
    """Save ``payload`` as ``relative`` (JSON) where the capture currently writes."""
    if _recording:
        _recording[-1].write_json(relative, payload)
    elif (path := _target(relative)) is not None:
        tmp = path.with_suffix(".tmp")  # atomic: a half-written file is never read
        tmp.write_text(json.dumps(payload, ensure_ascii=False, allow_nan=False))
        tmp.replace(path)


def write_npz(relative: str, arrays: dict[str, Any]) -> None:
    """Save ``arrays`` as ``relative`` (``.npz``, no pickle) where the capture writes."""
    if _recording:
        _recording[-1].write_npz(relative, arrays)
    elif (path := _target(relative)) is not None:
        import numpy as np

        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        tmp.replace(path)


def describe(value, depth: int = 0) -> dict:
    """A JSON-able description of ``value``: its kind, its plain value and its type name."""
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    if value is Ellipsis:
        return {"kind": "placeholder", "type": type_name}
    if value is None:
        return {"kind": "none", "type": type_name}
    if isinstance(value, bool):
        return {"kind": "bool", "value": value, "type": type_name}
    # numpy scalars and 0-d arrays become Python numbers
    if (
        type(value).__module__ == "numpy"
        and hasattr(value, "item")
        and getattr(value, "ndim", 0) == 0
    ):
        value = value.item()
        if isinstance(value, bool):
            return {"kind": "bool", "value": value, "type": type_name}
    if isinstance(value, int):
        return {"kind": "int", "value": value, "type": type_name}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"kind": "float", "value": value, "type": type_name}
        return {"kind": "float", "value": str(value), "nonfinite": True, "type": type_name}
    if isinstance(value, str):
        return {"kind": "str", "value": value[:MAX_TEXT], "type": type_name}
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        if len(value) > MAX_ITEMS:
            return {"kind": "other", "type": type_name, "repr": f"<{len(value)} items>"}
        kind = {list: "list", tuple: "tuple"}.get(type(value), "set")
        items = list(value)
        if kind == "set":
            items = sorted(items, key=repr)
        return {"kind": kind, "items": [describe(v, depth + 1) for v in items], "type": type_name}
    if depth < 3 and isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            return {"kind": "other", "type": type_name, "repr": f"<{len(value)} items>"}
        return {
            "kind": "dict",
            "items": [[describe(k, depth + 1), describe(v, depth + 1)] for k, v in value.items()],
            "type": type_name,
        }
    try:
        text = repr(value)[:200]
    except Exception:  # a hostile __repr__ must not stop the capture
        text = "<unrepresentable>"
    described = {"kind": "other", "type": type_name, "repr": text}
    shape = _shape_of(value)
    if shape is not None:
        described["shape"] = shape  # read by ``artifacts.short_summary``: "DataFrame 1279 × 11"
    return described


def _shape_of(value) -> list[int] | None:
    """The shape of an array-like value (DataFrame, Series, ndarray, tensor), or None."""
    try:
        shape = getattr(value, "shape", None)
        if shape is None or callable(shape) or isinstance(shape, (str, bytes)):
            return None
        dims = [int(n) for n in list(shape)[:9]]
    except Exception:  # noqa: BLE001 - an unknown dimension (None) or a hostile attribute
        return None
    return dims if 0 < len(dims) <= 8 and all(n >= 0 for n in dims) else None


def answers(namespace: dict, *names: str) -> None:
    """Save each named variable of ``namespace`` (the notebook's ``globals()``)."""
    if not active():
        return
    for name in names:
        if name in namespace:
            try:
                payload = {"name": name, "present": True, "value": describe(namespace[name])}
            except Exception as exc:  # noqa: BLE001 - record, never crash the test cell
                payload = {
                    "name": name,
                    "present": True,
                    "value": {
                        "kind": "other",
                        "type": "unknown",
                        "repr": f"<capture failed: {type(exc).__name__}>",
                    },
                }
        else:
            payload = {"name": name, "present": False}
        write_json(layout.answer(name), payload)
