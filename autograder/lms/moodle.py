"""Moodle: the assignment's "Download all submissions" zip in, its grading worksheet filled in.

Download layout (``mod_assign``; the id is the assignment's *participant* id, the number of
"Participant N" in the grading worksheet, different in every assignment)::

    Full Name_<id>_assignsubmission_file_/<file>     Moodle 3.1 - 4.0 (folder per student)
    Full Name_<id>_assignsubmission_file/<file>      Moodle 4.1+ (``mod_assign\\downloader``)
    Full Name_<id>_assignsubmission_file_<file>      "download submissions in folders" off
    Participant_<id>_assignsubmission_file/<file>    blind marking

Moodle writes the full name with its underscores turned into spaces and ``clean_filename``
applied (no control characters, no ``& < > " ` | ' : \\ /``), so the name never holds
``_``: like Moodle's own feedback importer (``explode('_', $path, 5)``), we read the name as
everything before the first ``_`` of the *first* path part, then the participant id. What
follows (sub-folders, the file name) is the student's and never decides who they are.

The **offline grading worksheet** (Assignment > Submissions > "Download grading worksheet")
is filled in, not generated: its columns depend on the site's settings and language, and
Moodle's importer finds them by their (localized) titles. Only the ``Grade`` and
``Feedback comments`` cells of the students we graded change; every other byte of the file
(other columns, quoting, line endings, the BOM) stays as downloaded.
"""

from __future__ import annotations

import html
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.collect import STUDENT_ID
from autograder.config import Course
from autograder.grades import GradeRow, class_grades
from autograder.lms.collect import (
    Candidate,
    Layout,
    load_placements,
    member_name,
    open_archive,
    skippable_member,
)
from autograder.lms.common import (
    LmsError,
    fmt_points,
    lms_config,
    per_assignment,
    resolve_path,
    words,
    write_json_atomic,
)
from autograder.lms.roster import (
    MOODLE_EMAIL,
    MOODLE_FULLNAME,
    MOODLE_IDENTIFIER,
    Roster,
    SafeLayout,
    course_roster,
    member_refusal,
    moodle_file_name,
    name_orders,
    parse_moodle_identifier,
    printable_report,
)
from autograder.results import Note, StageError
from autograder.untrusted import clean_text

log = logging.getLogger(__name__)

_PREFIX = r"(?P<name>[^_/\x00-\x1f\x7f]+)_(?P<pid>[0-9]+)_assignsubmission_(?P<plugin>[a-z0-9]+)"
_FOLDER = re.compile(_PREFIX + r"(?P<trail>_?)")
_FLAT = re.compile(_PREFIX + r"_(?P<file>.+)", re.S)

# mod_assign's "participant" string, as blind marking writes it instead of the name (the
# languages the worksheet columns are recognised in; "Teilnehmer/in" loses its "/").
BLIND_NAMES = {
    "participant",
    "participante",
    "partecipante",
    "teilnehmerin",
    "teilnehmer",
    "deelnemer",
}


@dataclass(frozen=True)
class MoodlePath:
    name: str
    participant_id: str
    plugin: str  # "file", "onlinetext", ...
    filename: str
    layout: str  # "3.x folders", "4.x folders", "flat"


def parse_moodle_path(path: str) -> MoodlePath | None:
    """What a member of a Moodle download says about its student: read from the first path
    part only (``Full Name_<id>_assignsubmission_<plugin>[_]/...``, or the whole member name
    ``Full Name_<id>_assignsubmission_<plugin>_<file>`` when Moodle did not make folders)."""
    parts = path.split("/")
    if len(parts) > 1:
        m = _FOLDER.fullmatch(parts[0])
        if m and parts[-1]:
            return MoodlePath(
                m["name"],
                m["pid"],
                m["plugin"],
                parts[-1],
                "3.x folders" if m["trail"] else "4.x folders",
            )
        return None
    m = _FLAT.fullmatch(path)
    if m:
        return MoodlePath(m["name"], m["pid"], m["plugin"], m["file"], "flat")
    return None


def is_blind_name(name: str) -> bool:
    return moodle_file_name(name) in BLIND_NAMES


def _named_as(person, name: str) -> bool:
    """Whether ``name`` (as Moodle wrote it in the download) is this person's name."""
    return moodle_file_name(name) in {moodle_file_name(n) for n in name_orders(person)}


# --- collect ------------------------------------------------------------------------------------
# Every reason a file is not laid out is a Note (``lms.collect.moodle.*``,
# ``autograder/messages/lms_collect.toml``); ``how`` is a tag ("roster:moodle_id", ...).


