"""Grader-side reading of what the hidden test cells captured (see ``dlcourse.capture``).

Artifacts are untrusted: the student's kernel wrote them. They are read as plain data only
(JSON with a size limit; ``.npz`` with ``allow_pickle=False``), never followed outside their
folder, and every problem becomes an ``ArtifactError`` with a reason a student can read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dlcourse.artifacts import ANSWERS, Answer, ArtifactError, Opaque, to_python

__all__ = ["ANSWERS", "Answer", "ArtifactError", "Artifacts", "Opaque", "to_python"]

EXECUTION_RECORD = "execution.json"  # written by the grader after the kernel stopped
MAX_JSON_BYTES = 2_000_000
MAX_NPZ_BYTES = 200_000_000


class Artifacts:
    """The artifacts folder of one executed submission."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, relative: str) -> Path:
        path = self.folder / relative
        if path.is_symlink():
            raise ArtifactError(f"{relative} is a symbolic link; artifacts must be plain files")
        resolved = path.resolve()
        if self.folder.resolve() not in resolved.parents:
            raise ArtifactError(f"{relative} points outside the artifacts folder")
        if not path.is_file():
            raise FileNotFoundError(relative)
        return path

    def exists(self, relative: str) -> bool:
        try:
            self._path(relative)
        except (FileNotFoundError, ArtifactError):
            return False
        return True

    def read_json(self, relative: str) -> Any:
        path = self._path(relative)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ArtifactError(f"{relative} is larger than {MAX_JSON_BYTES} bytes")
        try:
            return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{relative} is not valid JSON ({exc})") from None

    def read_npz(self, relative: str) -> dict[str, Any]:
        import numpy as np

        path = self._path(relative)
        if path.stat().st_size > MAX_NPZ_BYTES:
            raise ArtifactError(f"{relative} is larger than {MAX_NPZ_BYTES} bytes")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same verdict
            raise ArtifactError(f"{relative} is not a plain .npz of arrays ({exc})") from None
        for key, array in arrays.items():
            if array.dtype.kind not in "biuf":
                raise ArtifactError(f"{relative}:{key} is not numeric")
        return arrays

    def answer(self, name: str) -> Answer | None:
        """The captured answer ``name``; None when the capture never ran."""
        relative = f"{ANSWERS}/{name}.json"
        try:
            data = self.read_json(relative)
        except FileNotFoundError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("present"), bool):
            raise ArtifactError(f"{relative} does not have the captured-answer format")
        description = data.get("value")
        if data["present"] and not isinstance(description, dict):
            raise ArtifactError(f"{relative} does not have the captured-answer format")
        return Answer(name=name, present=data["present"], description=description)

    def execution(self) -> dict[str, Any]:
        """The grader's record of how each cell ran (``{}`` when absent)."""
        try:
            return self.read_json(EXECUTION_RECORD)
        except FileNotFoundError:
            return {}


def _reject_constant(token: str) -> float:
    # NaN/Infinity are not JSON; the capture writes non-finite floats as strings instead.
    raise ValueError(f"non-standard JSON constant {token}")


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
