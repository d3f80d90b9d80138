"""Who is who: a roster maps LMS identities to the course's student ids.

A roster is a CSV with a ``student_id`` column (the nbgrader student id: a folder name under
``submitted/``) and any of these columns (header spelling is forgiving, see ``ALIASES``):

==================  ==========================================================================
``name``            full name as people write it ("Ana García López")
``sortable_name``   "García López, Ana" (Canvas's sortable name)
``email``           e-mail address
``canvas_id``       Canvas user id (the number in download file names and the gradebook ``ID``)
``sis_user_id``     Canvas SIS user id
``sis_login_id``    Canvas SIS login id
``section``         Canvas section
``moodle_id``       Moodle participant id of an assignment (``Participant 123`` -> ``123``)
``lti_user_id``     the LTI 1.3 user id (``sub``) the platform knows the student by
==================  ==========================================================================

Two LMS files are rosters too, so instructors need not build one by hand:

* a **Canvas gradebook export** (``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``,
  ``Section``): the student id is the SIS login id, else the SIS user id, else the Canvas id;
* a **Moodle grading worksheet** (``Identifier``, ``Full name``, ``Email address``): the student
  id is the e-mail address, else the participant id.

Matching never guesses: an LMS id matches the row holding that id; a name matches only a row
with no id for that LMS, and only when exactly one row has that name (the Canvas collector
never attributes by name; the Moodle one only with a roster without participant ids).

This module also holds what the collectors share: how Canvas and Moodle write names in their
downloads (``canvas_file_name``, ``moodle_file_name``), the refusal of archive members that are
links or leave the archive (``member_refusal``), the escaping of student-chosen text before an
instructor reads it (``printable``) and ``SafeLayout``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from autograder.collect import STUDENT_ID
from autograder.lms import collect as lms_collect
from autograder.lms.collect import Layout, member_name
from autograder.lms.common import LmsError
from autograder.results import Note

ALIASES: dict[str, tuple[str, ...]] = {
    "student_id": (
        "student_id",
        "student id",
        "studentid",
        "nbgrader_id",
        "id_estudiante",
        "estudiante",
    ),
    "name": ("name", "full name", "fullname", "full_name", "nombre", "nombre completo"),
    "sortable_name": ("sortable_name", "sortable name"),
    "email": (
        "email",
        "email address",
        "e-mail",
        "e-mail address",
        "mail",
        "correo",
        "dirección de correo",
        "dirección email",
        "dirección de correo electrónico",
    ),
    "canvas_id": ("canvas_id", "canvas id", "canvas_user_id", "canvas user id"),
    "sis_user_id": ("sis_user_id", "sis user id"),
    "sis_login_id": ("sis_login_id", "sis login id"),
    "section": ("section", "sección", "seccion"),
    "moodle_id": ("moodle_id", "moodle participant id", "participant_id", "participant id"),
    "lti_user_id": ("lti_user_id", "lti user id", "lti_id", "lms_user_id", "lti_sub"),
}

# Moodle's "Identifier" column ("Participant 123", localized), Canvas's "ID".
MOODLE_IDENTIFIER = (
    "identifier",
    "identificador",
    "identificateur",
    "identificativo",
    "identificatie",
)
MOODLE_FULLNAME = ("full name", "nombre completo", "nom complet", "nome completo")
MOODLE_EMAIL = (
    "email address",
    "dirección de correo",
    "dirección email",
    "dirección de correo electrónico",
    "adresse de courriel",
    "adresse courriel",
    "indirizzo email",
    "endereço de email",
    "e-mail",
)


@dataclass
class Person:
    student_id: str
    name: str = ""
    sortable_name: str = ""
    email: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    moodle_id: str = ""
    lti_user_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.sortable_name or self.name or self.student_id


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").strip().casefold().replace("_", " ").split())


def normalize_name(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a person's name."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.casefold().replace("_", " ").split())


def canvas_word(ch: str) -> bool:
    """Ruby's ``[[:word:]]``, which Canvas keeps in download names: letters, marks, decimal
    digits and connector punctuation (``_``). Python's ``\\w`` leaves marks out."""
    category = unicodedata.category(ch)
    return category[0] in "LM" or category in ("Nd", "Pc")


def canvas_file_name(sortable_name: str) -> str:
    """How Canvas writes a sortable name in download file names (``ContentZipper``:
    ``sanitize_user_name`` joins ``_123_`` to ``123`` and lower-cases, then every character
    that is not ``[[:word:]]`` goes): ``"García, Ana-María"`` -> ``"garcíaanamaría"``."""
    name = re.sub(r"_([0-9]+)_", r"\1", sortable_name).lower()
    return "".join(ch for ch in name if canvas_word(ch))