def _resolver(roster: Roster):
    """``(student id, how)`` or ``(None, why not)`` (a ``Note``) for a participant of the
    download.

    With participant ids in the roster (the grading worksheet), the id decides and the
    folder's name must be that participant's: participant ids differ in every assignment,
    so a worksheet of another assignment would otherwise file everyone under someone else.
    A roster without any participant id matches by name, only the one row of that name.
    """
    with_ids = any(p.moodle_id for p in roster.people)

    def resolve(pid: str, name: str) -> tuple[str | None, str | Note]:
        if not roster:
            return pid, "Moodle participant id (no roster)"
        person = roster.by("moodle_id", pid)
        if person:
            blind = is_blind_name(name)
            if person.name and not blind and not _named_as(person, name):
                return None, Note(
                    "lms.collect.moodle.wrong_name",
                    {
                        "name": name,
                        "pid": pid,
                        "student": person.student_id,
                        "roster_name": person.name,
                    },
                )
            return person.student_id, "roster:moodle_id" + (" (blind marking)" if blind else "")
        if with_ids:
            return None, Note("lms.collect.moodle.not_in_worksheet", {"pid": pid, "name": name})
        if is_blind_name(name):
            return None, Note("lms.collect.moodle.blind", {"pid": pid})
        person, why = roster.match_name(name, "moodle_id")
        if person:
            return person.student_id, "roster:name"
        return None, Note(
            "lms.collect.moodle.not_in_roster",
            {"pid": pid, "name": name, "why": why.to_dict() if why else None},
        )

    return resolve


def collect_moodle(
    course: Course,
    assignment_id: str,
    archive: str | os.PathLike,
    roster: str | os.PathLike | None = None,
    dry_run: bool = False,
):
    """Lay a Moodle "Download all submissions" zip out in ``submitted/``.

    ``roster`` may be the assignment's grading worksheet: its participant ids and e-mail
    addresses then identify the students (see ``_resolver``). A member whose first path part
    is not Moodle's, or whose participant is not confirmed by the roster, is kept in
    ``unplaced/`` with the reason and never takes a student's place.
    """
    people = course_roster(course, roster)
    resolve = _resolver(people)
    decided: dict[str, tuple[str, str]] = {}
    layout = SafeLayout(
        course, assignment_id, "moodle", archive, lambda c: decided[c.lms_id], dry_run
    )
    with open_archive(archive) as zf:
        claims: dict[str, list[Candidate]] = {}
        for info in zf.infolist():
            name = member_name(info)
            if skippable_member(name):
                continue
            stranger = Candidate("", "", info, name.rsplit("/", 1)[-1])
            unsafe = member_refusal(info, name)
            if unsafe:
                layout.problem(zf, "unsafe", name, unsafe, stranger)
                continue
            parsed = parse_moodle_path(name)
            if parsed is None:
                layout.problem(
                    zf,
                    "unrecognized",
                    name,
                    Note("lms.collect.moodle.not_moodle_path"),
                    stranger,
                )
                continue
            candidate = Candidate(
                lms_id=parsed.participant_id,
                name=parsed.name,
                member=info,
                filename=parsed.filename,
                order=_dos_order(info),
            )
            claims.setdefault(parsed.participant_id, []).append(candidate)
        accepted = []
        for pid, group in claims.items():
            names = sorted({c.name for c in group})
            if len(names) > 1:
                group = _one_name(zf, layout, people, pid, group)
                names = sorted({c.name for c in group})
            if len(names) != 1:
                why = Note("lms.collect.moodle.different_names", {"pid": pid, "names": names})
                student = None
            else:
                student, why = resolve(pid, names[0])
                if student is not None and not STUDENT_ID.fullmatch(student):
                    why = Note("lms.collect.invalid_student_id", {"student": student})
                    student = None
            if student is None:
                for c in group:
                    layout.problem(zf, "unmatched", member_name(c.member), why, c)
                continue
            decided[pid] = (student, why)
            accepted += group
        report = layout.run(zf, accepted)
    return printable_report(report)


def _one_name(zf, layout: Layout, roster: Roster, pid: str, group: list[Candidate]):
    """Of files claiming one participant under different names, those under the name the
    roster gives that participant (the others are reported); all of them if it gives none."""
    person = roster.by("moodle_id", pid) if roster else None
    if not (person and person.name):
        return group
    rightful = [c for c in group if _named_as(person, c.name)]
    if not rightful:
        return group
    for c in group:
        if c not in rightful:
            layout.problem(
                zf,
                "unmatched",
                member_name(c.member),
                Note(
                    "lms.collect.moodle.imitates",
                    {
                        "name": c.name,
                        "pid": pid,
                        "student": person.student_id,
                        "roster_name": person.name,
                    },
                ),
                c,
            )
    return rightful


