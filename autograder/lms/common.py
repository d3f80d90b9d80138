"""What every LMS module shares: its errors, the ``c.Course.lms`` settings as read by the
modules, the LMS state folder, and the words and formatting of the comments sent to an LMS."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from autograder.config import ConfigError, Course, LmsSettings
from autograder.grades import GradeRow
from autograder.results import StageError

STATE_DIRNAME = "lms"  # under the course's state dir: collect reports, unplaced files


class LmsError(StageError):
    """An LMS file or setting is missing or not what it should be: a catalogue message
    (``autograder/messages/lms_errors.toml``) that says how to fix it, with its parameters,
    shown in the reader's language; ``str()`` is the English text."""


# --- settings ---------------------------------------------------------------------------------


class LmsSettingsError(LmsError, ConfigError):
    """``c.Course.lms`` does not follow the settings schema (docs/settings.md)."""


def lms_config(course: Course) -> LmsSettings:
    """``c.Course.lms``, typed and validated (``autograder.config.LmsSettings``)."""
    try:
        return course.lms
    except ConfigError as exc:
        if isinstance(exc, LmsError):
            raise
        raise LmsSettingsError("lms.settings_invalid", detail=exc.note.to_dict()) from None


def lms_settings(course: Course) -> dict[str, Any]:
    """``c.Course.lms`` as a plain dict (empty when not set), validated against the schema.
    New code reads ``lms_config(course)`` instead."""
    from traitlets.config.loader import LazyConfigValue

    lms_config(course)
    section = course.nbgrader_config.get("Course", None)
    raw = section.get("lms", {}) if section is not None else {}
    if isinstance(raw, LazyConfigValue):  # c.Course.lms["key"] = ... without c.Course.lms = {}
        raw = raw.get_value({})
    return raw or {}


def lms_section(course: Course, name: str) -> dict[str, Any]:
    """One part of ``c.Course.lms`` (``canvas``, ``moodle``, ``gradescope``, ``lti``) as a plain
    dict, validated against the schema. New code reads ``lms_config(course).<name>``."""
    return lms_settings(course).get(name) or {}


def per_assignment(value: Any, assignment_id: str, default: Any = None) -> Any:
    """A setting given once for all assignments or as ``{assignment id | "*": value}``
    (``autograder.config.PER_ASSIGNMENT``)."""
    if isinstance(value, dict):
        return value.get(assignment_id, value.get("*", default))
    return default if value is None else value


def resolve_path(course: Course, value: str | os.PathLike | None) -> Path | None:
    """A path from the settings: ``~`` expanded, relative paths from the course directory."""
    if value in (None, ""):
        return None
    path = Path(os.path.expandvars(str(value))).expanduser()
    return path if path.is_absolute() else (course.root / path)


def lms_state_dir(course: Course) -> Path:
    return course.state_dir / STATE_DIRNAME


def write_json_atomic(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as tmp:
        json.dump(data, tmp, ensure_ascii=False, indent=1)
    Path(tmp.name).replace(path)
    return path


def words(language: str) -> dict[str, str]:
    """The words around LMS comments (``lms.*`` in the catalogue)."""
    from autograder import messages

    language = language if language in messages.LANGUAGES else "en"
    return {
        key: messages.render(f"lms.{key}", {}, language)
        for key in ("total", "overridden", "error", "notes")
    }


def fmt_points(value: float) -> str:
    """``8``, ``7.5``, ``0.33``: points as people write them."""
    return f"{round(float(value), 2):g}"


def feedback_text(row: GradeRow, language: str = "es", limit: int = 4000) -> str:
    """Plain-text feedback: total, then one line per graded cell with its messages.

    Used as the LTI ``comment`` (plain text by the spec) and, escaped, for Moodle.
    """
    w = words(language)
    lines = [f"{w['total']}: {fmt_points(row.score)}/{fmt_points(row.max_score)}"]
    error = row.error_in(language)
    if row.status == "error" and error:
        lines.append(f"{w['error']}: {error}")
    for gid, cell in row.cells.items():
        mark = "✓" if cell.score >= cell.max_score - 1e-9 else "✗"
        head = f"{mark} {gid}: {fmt_points(cell.score)}/{fmt_points(cell.max_score)}"
        if cell.auto_score is not None and abs(cell.auto_score - cell.score) > 1e-9:
            head += f" ({w['overridden']})"
        texts = [t for _, t in cell.messages if t]
        lines.append(head + (" — " + " ".join(texts) if texts else ""))
    if row.problems or row.notes:
        lines.append(f"{w['notes']}: " + "; ".join(row.notes_in(language)))
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