def fold(text: str) -> str:
    """Accent-, case- and Unicode-form-insensitive form, to compare a name with a name."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


def name_orders(person: Person) -> list[str]:
    """The ways an LMS may write this person's name: as given, the sortable name, and every
    "last, first" split of the full name ("Ana García López" -> "López, Ana García",
    "García López, Ana")."""
    found = [n for n in (person.name.strip(), person.sortable_name.strip()) if n]
    words = person.name.split()
    for cut in range(1, len(words)):
        first, last = " ".join(words[:cut]), " ".join(words[cut:])
        found += [f"{last}, {first}", f"{last} {first}"]
    return found


def canvas_name_keys(person: Person) -> set[str]:
    """What the name part of this person's Canvas download files may be (folded)."""
    return {fold(canvas_file_name(n)) for n in name_orders(person)}


_MOODLE_DROPPED = re.compile(r"[\x00-\x1f\x7f&<>\"`|':\\/]")


def moodle_file_name(full_name: str) -> str:
    """How Moodle writes a full name in download paths (``mod_assign\\downloader``:
    underscores become spaces, then ``clean_filename`` drops control characters and
    ``& < > " ` | ' : \\ /``), folded for comparison."""
    text = _MOODLE_DROPPED.sub("", full_name.replace("_", " "))
    return " ".join(fold(text).split())


def parse_moodle_identifier(text: str) -> str | None:
    """``"Participant 123"`` (any language) -> ``"123"``."""
    match = re.search(r"(\d+)\s*$", text.strip())
    return match.group(1) if match else None


def read_csv_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def sniff_rows(text: str) -> list[list[str]]:
    sample = text[:4096]
    delimiter = ","
    first = sample.splitlines()[0] if sample else ""
    if first.count(";") > first.count(",") and first.count(";") >= first.count("\t"):
        delimiter = ";"
    elif first.count("\t") > first.count(","):
        delimiter = "\t"
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


class Roster:
    """People of the course, indexed by every id an LMS may give."""

    def __init__(self, people: list[Person], source: str = ""):
        self.people = people
        self.source = source
        self._index: dict[str, dict[str, Person]] = {}
        problems = []
        seen_students: dict[str, Person] = {}
        for person in people:
            if not STUDENT_ID.fullmatch(person.student_id):
                problems.append({"kind": "invalid_id", "student": repr(person.student_id)})
            if person.student_id in seen_students:
                problems.append({"kind": "repeated_id", "student": repr(person.student_id)})
            seen_students[person.student_id] = person
            for key in (
                "canvas_id",
                "sis_user_id",
                "sis_login_id",
                "moodle_id",
                "lti_user_id",
                "email",
            ):
                value = getattr(person, key)
                if not value:
                    continue
                value = value.casefold() if key == "email" else value
                index = self._index.setdefault(key, {})
                if value in index and index[value] is not person:
                    problems.append(
                        {
                            "kind": "shared_key",
                            "key": key,
                            "value": repr(value),
                            "first": index[value].student_id,
                            "second": person.student_id,
                        }
                    )
                index[value] = person
        if problems:
            raise LmsError("lms.roster.problems", source=source, problems=problems)
        self.students = seen_students

    def __len__(self) -> int:
        return len(self.people)

    def __bool__(self) -> bool:
        return bool(self.people)

    def get(self, student_id: str) -> Person | None:
        return self.students.get(student_id)

    def by(self, key: str, value: str) -> Person | None:
        if not value:
            return None
        return self._index.get(key, {}).get(value.casefold() if key == "email" else value)

    def merged(self, other: Roster | None) -> Roster:
        """This roster, completed by ``other``: rows of the same student are merged field by
        field (this roster wins), new students are added."""
        if not other:
            return self
        people = {
            p.student_id: Person(**{f.name: getattr(p, f.name) for f in fields(Person)})
            for p in self.people
        }
        for p in other.people:
            mine = people.get(p.student_id)
            if mine is None:
                people[p.student_id] = p
                continue
            for f in fields(Person):
                if f.name != "extra" and not getattr(mine, f.name) and getattr(p, f.name):
                    setattr(mine, f.name, getattr(p, f.name))
        return Roster(list(people.values()), f"{self.source} + {other.source}")

    # --- matching LMS identities ------------------------------------------------------------

    def match_name(
        self, name: str, id_field: str, canvas_style: bool = False
    ) -> tuple[Person | None, Note | None]:
        """The one person called ``name`` among rows without ``id_field``; else why not (a
        ``Note``, ``lms.collect.name.*``).

        ``name`` is as the LMS wrote it in a download: Canvas's file-name form with
        ``canvas_style``, else Moodle's folder form (see ``moodle_file_name``).
        """
        if not name:
            return None, Note("lms.collect.name.none")
        key = (lambda n: fold(canvas_file_name(n))) if canvas_style else moodle_file_name
        target = key(name)
        if not target:
            return None, Note("lms.collect.name.none")
        found = [p for p in self.people if target in {key(n) for n in name_orders(p)}]
        if not found:
            return None, Note("lms.collect.name.nobody", {"name": name})
        if len(found) > 1:
            return None, Note(
                "lms.collect.name.several",
                {
                    "count": len(found),
                    "name": name,
                    "students": [p.student_id for p in found],
                    "id_field": id_field,
                },
            )
        if getattr(found[0], id_field):
            return None, Note(
                "lms.collect.name.other_id",
                {
                    "name": name,
                    "student": found[0].student_id,
                    "id_field": id_field,
                    "value": getattr(found[0], id_field),
                },
            )
        return found[0], None