def _dos_order(info) -> int:
    y, mo, d, h, mi, s = info.date_time
    return ((((y * 13 + mo) * 32 + d) * 24 + h) * 60 + mi) * 60 + s


# --- the grading worksheet ----------------------------------------------------------------------

COLUMN_NAMES = {
    "identifier": MOODLE_IDENTIFIER,
    "fullname": MOODLE_FULLNAME,
    "email": MOODLE_EMAIL,
    "grade": (
        "grade",
        "calificación",
        "calificacion",
        "note",
        "valutazione",
        "nota",
        "cijfer",
        "bewertung",
        "qualificació",
        "cualificación",
    ),
    "max_grade": (
        "maximum grade",
        "calificación máxima",
        "calificacion maxima",
        "note maximale",
        "valutazione massima",
        "nota máxima",
        "nota màxima",
        "maximaal cijfer",
        "bestwertung",
    ),
    "can_change": (
        "grade can be changed",
        "la calificación puede ser cambiada",
        "la calificación se puede cambiar",
        "se puede cambiar la calificación",
        "la note peut être modifiée",
        "la valutazione può essere modificata",
        "a nota pode ser alterada",
    ),
    "feedback": (
        "feedback comments",
        "comentarios de retroalimentación",
        "comentarios de retroalimentacion",
        "comentarios de la retroalimentación",
        "retroalimentación en comentarios",
        "commentaires de feedback",
        "commentaires feedback",
        "commenti al feedback",
        "comentários de feedback",
        "feedback als opmerkingen",
    ),
}
NO = ("no", "non", "nein", "não", "nee", "nei")


@dataclass
class Field:
    start: int  # span in the text, quotes included
    end: int
    value: str
    quoted: bool


@dataclass
class Record:
    fields: list[Field]
    content_end: int  # where the record's last field ends (its line terminator follows)


def parse_records(text: str, delimiter: str) -> list[Record]:
    """A CSV tokenizer that remembers where every field is, so a field can be replaced and
    every other byte kept (RFC 4180 quoting, CRLF/LF/CR line ends, embedded newlines)."""
    records: list[Record] = []
    i, n = 0, len(text)
    if text.startswith("\ufeff"):
        i = 1
    while i < n:
        fields: list[Field] = []
        while True:
            start = i
            if i < n and text[i] == '"':
                j, parts = i + 1, []
                while True:
                    k = text.find('"', j)
                    if k < 0:
                        raise LmsError("lms.moodle.unterminated_quote")
                    parts.append(text[j:k])
                    if k + 1 < n and text[k + 1] == '"':
                        parts.append('"')
                        j = k + 2
                        continue
                    i = k + 1
                    break
                # tolerate junk between the closing quote and the delimiter
                while i < n and text[i] not in (delimiter, "\r", "\n"):
                    parts.append(text[i])
                    i += 1
                fields.append(Field(start, i, "".join(parts), True))
            else:
                while i < n and text[i] not in (delimiter, "\r", "\n"):
                    i += 1
                fields.append(Field(start, i, text[start:i], False))
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        content_end = i
        if text.startswith("\r\n", i):
            i += 2
        elif i < n:
            i += 1
        if not (len(fields) == 1 and fields[0].value == "" and not fields[0].quoted):
            records.append(Record(fields, content_end))
    return records


def encode_field(value: str, delimiter: str, quote: bool) -> str:
    needs = any(ch in value for ch in (delimiter, '"', "\r", "\n", "\t", " "))
    if quote or needs:
        return '"' + value.replace('"', '""') + '"'
    return value


def cell_value(rec: Record, columns: dict[str, int], role: str) -> str:
    index = columns.get(role)
    return rec.fields[index].value if index is not None and index < len(rec.fields) else ""


def _key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").strip().casefold().split())


def find_columns(header: list[str], overrides: dict[str, str] | None = None) -> dict[str, int]:
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    for role, names in COLUMN_NAMES.items():
        wanted = (_key(overrides[role]),) if overrides and overrides.get(role) else names
        for index, key in enumerate(keys):
            if key in wanted:
                found[role] = index
                break
    return found


def detect_delimiter(text: str) -> str:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    return max(counts, key=counts.get) if any(counts.values()) else ","


def _number(text: str) -> float | None:
    text = text.strip().replace("\u00a0", "")
    if re.fullmatch(r"-?\d+(?:[.,]\d+)?", text):
        return float(text.replace(",", "."))
    return None


