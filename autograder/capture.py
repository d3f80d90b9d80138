"""Grader-side reading of what the hidden test cells captured (see ``dlcourse.capture``).

Artifacts are untrusted: the student's kernel wrote them. They are read as plain data only
(JSON bounded in size and depth; ``.npz`` bounded in every inflated size, numeric arrays only,
never unpickled: ``autograder.untrusted``), never followed outside their
folder, and every problem becomes an ``ArtifactError``: a catalogue id and parameters.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any

from autograder.untrusted import UnsafeInput, read_json, read_npz
from dlcourse import layout
from dlcourse.artifacts import ANSWERS, Answer, ArtifactError, Opaque, to_python

__all__ = ["ANSWERS", "Answer", "ArtifactError", "Artifacts", "Opaque", "to_python"]

EXECUTION_RECORD = layout.EXECUTION_RECORD  # written by the grader after the kernel stopped
MAX_JSON_BYTES = 2_000_000
MAX_JSON_DEPTH = 64  # a captured description is a few levels deep
MAX_NPZ_BYTES = 64_000_000  # the archive as stored
MAX_NPZ_MEMBER_BYTES = 64_000_000  # one array, inflated (lesson 5's weights: a few MB)
MAX_NPZ_TOTAL_BYTES = 128_000_000  # all its arrays, inflated


class Artifacts:
    """The artifacts folder of one executed submission."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @cached_property
    def _resolved_folder(self) -> Path:
        # Resolved once: artifacts are read after the kernel that wrote them is gone, so the
        # folder cannot change under the reader (and a class's regrade reads thousands).
        return self.folder.resolve()

    def _path(self, relative: str) -> Path:
        path = self.folder / relative
        if path.is_symlink():
            raise ArtifactError("artifact.symlink", path=relative)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a link loop
            raise ArtifactError("artifact.unresolvable", path=relative) from None
        if self._resolved_folder not in resolved.parents:
            raise ArtifactError("artifact.outside", path=relative)
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
        try:
            return read_json(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH)
        except UnsafeInput as exc:
            raise ArtifactError("artifact.unreadable", path=relative, why=exc.note) from None

    def read_npz(self, relative: str) -> dict[str, Any]:
        path = self._path(relative)
        try:
            return read_npz(
                path,
                max_bytes=MAX_NPZ_BYTES,
                max_member_bytes=MAX_NPZ_MEMBER_BYTES,
                max_total_bytes=MAX_NPZ_TOTAL_BYTES,
            )
        except UnsafeInput as exc:
            raise ArtifactError("artifact.not_plain_npz", path=relative, why=exc.note) from None

    def answer(self, name: str) -> Answer | None:
        """The captured answer ``name``; None when the capture never ran."""
        relative = layout.answer(name)
        try:
            data = self.read_json(relative)
        except FileNotFoundError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("present"), bool):
            raise ArtifactError("artifact.not_an_answer", path=relative)
        description = data.get("value")
        if data["present"] and not isinstance(description, dict):
            raise ArtifactError("artifact.not_an_answer", path=relative)
        return Answer(name=name, present=data["present"], description=description)

    def execution(self) -> dict[str, Any]:
        """The grader's record of how each cell ran (``{}`` when absent)."""
        try:
            return self.read_json(EXECUTION_RECORD)
        except FileNotFoundError:
            return {}


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
