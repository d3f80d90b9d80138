"""Canvas: the "Download submissions" zip in, a gradebook import CSV out.

Download names (Canvas's ``ContentZipper``), every file at the top of the zip::

    <name>_[LATE_]<user id>_<attachment id>_<file name>
    [LATE_]anon_<anonymous id>_<attachment id>_<file name>        (anonymous grading)
    <name>_[LATE_]<user id>_text.html | _link.html                 (text entry, URL submissions)

``<name>`` is the sortable name with ``_<digits>_`` joined into ``<digits>`` (so that
``_<digits>_`` marks the ids), lower-cased, every character but ``[[:word:]]`` removed;
``LATE`` stays upper case. The ids are ASCII digits; Canvas's own reader of these names (the
"re-upload submissions" importer) takes the first all-digit ``_``-separated part as the user
id, and so do we: the name is read from the start, and the student's file name, which the
student chose, can never move the ids. ``<file name>`` is the uploaded file's display name
with ``\x00 / \\ : * ? " < > |`` replaced by ``_``; an upload over a file of the same name
(a resubmission) is renamed ``name-1.ext``, ``name-2.ext``.

A file is attributed to a student only when its user id is in the roster and its name part is
that student's name as Canvas writes it (when the roster has a name for them); see
``collect_canvas``.

Gradebook import (Canvas's ``GradebookImporter``): the header starts ``Student``, ``ID``, then
optionally ``SIS User ID``, ``SIS Login ID``, and the student columns end at ``Section``; each
assignment column is titled ``Name (canvas assignment id)`` (a title Canvas does not know creates
a new assignment, so we never write one without its id); a row whose first cell says ``Points
Possible`` describes the assignments; ``EX`` excuses, a blank cell leaves no score. Students
match by Canvas ``ID``, then SIS ids, then name: every row we write carries the Canvas id or a
SIS id, so a name never decides who gets a grade.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.collect import STUDENT_ID, notebook_stem
from autograder.config import Course
from autograder.grades import class_grades
from autograder.lms.collect import (
    Candidate,
    load_placements,
    member_name,
    open_archive,
    skippable_member,
)
from autograder.lms.common import LmsError, lms_config, write_json_atomic
from autograder.lms.roster import (
    Person,
    Roster,
    SafeLayout,
    canvas_file_name,
    canvas_name_keys,
    canvas_word,
    course_roster,
    fold,
    member_refusal,
    name_orders,
    printable_report,
)
from autograder.results import Note, StageError
from autograder.spreadsheet import safe_row
from autograder.untrusted import clean_text

log = logging.getLogger(__name__)

POINTS_POSSIBLE = "    Points Possible"  # as Canvas writes it in its own exports
HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]

_DIGITS = re.compile(r"[0-9]+")
_ANON_ID = re.compile(r"[A-Za-z0-9]+")
_UPLOAD = re.compile(r"(?P<att>[0-9]+)_(?P<file>.+)", re.S)
_ONLINE = re.compile(r"(?P<kind>text|link)\.html")
_RESUBMISSION = re.compile(r"-([0-9]+)$")


@dataclass(frozen=True)
class CanvasName:
    """What a Canvas download file name says."""

    name: str  # the name part as Canvas wrote it ("" when anonymous)
    late: bool
    user_id: str | None
    anon_id: str | None  # "anon_xxxxx"
    attachment_id: str | None
    filename: str  # the student's file name, or "text.html" / "link.html"

    @property
    def lms_id(self) -> str:
        return self.anon_id or self.user_id or ""

    @property
    def resubmission(self) -> int:
        """The ``-N`` Canvas added to a re-uploaded file of the same name (0: none)."""
        stem = self.filename.rsplit(".", 1)[0] if "." in self.filename else self.filename
        match = _RESUBMISSION.search(stem)
        return int(match.group(1)) if match else 0

    @property
    def order(self) -> int:
        """Newer uploads sort higher: the attachment id, then the resubmission number."""
        return int(self.attachment_id or 0) * 1000 + min(self.resubmission, 999)


def _canvas_name_part(text: str) -> bool:
    return text == text.lower() and all(canvas_word(ch) for ch in text)


def _tail(parts: list[str]) -> tuple[str | None, str] | None:
    rest = "_".join(parts)
    if _ONLINE.fullmatch(rest):
        return None, rest
    upload = _UPLOAD.fullmatch(rest)
    return (upload["att"], upload["file"]) if upload else None


def parse_canvas_names(basename: str) -> list[CanvasName]:
    """Every reading of a download file name: none, one, or (only for a name part that is
    literally ``anon``) one named and one anonymous. Anchored at the start, never searched.

    Named: the name is every ``_``-part before the first all-digit part (Canvas's own rule),
    less a ``LATE`` right before it; it must be lower-case ``[[:word:]]``. Anonymous: the name
    starts ``anon_<id>_`` or ``LATE_anon_<id>_``.
    """
    parts = basename.split("_")
    readings = []
    first = next((i for i, part in enumerate(parts) if _DIGITS.fullmatch(part)), None)
    if first is not None and first >= 1:
        late = first >= 2 and parts[first - 1] == "LATE"
        name = "_".join(parts[: first - 1] if late else parts[:first])
        tail = _tail(parts[first + 1 :])
        if tail and _canvas_name_part(name):
            readings.append(CanvasName(name, late, parts[first], None, tail[0], tail[1]))
    late = parts[0] == "LATE"
    at = 1 if late else 0
    if len(parts) > at + 2 and parts[at] == "anon" and _ANON_ID.fullmatch(parts[at + 1]):
        tail = _tail(parts[at + 2 :])
        if tail:
            anon = f"anon_{parts[at + 1]}"
            readings.append(CanvasName("", late, None, anon, tail[0], tail[1]))
    return readings


def parse_canvas_name(basename: str, known_ids: set[str] | None = None) -> CanvasName | None:
    """The reading of a download file name: the named one when its user id is in
    ``known_ids`` (or no ids are given), else the anonymous one if the name allows it."""
    readings = parse_canvas_names(basename)
    named = [r for r in readings if r.user_id]
    anon = [r for r in readings if r.anon_id]
    if named and (not anon or known_ids is None or named[0].user_id in known_ids):
        return named[0]
    return anon[0] if anon else None


def holds_canvas_name(filename: str) -> bool:
    """Whether a student's file name itself continues like a Canvas download name
    (``[x_][LATE_]<digits>_<digits>_...``). A Canvas user who may edit their own name can
    get ``<victim's name>_<victim's id>_<n>_x`` written as their name (Canvas joins
    ``_<digits>_`` before it removes punctuation, so ``_1001._9._x`` survives), and their
    files then start with the victim's prefix and carry their own after it."""
    return any(r.user_id for r in parse_canvas_names("x_" + filename))


# --- collect ------------------------------------------------------------------------------------
# Every reason a file is not laid out is a Note (``lms.collect.canvas.*``,
# ``autograder/messages/lms_collect.toml``); ``how`` is a tag ("roster:canvas_id", ...).


@dataclass
class _Claim:
    """A file whose Canvas name parsed, and what the roster says about it."""

    reading: CanvasName
    candidate: Candidate
    student: str | None = None
    how: str = ""
    refusal: Note | None = None
    by_name: bool = False  # the roster confirmed the name part, not only the id


def _confirm(claim: _Claim, roster: Roster, basename: str) -> None:
    """Attribute ``claim`` to a student, or say why not (``claim.refusal``)."""
    r = claim.reading
    if r.anon_id:
        if roster.get(r.anon_id):
            claim.refusal = Note("lms.collect.canvas.anon_in_roster", {"anon_id": r.anon_id})
        else:
            claim.student, claim.how = r.anon_id, "anonymous grading (no identity in the download)"
        return
    if not roster:
        claim.student, claim.how = r.user_id, "Canvas user id (no roster)"
        return
    person = roster.by("canvas_id", r.user_id)
    if person is None:
        hint = _hint(roster, r, basename)
        claim.refusal = Note(
            "lms.collect.canvas.not_in_roster",
            {"user_id": r.user_id, "name": r.name, "hint": hint.to_dict() if hint else None},
        )
        return
    keys = canvas_name_keys(person)
    if keys and fold(r.name) not in keys:
        expected = canvas_file_name(person.sortable_name or person.name)
        claim.refusal = Note(
            "lms.collect.canvas.imitation",
            {
                "name": r.name,
                "user_id": r.user_id,
                "student": person.student_id,
                "expected": expected,
            },
        )
        return
    claim.student, claim.how, claim.by_name = person.student_id, "roster:canvas_id", bool(keys)


def _hint(roster: Roster, r: CanvasName, basename: str) -> Note | None:
    """Why a Canvas user may be missing from the roster, when the roster suggests it."""
    for person in roster.people:
        if not person.canvas_id:
            continue
        for key in {canvas_file_name(n) for n in name_orders(person)}:
            for late in ("", "LATE_"):
                if basename.startswith(f"{key}_{late}{person.canvas_id}_"):
                    return Note(
                        "lms.collect.canvas.hint_digits",
                        {"student": person.student_id, "canvas_id": person.canvas_id, "key": key},
                    )
    person, _ = roster.match_name(r.name, "canvas_id", canvas_style=True)
    if person:
        return Note(
            "lms.collect.canvas.hint_no_canvas_id",
            {"student": person.student_id, "user_id": r.user_id},
        )
    return None


def collect_canvas(
    course: Course,
    assignment_id: str,
    archive: str | os.PathLike,
    roster: str | os.PathLike | None = None,
    dry_run: bool = False,
):
    """Lay a Canvas "Download submissions" zip out in ``submitted/`` (see ``CollectReport``).

    A file is placed only when its name parses as Canvas writes it (``parse_canvas_names``),
    its user id is in the roster and its name part is that student's (when the roster has a
    name). Without a roster, the Canvas user id is the student id. Everything else is kept in
    ``unplaced/`` with the reason, and never takes a student's place: of one user's files the
    one named as released wins, then the newest upload (attachment id, then ``-N``).
    """
    people = course_roster(course, roster)
    decided: dict[str, tuple[str, str]] = {}
    layout = SafeLayout(
        course, assignment_id, "canvas", archive, lambda c: decided[c.lms_id], dry_run
    )
    want = notebook_stem(layout.notebook)
    with open_archive(archive) as zf:
        parsed: list[tuple[zipfile.ZipInfo, str, list[CanvasName]]] = []
        for info in zf.infolist():
            name = member_name(info)
            if skippable_member(name):
                continue
            stranger = Candidate("", "", info, name.rsplit("/", 1)[-1])
            unsafe = member_refusal(info, name)
            if unsafe:
                layout.problem(zf, "unsafe", name, unsafe, stranger)
                continue
            if "/" in name:
                layout.problem(
                    zf,
                    "unrecognized",
                    name,
                    Note("lms.collect.canvas.in_folder"),
                    stranger,
                )
                continue
            readings = parse_canvas_names(name)
            if not readings:
                layout.problem(
                    zf,
                    "unrecognized",
                    name,
                    Note("lms.collect.canvas.not_canvas_name"),
                    stranger,
                )
                continue
            parsed.append((info, name, readings))
        anonymous = any(len(r) == 1 and r[0].anon_id for _, _, r in parsed)
        known = {p.canvas_id for p in people.people if p.canvas_id} if people else None
        claims = []
        for info, name, readings in parsed:
            if len(readings) > 1 and known is None:
                reading = readings[1] if anonymous else readings[0]
            else:
                reading = parse_canvas_name(name, known)
            claim = _Claim(
                reading,
                Candidate(
                    lms_id=reading.lms_id,
                    name=reading.name,
                    member=info,
                    filename=reading.filename,
                    late=reading.late,
                    order=reading.order,
                    attachment_id=reading.attachment_id,
                ),
            )
            _confirm(claim, people, name)
            if claim.student is not None and not STUDENT_ID.fullmatch(claim.student):
                claim.refusal = Note("lms.collect.invalid_student_id", {"student": claim.student})
            claims.append(claim)
        accepted = _settle(claims, want)
        for claim in claims:
            if claim.refusal:
                layout.problem(
                    zf,
                    "unmatched",
                    member_name(claim.candidate.member),
                    claim.refusal,
                    claim.candidate,
                )
        for claim in accepted:
            decided[claim.candidate.lms_id] = (claim.student, claim.how)
        report = layout.run(zf, [c.candidate for c in accepted])
    return printable_report(report)


def _settle(claims: list[_Claim], want: str) -> list[_Claim]:
    """The attributed claims that may be laid out; the others get their ``refusal``.

    One Canvas user's files carry one name: if they disagree and the roster cannot say which
    is right (no name for the student), none is taken. A notebook not named as released is
    not taken as a renamed submission when its own file name holds another Canvas prefix
    (``holds_canvas_name``).
    """
    groups: dict[str, list[_Claim]] = {}
    for claim in claims:
        if claim.refusal is None:
            groups.setdefault(claim.candidate.lms_id, []).append(claim)
    accepted = []
    for lms_id, group in groups.items():
        names = sorted({c.reading.name for c in group})
        if len(names) > 1 and not all(c.by_name for c in group):
            for claim in group:
                claim.refusal = Note(
                    "lms.collect.canvas.different_names", {"lms_id": lms_id, "names": names}
                )
            continue
        notebooks = [c for c in group if c.reading.filename.lower().endswith(".ipynb")]
        if not any(notebook_stem(c.reading.filename) == want for c in notebooks):
            for claim in notebooks:
                if holds_canvas_name(claim.reading.filename):
                    claim.refusal = Note(
                        "lms.collect.canvas.crafted_name", {"filename": claim.reading.filename}
                    )
        accepted += [c for c in group if c.refusal is None]
    return accepted


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanvasAssignment:
    id: str
    name: str
    points: float | None  # Canvas's points possible; None: the notebook's own maximum


def canvas_assignment(course: Course, assignment_id: str) -> CanvasAssignment:
    """``c.Course.lms["canvas"]["assignments"][assignment_id]``: ``{"id": 123, "name": ...,
    "points": ...}`` or just the id (``autograder.config.CanvasAssignmentSettings``)."""
    found = lms_config(course).canvas.assignments.get(assignment_id)
    if found is None:
        example = {"canvas": {"assignments": {assignment_id: {"id": 123456, "name": "..."}}}}
        raise LmsError(
            "lms.canvas.no_assignment_id", assignment=assignment_id, example=repr(example)
        )
    return CanvasAssignment(str(found.id), found.name or assignment_id, found.points)


def canvas_column(assignment: CanvasAssignment) -> str:
    return f"{assignment.name} ({assignment.id})"


def format_score(value: float) -> str:
    text = f"{round(float(value), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _person(roster: Roster, placements: dict[str, dict[str, Any]], student: str) -> Person:
    person = roster.get(student) or Person(student_id=student)
    placed = placements.get(student)
    if placed and placed.get("lms") == "canvas" and not person.canvas_id:
        lms_id = str(placed.get("lms_id", ""))
        if lms_id.isdigit():
            person = Person(**{**person.__dict__, "canvas_id": lms_id})
    return person


def _skip(student: str, why: Note) -> dict[str, Any]:
    """A report item: who was not written and why, as data (``note``, rendered where it is
    shown) and in English (``reason``, for JSON consumers)."""
    return {"student": student, "reason": why.text("en"), "note": why.to_dict()}


def export_canvas(
    course: Course,
    assignment_id: str | None = None,
    out: str | Path | None = None,
    roster: str | os.PathLike | None = None,
    **options,
) -> Path:
    """A Canvas gradebook import CSV for one assignment (or every assignment with a Canvas id).

    Writes ``out`` (default ``exports/canvas_<assignment>.csv``) and beside it
    ``<out>.report.json`` listing every student who could not be written and why (a note:
    ``lms.export.canvas.*``, ``autograder/messages/lms_export.toml``).
    """
    if assignment_id:
        aids = [assignment_id]
    else:
        configured = lms_config(course).canvas.assignments
        aids = [a for a in sorted(course.assignments) if a in configured]
        if not aids:
            raise LmsError("lms.canvas.no_assignment_ids")
    targets = {aid: canvas_assignment(course, aid) for aid in aids}
    out = (
        Path(out)
        if out
        else course.exports_dir
        / (f"canvas_{assignment_id}.csv" if assignment_id else "canvas_grades.csv")
    )
    people = course_roster(course, roster)
    grades: dict[str, dict[str, str]] = {}
    maxima: dict[str, float] = {}
    skipped: list[dict[str, Any]] = []
    placements: dict[str, dict[str, Any]] = {}
    for aid, target in targets.items():
        placements.update(load_placements(course, aid))
        for row in class_grades(course, aid):
            maxima[aid] = row.max_score
            scale = (target.points / row.max_score) if target.points and row.max_score else 1.0
            grades.setdefault(row.student, {})[aid] = format_score(row.score * scale)
        if aid not in maxima:
            from autograder.core import Assignment

            maxima[aid] = Assignment.from_course(course, aid).max_score
    rows = []
    for student in sorted(grades):
        person = _person(people, placements, student)
        if student.startswith("anon_") and not person.canvas_id:
            skipped.append(_skip(student, Note("lms.export.canvas.anonymous")))
            continue
        if not (person.canvas_id or person.sis_user_id or person.sis_login_id):
            skipped.append(_skip(student, Note("lms.export.canvas.no_id")))
            continue
        rows.append(
            [
                person.display_name,
                person.canvas_id,
                person.sis_user_id,
                person.sis_login_id,
                person.section,
                *(grades[student].get(aid, "") for aid in aids),
            ]
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(safe_row([*HEADER, *(canvas_column(targets[a]) for a in aids)]))
        writer.writerow(
            [
                POINTS_POSSIBLE,
                "",
                "",
                "",
                "",
                *(format_score(targets[a].points or maxima[a]) for a in aids),
            ]
        )
        writer.writerows(safe_row(row) for row in rows)
    report = {
        "format": "canvas",
        "file": str(out),
        "assignments": {
            a: {
                "canvas_id": t.id,
                "column": canvas_column(t),
                "points": t.points or maxima[a],
                "scaled_from": maxima[a] if t.points and t.points != maxima[a] else None,
            }
            for a, t in targets.items()
        },
        "written": len(rows),
        "skipped": skipped,
    }
    write_json_atomic(out.with_name(out.name + ".report.json"), report)
    for item in skipped:
        line = Note(
            "lms.export.canvas.not_written",
            {"student": clean_text(item["student"], 100, one_line=True), "reason": item["note"]},
        )
        log.warning("%s", line.text(course.language))
    if not rows:  # a file of headers only would import as "nothing changed"
        raise StageError(
            "lms.nothing_written",
            lms="Canvas",
            skipped=len(skipped),
            report=str(out.with_name(out.name + ".report.json")),
        )
    return out