def format_grade(value: float, decimal_comma: bool) -> str:
    text = f"{value:.2f}"
    return text.replace(".", ",") if decimal_comma else text


def feedback_html(row: GradeRow, language: str) -> str:
    """Feedback comments as Moodle stores them (HTML): total, then each graded cell."""
    w = words(language)

    def rich(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    parts = [
        f"<p><strong>{w['total']}: {fmt_points(row.score)}/{fmt_points(row.max_score)}</strong></p>"
    ]
    error = row.error_in(language)
    if row.status == "error" and error:
        parts.append(f"<p>{html.escape(w['error'])}: {rich(error)}</p>")
    items = []
    for gid, cell in row.cells.items():
        mark = "✓" if cell.score >= cell.max_score - 1e-9 else "✗"
        line = (
            f"{mark} <code>{html.escape(gid)}</code>: {fmt_points(cell.score)}/"
            f"{fmt_points(cell.max_score)}"
        )
        if cell.auto_score is not None and abs(cell.auto_score - cell.score) > 1e-9:
            line += f" ({html.escape(w['overridden'])})"
        texts = [rich(t) for _, t in cell.messages if t]
        items.append(f"<li>{line}{' — ' + ' '.join(texts) if texts else ''}</li>")
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    if row.problems or row.notes:
        notes = "; ".join(row.notes_in(language))
        parts.append(f"<p>{html.escape(w['notes'])}: {rich(notes)}</p>")
    return "".join(parts)


@dataclass
class WorksheetFill:
    data: bytes
    filled: list[dict]
    skipped: list[dict]  # {"student", "reason" (English), "note" (its Note as data)}
    untouched_rows: int
    scaled_to: float | None
    notes: list[Note]  # lms.export.moodle.* (autograder/messages/lms_export.toml)


def _skip(student: str, why: Note) -> dict:
    """A report item: who was not filled and why, as data (``note``, rendered where it is
    shown) and in English (``reason``, for JSON consumers)."""
    return {"student": student, "reason": why.text("en"), "note": why.to_dict()}


def fill_worksheet(
    worksheet: bytes,
    grades: list[GradeRow],
    students_by_row,
    language: str = "es",
    feedback: bool = True,
    overrides: dict[str, str] | None = None,
) -> WorksheetFill:
    """Return ``worksheet`` with the Grade (and Feedback comments) cells of ``grades`` filled.

    ``students_by_row(records, columns) -> {record index: student id}`` says who each row is.
    """
    text = worksheet.decode("utf-8", errors="surrogateescape")
    delimiter = detect_delimiter(text)
    records = parse_records(text, delimiter)
    if not records:
        raise LmsError("lms.moodle.empty")
    header = [f.value for f in records[0].fields]
    columns = find_columns(header, overrides)
    for role in ("identifier", "grade"):
        if role not in columns:
            raise LmsError(
                "lms.moodle.no_column",
                role=role,
                found=", ".join(header),
                example=f"c.Course.lms = {{'moodle': {{'columns': {{'{role}': '<title>'}}}}}}",
            )

    def values(rec: Record, role: str) -> str:
        return cell_value(rec, columns, role)

    decimal_comma = any(
        re.fullmatch(r"-?\d+,\d+", values(r, role).strip())
        for r in records[1:]
        for role in ("grade", "max_grade")
    )
    who = students_by_row(records, columns)
    rows_of: dict[str, list[int]] = {}
    for index, student in who.items():
        rows_of.setdefault(student, []).append(index)
    replacements: list[tuple[int, int, str]] = []
    filled, skipped = [], []
    scaled_to = None
    touched: set[int] = set()
    notes: list[Note] = []
    if feedback and "feedback" not in columns:
        notes.append(Note("lms.export.moodle.no_feedback_column"))
    if "max_grade" not in columns:
        notes.append(Note("lms.export.moodle.no_max_grade"))
    for row in grades:
        indexes = rows_of.get(row.student, [])
        if not indexes:
            skipped.append(_skip(row.student, Note("lms.export.moodle.not_in_worksheet")))
            continue
        if len(indexes) > 1:
            several = Note("lms.export.moodle.several_rows", {"count": len(indexes)})
            skipped.append(_skip(row.student, several))
            continue
        rec = records[indexes[0]]
        if "can_change" in columns and _key(values(rec, "can_change")) in NO:
            skipped.append(_skip(row.student, Note("lms.export.moodle.locked")))
            continue
        score = row.score
        maximum = _number(values(rec, "max_grade")) if "max_grade" in columns else None
        if maximum and row.max_score and abs(maximum - row.max_score) > 1e-9:
            score = row.score * maximum / row.max_score
            scaled_to = maximum
        new = {"grade": format_grade(score, decimal_comma)}
        if feedback and "feedback" in columns:
            new["feedback"] = feedback_html(row, language)
        for role, value in new.items():
            index = columns[role]
            if index < len(rec.fields):
                f = rec.fields[index]
                replacements.append((f.start, f.end, encode_field(value, delimiter, f.quoted)))
            else:  # a short row: add the missing cells at its end
                pad = delimiter * (index - len(rec.fields) + 1)
                replacements.append(
                    (rec.content_end, rec.content_end, pad + encode_field(value, delimiter, False))
                )
        touched.add(indexes[0])
        filled.append(
            {
                "student": row.student,
                "row": indexes[0] + 1,
                "identifier": values(rec, "identifier"),
                **new,
            }
        )
    out = text
    for start, end, new_text in sorted(replacements, key=lambda r: (r[0], r[1]), reverse=True):
        out = out[:start] + new_text + out[end:]
    return WorksheetFill(
        out.encode("utf-8", errors="surrogateescape"),
        filled,
        skipped,
        len(records) - 1 - len(touched),
        scaled_to,
        notes,
    )


def _row_matcher(course: Course, assignment_id: str, roster: Roster):
    placements = {
        str(p.get("lms_id")): sid
        for sid, p in load_placements(course, assignment_id).items()
        if p.get("lms") == "moodle"
    }

    def students_by_row(records: list[Record], columns: dict[str, int]) -> dict[int, str]:
        who: dict[int, str] = {}
        for index, rec in enumerate(records[1:], start=1):
            pid = parse_moodle_identifier(cell_value(rec, columns, "identifier"))
            if not pid:
                continue
            student = placements.get(pid)
            if student is None and roster:
                person = roster.by("moodle_id", pid) or roster.by(
                    "email", cell_value(rec, columns, "email").strip()
                )
                student = person.student_id if person else None
            if student:
                who[index] = student
        return who

    return students_by_row


def export_moodle(
    course: Course,
    assignment_id: str | None = None,
    out: str | Path | None = None,
    worksheet: str | os.PathLike | None = None,
    roster: str | os.PathLike | None = None,
    feedback: bool = True,
    **options,
) -> Path:
    """Fill the grading worksheet the teacher downloaded from Moodle for ``assignment_id``.

    Writes ``out`` (default ``exports/moodle_<assignment>.csv``; never the downloaded file
    unless ``out`` names it) and ``<out>.report.json``: who was filled, who was not and why
    (notes, ``lms.export.moodle.*``, with their English text).
    """
    settings = lms_config(course).moodle
    if not assignment_id:
        if len(course.assignments) != 1:
            raise LmsError("lms.moodle.pass_assignment")
        assignment_id = next(iter(course.assignments))
    course.assignment(assignment_id)
    path = (
        Path(worksheet)
        if worksheet
        else resolve_path(course, per_assignment(settings.worksheets, assignment_id))
    )
    if path is None:
        raise LmsError("lms.moodle.pass_worksheet")
    if not path.is_file():
        raise LmsError("lms.moodle.no_worksheet", path=str(path))
    people = course_roster(course, roster)
    grades = class_grades(course, assignment_id)
    result = fill_worksheet(
        path.read_bytes(),
        grades,
        _row_matcher(course, assignment_id, people),
        course.language,
        feedback and settings.feedback,
        settings.columns or None,
    )
    out = Path(out) if out else course.exports_dir / f"moodle_{assignment_id}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.data)
    write_json_atomic(
        out.with_name(out.name + ".report.json"),
        {
            "format": "moodle",
            "file": str(out),
            "worksheet": str(path),
            "filled": result.filled,
            "skipped": result.skipped,
            "rows_left_as_they_were": result.untouched_rows,
            "scaled_to": result.scaled_to,
            "notes": [note.text("en") for note in result.notes],  # in English, for JSON readers
            "notes_as_data": [note.to_dict() for note in result.notes],
        },
    )
    for note in result.notes:
        line = Note("lms.export.moodle.note", {"note": note.to_dict()})
        log.warning("%s", line.text(course.language))
    for item in result.skipped:
        line = Note(
            "lms.export.moodle.not_filled",
            {"student": clean_text(item["student"], 100, one_line=True), "reason": item["note"]},
        )
        log.warning("%s", line.text(course.language))
    if not result.filled:  # the worksheet as downloaded: uploading it changes nothing
        raise StageError(
            "lms.nothing_written",
            lms="Moodle",
            skipped=len(result.skipped),
            report=str(out.with_name(out.name + ".report.json")),
        )
    return out