# --- loading ------------------------------------------------------------------------------------


def column_map(header: list[str]) -> dict[str, int]:
    keys = [_header_key(h) for h in header]
    found: dict[str, int] = {}
    for name, aliases in ALIASES.items():
        for index, key in enumerate(keys):
            if key in aliases and name not in found:
                found[name] = index
    return found


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def _safe_id(text: str) -> str:
    """A student id from an LMS value: characters outside the allowed set become ``-``."""
    text = re.sub(r"[^A-Za-z0-9_.@+-]", "-", text.strip())
    return text.lstrip("._-@+")[:100]


def _canvas_gradebook(rows: list[list[str]], source: str) -> Roster:
    header = rows[0]
    keys = [_header_key(h) for h in header]
    col = {
        k: keys.index(k)
        for k in ("student", "id", "sis user id", "sis login id", "section")
        if k in keys
    }
    people = []
    for row in rows[1:]:
        name = _cell(row, col.get("student"))
        canvas_id = _cell(row, col.get("id"))
        if not name or "points possible" in name.casefold() or not canvas_id.isdigit():
            continue  # the Points Possible row, muted rows
        if normalize_name(name) in ("student, test", "test student"):
            continue  # Canvas's Test Student (Student View)
        sis_login = _cell(row, col.get("sis login id"))
        sis_user = _cell(row, col.get("sis user id"))
        people.append(
            Person(
                student_id=_safe_id(sis_login or sis_user or canvas_id),
                sortable_name=name,
                canvas_id=canvas_id,
                sis_user_id=sis_user,
                sis_login_id=sis_login,
                section=_cell(row, col.get("section")),
            )
        )
    return Roster(people, source)


def _moodle_worksheet(rows: list[list[str]], source: str) -> Roster:
    keys = [_header_key(h) for h in rows[0]]
    ident = next(i for i, k in enumerate(keys) if k in MOODLE_IDENTIFIER)
    name = next((i for i, k in enumerate(keys) if k in MOODLE_FULLNAME), None)
    email = next((i for i, k in enumerate(keys) if k in MOODLE_EMAIL), None)
    people = []
    for row in rows[1:]:
        pid = parse_moodle_identifier(_cell(row, ident))
        if not pid:
            continue
        mail = _cell(row, email)
        people.append(
            Person(
                student_id=_safe_id(mail) if mail else pid,
                name=_cell(row, name),
                email=mail,
                moodle_id=pid,
            )
        )
    return Roster(people, source)


def load_roster(path: str | os.PathLike) -> Roster:
    """A roster CSV, a Canvas gradebook export or a Moodle grading worksheet."""
    path = Path(path)
    if not path.is_file():
        raise LmsError("lms.roster.missing", path=str(path))
    rows = [r for r in sniff_rows(read_csv_text(path)) if any(c.strip() for c in r)]
    if not rows:
        raise LmsError("lms.roster.empty", path=str(path))
    keys = [_header_key(h) for h in rows[0]]
    columns = column_map(rows[0])
    if "student_id" not in columns:
        if keys[:2] == ["student", "id"]:
            return _canvas_gradebook(rows, str(path))
        if any(k in MOODLE_IDENTIFIER for k in keys):
            return _moodle_worksheet(rows, str(path))
        raise LmsError("lms.roster.no_student_id", path=str(path), found=", ".join(rows[0]))
    known = set(columns.values())
    people = []
    for row in rows[1:]:
        sid = _cell(row, columns["student_id"])
        if not sid:
            continue
        values = {name: _cell(row, index) for name, index in columns.items()}
        if values.get("moodle_id"):
            values["moodle_id"] = (
                parse_moodle_identifier(values["moodle_id"]) or values["moodle_id"]
            )
        extra = {rows[0][i]: _cell(row, i) for i in range(len(rows[0])) if i not in known}
        people.append(Person(**values, extra=extra))
    return Roster(people, str(path))


