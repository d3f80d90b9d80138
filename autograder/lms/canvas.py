"""Canvas: the "Download submissions" zip in, a gradebook import CSV out.

Download names (Canvas's ``ContentZipper``)::

    <sortable name>_[LATE_]<user id>_<attachment id>_<file name>
    [LATE_]anon_<anonymous id>_<attachment id>_<file name>        (anonymous grading)
    <sortable name>_[LATE_]<user id>_text.html | _link.html       (text entry, URL submissions)

The sortable name is lower-cased with every non-word character removed; the file name is the
student's, where Canvas appends ``-1``, ``-2`` when a file of that name was uploaded before.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.config import Course
from autograder.export import exporter
from autograder.lms import (
    Candidate,
    Layout,
    LmsError,
    class_grades,
    lms_section,
    load_placements,
    member_name,
    open_archive,
    per_assignment,
    skippable_member,
    write_json_atomic,
)
from autograder.lms.roster import Person, Roster, course_roster
from autograder.spreadsheet import safe_row

log = logging.getLogger(__name__)

POINTS_POSSIBLE = "    Points Possible"  # as Canvas writes it in its own exports
HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]

_ID = r"(?:(?P<anon>anon_[A-Za-z0-9]+)|(?P<uid>\d+))"
_REST = re.compile(r"^(?:(?P<att>\d+)_(?P<file>.+)|(?P<kind>text|link)\.html)$", re.S)
_HEAD = re.compile(rf"^(?:(?P<late>LATE)_)?{_ID}$")


@dataclass(frozen=True)
class CanvasName:
    """What a Canvas download file name says."""

    name: str  # sanitized sortable name ("" when anonymous)
    late: bool
    user_id: str | None
    anon_id: str | None  # "anon_xxxxx"
    attachment_id: str | None
    filename: str  # the student's file name, or "text.html" / "link.html"

    @property
    def lms_id(self) -> str:
        return self.anon_id or self.user_id or ""


def parse_canvas_names(basename: str) -> list[CanvasName]:
    """Every reading of a download file name, most likely first.

    Names may hold underscores and digits ("o_neil", "smith_2"), so more than one split can be
    valid; the caller prefers a reading whose user id is in the roster.
    """
    parts = basename.split("_")
    readings = []
    for cut in range(0, len(parts)):
        name = "_".join(parts[:cut])
        if cut and not (re.fullmatch(r"\w+", name) and name == name.lower()):
            continue  # Canvas lower-cases names and keeps only word characters
        for width in (1, 2, 3):  # "123", "LATE_123", "anon_x", "LATE_anon_x"
            head = "_".join(parts[cut : cut + width])
            rest = "_".join(parts[cut + width :])
            m = _HEAD.match(head)
            r = _REST.match(rest) if m else None
            if not (m and r):
                continue
            if m["anon"] and cut:
                continue  # anonymous names carry no sortable name
            if not m["anon"] and not cut:
                continue  # a user id always follows a name
            readings.append(
                CanvasName(
                    name=name,
                    late=bool(m["late"]),
                    user_id=m["uid"],
                    anon_id=m["anon"],
                    attachment_id=r["att"],
                    filename=r["file"] if r["att"] else f"{r['kind']}.html",
                )
            )
    return readings


def parse_canvas_name(basename: str, known_ids: set[str] | None = None) -> CanvasName | None:
    readings = parse_canvas_names(basename)
    if known_ids:
        for reading in readings:
            if reading.user_id in known_ids:
                return reading
    return readings[0] if readings else None


# --- collect ------------------------------------------------------------------------------------


def _resolver(roster: Roster):
    def resolve(cand: Candidate) -> tuple[str | None, str]:
        if cand.lms_id.startswith("anon_"):
            return cand.lms_id, "anonymous grading (no identity in the download)"
        if not roster:
            return cand.lms_id, "Canvas user id (no roster)"
        person = roster.by("canvas_id", cand.lms_id)
        if person:
            return person.student_id, "roster:canvas_id"
        person, why = roster.match_name(cand.name, "canvas_id", canvas_style=True)
        if person:
            return person.student_id, "roster:name"
        return None, f"Canvas user {cand.lms_id} ({cand.name}) is not in the roster: {why}"

    return resolve


def collect_canvas(
    course: Course,
    assignment_id: str,
    archive: str | os.PathLike,
    roster: str | os.PathLike | None = None,
    dry_run: bool = False,
):
    """Lay a Canvas "Download submissions" zip out in ``submitted/`` (see ``CollectReport``)."""
    people = course_roster(course, roster)
    known = {p.canvas_id for p in people.people if p.canvas_id}
    layout = Layout(course, assignment_id, "canvas", archive, _resolver(people), dry_run)
    candidates = []
    with open_archive(archive) as zf:
        for info in zf.infolist():
            name = member_name(info)
            if skippable_member(name):
                continue
            base = name.rsplit("/", 1)[-1]
            parsed = parse_canvas_name(base, known)
            if parsed is None:
                layout.problem(
                    zf,
                    "unrecognized",
                    name,
                    "not a Canvas submission file name "
                    "(sortablename_[LATE_]userid_attachmentid_file)",
                    Candidate("", "", info, base),
                )
                continue
            candidates.append(
                Candidate(
                    lms_id=parsed.lms_id,
                    name=parsed.name,
                    member=info,
                    filename=parsed.filename,
                    late=parsed.late,
                    order=int(parsed.attachment_id or 0),
                    attachment_id=parsed.attachment_id,
                )
            )
        return layout.run(zf, candidates)


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanvasAssignment:
    id: str
    name: str
    points: float | None  # Canvas's points possible; None: the notebook's own maximum


def canvas_assignment(course: Course, assignment_id: str) -> CanvasAssignment:
    """``c.Course.lms["canvas"]["assignments"][assignment_id]``: ``{"id": 123, "name": ...,
    "points": ...}`` or just the id."""
    raw = per_assignment(lms_section(course, "canvas").get("assignments", {}), assignment_id)
    if isinstance(raw, int | str) and str(raw).strip().isdigit():
        raw = {"id": raw}
    if not isinstance(raw, dict) or not str(raw.get("id", "")).strip().isdigit():
        raise LmsError(
            f"No Canvas assignment id for {assignment_id}. Set it in course_config.py:\n"
            f"  c.Course.lms = {{'canvas': {{'assignments': {{'{assignment_id}': "
            "{'id': 123456, 'name': 'Name in Canvas'}}}}}}\n"
            "The id is the number in the assignment's address (/courses/N/assignments/<id>). "
            "Without it Canvas would create a new assignment instead of filling this one."
        )
    points = raw.get("points")
    return CanvasAssignment(
        str(raw["id"]).strip(),
        str(raw.get("name") or assignment_id),
        float(points) if points not in (None, "") else None,
    )


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


@exporter("canvas")
def export_canvas(
    course: Course,
    assignment_id: str | None = None,
    out: str | Path | None = None,
    roster: str | os.PathLike | None = None,
    **options,
) -> Path:
    """A Canvas gradebook import CSV for one assignment (or every assignment with a Canvas id).

    Writes ``out`` (default ``exports/canvas_<assignment>.csv``) and beside it
    ``<out>.report.json`` listing every student who could not be written and why.
    """
    if assignment_id:
        aids = [assignment_id]
    else:
        configured = lms_section(course, "canvas").get("assignments", {})
        aids = [a for a in sorted(course.assignments) if a in configured]
        if not aids:
            raise LmsError(
                "No assignment has a Canvas id: set c.Course.lms['canvas']"
                "['assignments'] in course_config.py, or pass one assignment."
            )
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
    skipped: list[dict[str, str]] = []
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
            skipped.append(
                {
                    "student": student,
                    "reason": "anonymous submission: Canvas has no "
                    "identity for it until anonymity is lifted; post it in SpeedGrader "
                    "or with LTI",
                }
            )
            continue
        if not (person.canvas_id or person.sis_user_id or person.sis_login_id):
            skipped.append(
                {
                    "student": student,
                    "reason": "no Canvas ID or SIS id in the roster "
                    "or the collected submissions; Canvas would match by name only",
                }
            )
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
        log.warning("canvas export: %s not written: %s", item["student"], item["reason"])
    return out