def course_roster(course, extra: str | os.PathLike | None = None, lti: bool = False) -> Roster:
    """The roster(s) named in ``c.Course.lms`` (``roster``: a path or a list of paths; with
    ``lti``, also ``lti.user_ids``), completed by ``extra`` (``--roster``)."""
    from autograder.lms.common import lms_section, lms_settings, resolve_path

    paths: list[Path] = []
    if extra:
        paths.append(Path(extra))
    configured = lms_settings(course).get("roster")
    for value in configured if isinstance(configured, list | tuple) else [configured]:
        path = resolve_path(course, value)
        if path is not None:
            paths.append(path)
    if lti:
        path = resolve_path(course, lms_section(course, "lti").get("user_ids"))
        if path is not None and not path.is_file():
            raise LmsError("lms.roster.no_user_ids_file", path=str(path))
        if path is not None:
            paths.append(path)
    roster = Roster([], "")
    for path in paths:  # earlier files win: --roster, then the configured ones
        loaded = load_roster(path)
        roster = roster.merged(loaded) if roster else loaded
    return roster


# --- what the collectors share: archive members and what the instructor reads -------------------


def member_refusal(info: zipfile.ZipInfo, name: str) -> Note | None:
    """Why an archive member can never be a submission (its path leaves the archive, or it is
    a link or a device rather than a file), as a ``Note``, or None. Nothing is extracted by its path, but a
    member like this is not something an LMS writes: it is refused before it is read."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return Note("lms.collect.symlink")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return Note("lms.collect.special_file")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return Note("lms.collect.absolute_path")
    if "\\" in name:
        return Note("lms.collect.backslashes")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return Note("lms.collect.dot_path")
    return None


class SafeLayout(Layout):
    """``Layout`` whose copies of unplaced files have bounded names (at most 200 bytes: a
    student's file name may be 180 characters of 3-byte UTF-8) and never overwrite another
    file kept in the same run (two strangers' ``learning_rate.ipynb`` both stay)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept: set[str] = set()

    def _keep(self, zf: zipfile.ZipFile, candidate) -> str | None:
        limit = lms_collect.MAX_MEMBER_BYTES
        if candidate.member.file_size > limit:
            return None
        base = member_name(candidate.member).rsplit("/", 1)[-1]
        safe = re.sub(r"[^\w.+-]", "_", base).lstrip(".") or "file"
        who = re.sub(r"[^\w.+-]", "_", candidate.lms_id)[:40] or "unknown"
        name = f"{who}__{safe}".encode()[:200].decode("utf-8", "ignore")
        stem, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
        count = 1
        while name in self._kept:
            count += 1
            name = f"{stem}~{count}{dot}{ext}"
        try:
            with zf.open(candidate.member) as handle:
                data = handle.read(limit + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError):
            return None
        if len(data) > limit:
            return None
        self._kept.add(name)
        target = self.unplaced_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return str(target)


def printable(text: str | None) -> str | None:
    """``text`` with every character a terminal could act on escaped (``\\n``, ``\\x1b``,
    ``\\u202e``, ...; a backslash doubled): file names are chosen by students, and this is
    how they reach the instructor's screen. Printable text comes out unchanged."""
    if text is None or (text.isprintable() and "\\" not in text):
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def printable_data(value):
    """``value`` with every string in it ``printable`` (dicts, lists and tuples walked, keys
    left as they are: they are the code's own): the parameters of a note, which may quote file
    and student names, and nest other notes."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: printable_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_data(item) for item in value]
    return value


def printable_report(report):
    """Escape (``printable``) every text of a ``CollectReport`` that came from the archive,
    the parameters of every problem's note included (whatever language it is shown in)."""
    for placed in report.placed:
        for attr in ("lms_id", "name", "source", "renamed_from", "attachment_id"):
            setattr(placed, attr, printable(getattr(placed, attr)))
    for problem in report.problems:
        for attr in ("source", "lms_id", "name"):
            setattr(problem, attr, printable(getattr(problem, attr)))
        problem.note = {
            "id": problem.note.get("id"),
            "params": printable_data(problem.note.get("params") or {}),
        }
    return report
