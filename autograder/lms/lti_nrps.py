"""LTI 1.3 Names and Role Provisioning Services: who is who, from the platform itself.

The context membership (``memberships_url``: the ``context_memberships_url`` of a launch's
``namesroleservice`` claim) is read with the same client-credentials token as score passback,
scope ``https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly``, Accept
``application/vnd.ims.lti-nrps.v2.membershipcontainer+json``, every page of ``Link: <...>;
rel="next"`` (1EdTech LTI NRPS 2.0). A member is ``{"user_id", "status", "roles", "name",
"email", "lis_person_sourcedid", ...}``; ``user_id`` is the ``sub`` of that person's launches,
the id AGS scores are posted to.

Only active learners are kept: ``status`` ``Active`` (the default when absent) and a context
role ``http://purl.imsglobal.org/vocab/lis/v2/membership#Learner`` (or a ``.../membership/
Learner#...`` sub-role, or the short ``Learner``). Each is matched to a course student
(``roster_match``) without guessing:

================  ================================================================
``email``         the member's e-mail is the roster's ``email`` (or the student id,
                  when student ids are e-mail addresses); case-insensitive
``email_local``   the part of the member's e-mail before ``@`` is the student id
``lis_person_sourcedid``  the member's SIS id is the student id or the roster's
                  ``sis_user_id``
================  ================================================================

A member the roster already knows by its ``lti_user_id`` is that student, whatever the
match. A key shared by several students, or two members claiming one student, match
nobody. The matches are written into the ``user_ids`` CSV (``student_id,lti_user_id``) that
``autograder export --format lti`` reads: rows are added, a different id already there is
kept and reported (``overwrite`` replaces it). Everything not matched comes back as data
(``autograder.results.Note``, ids ``lms.lti_*``): members who match no student, students no
active learner matches.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograder.collect import STUDENT_ID
from autograder.config import Course, LtiSettings
from autograder.lms.common import LmsError, lms_state_dir, resolve_path, write_json_atomic
from autograder.lms.lti import (
    NRPS_SCOPE,
    AgsClient,
    LtiServiceError,
    TokenError,
    doing,
    load_private_key,
    lti_settings,
    no_query,
)
from autograder.lms.roster import (
    Person,
    Roster,
    column_map,
    course_roster,
    load_roster,
    printable,
    read_csv_text,
    sniff_rows,
)
from autograder.results import Note, ResultsFile
from autograder.spreadsheet import FORMULA_STARTS

NRPS_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/membership"
LEARNER_ROLES = {f"{LIS}#Learner", "Learner"}
LEARNER_SUBROLE = f"{LIS}/Learner#"
INSTRUCTOR_ROLES = {f"{LIS}#Instructor", "Instructor"}
MAX_USER_ID = 255  # LTI 1.3: sub is at most 255 ASCII characters


@dataclass
class Member:
    """One membership of the context, as the platform gave it."""

    user_id: str
    status: str = "Active"
    roles: list[str] = field(default_factory=list)
    name: str = ""
    email: str = ""
    lis_person_sourcedid: str = ""

    @property
    def active(self) -> bool:
        return self.status.strip().casefold() == "active"

    @property
    def learner(self) -> bool:
        return any(r in LEARNER_ROLES or r.startswith(LEARNER_SUBROLE) for r in self.roles)

    @property
    def shown(self) -> str:
        return printable(self.name or self.email or self.user_id) or self.user_id


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_member(entry: Any) -> Member | None:
    """A member entry of the container, or None when it is not one (no ``user_id``)."""
    if not isinstance(entry, dict) or not _text(entry.get("user_id")):
        return None
    roles = entry.get("roles")
    name = _text(entry.get("name")) or " ".join(
        _text(entry.get(k)) for k in ("given_name", "family_name") if _text(entry.get(k))
    )
    return Member(
        user_id=_text(entry["user_id"]),
        status=_text(entry.get("status")) or "Active",
        roles=[r for r in roles if isinstance(r, str)] if isinstance(roles, list) else [],
        name=name,
        email=_text(entry.get("email")),
        lis_person_sourcedid=_text(entry.get("lis_person_sourcedid")),
    )


def fetch_members(client: AgsClient, url: str) -> tuple[list[Member], int]:
    """Every member of the context (all pages) and the number of entries that were not
    members. ``LtiServiceError`` when a page is not a membership container."""
    what = doing("memberships")
    members: list[Member] = []
    malformed = 0
    for page in client.pages(url, (NRPS_SCOPE,), NRPS_MEDIA_TYPE, what):
        entries = page.get("members") if isinstance(page, dict) else None
        if not isinstance(entries, list):
            raise LtiServiceError("lms.lti.platform.not_memberships", what=what, url=no_query(url))
        for entry in entries:
            member = parse_member(entry)
            if member is None:
                malformed += 1
            else:
                members.append(member)
    return members, malformed


# --- matching members to students -------------------------------------------------------------


def _fold(text: str) -> str:
    return text.strip().casefold()


def _local(email: str) -> str:
    return email.rpartition("@")[0] if "@" in email else ""


# roster_match -> (the member's key, the keys a student is known by)
MATCHES: dict[str, tuple[Callable[[Member], str], Callable[[Person], set[str]]]] = {
    "email": (
        lambda m: m.email,
        lambda p: {p.email} | ({p.student_id} if "@" in p.student_id else set()),
    ),
    "email_local": (lambda m: _local(m.email), lambda p: {p.student_id}),
    "lis_person_sourcedid": (
        lambda m: m.lis_person_sourcedid,
        lambda p: {p.student_id, p.sis_user_id},
    ),
}


def user_id_problem(user_id: str) -> str | None:
    """Why a platform's user id cannot go into the CSV, as a tag (``too_long``,
    ``control_characters``, ``formula``: the note ``lms.lti_user_id_unusable`` says all three
    to people), or None."""
    if len(user_id) > MAX_USER_ID:
        return "too_long"
    if not user_id.isprintable():
        return "control_characters"
    if user_id.startswith(FORMULA_STARTS):
        return "formula"
    return None


@dataclass
class Match:
    student: str
    lti_user_id: str
    name: str
    how: str  # "known" (the roster had this id) | the roster_match key
    change: str  # "added" | "unchanged" | "replaced" | "kept" (a conflict, not written)


@dataclass
class RosterSync:
    """What ``sync_roster`` did: counts, matches, and everything unmatched as Notes."""

    match: str
    memberships_url: str
    path: str | None
    started: str
    members: int = 0
    learners: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> how many
    matches: list[Match] = field(default_factory=list)
    unmatched_members: list[dict[str, Any]] = field(default_factory=list)  # Notes as data
    unmatched_students: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)  # conflicts, unusable ids
    written: bool = False

    @property
    def notes(self) -> list[dict[str, Any]]:
        return [*self.problems, *self.unmatched_members, *self.unmatched_students]

    def count(self, change: str) -> int:
        return sum(m.change == change for m in self.matches)

    def summary(self, language: str = "en") -> str:
        """The lines an instructor reads (``lms.lti_roster_*``), then every note."""
        params = {
            "learners": self.learners,
            "members": self.members,
            "matched": sum(m.change != "kept" for m in self.matches),
            "added": self.count("added") + self.count("replaced"),
            "unmatched_members": len(self.unmatched_members),
            "unmatched_students": len(self.unmatched_students),
            "path": self.path or "-",
        }
        key = "lms.lti_roster_written" if self.written else "lms.lti_roster_not_written"
        lines = [Note("lms.lti_roster_summary", params).text(language)]
        lines += ["  - " + (Note.from_dict(n).text(language)) for n in self.notes]
        lines.append(Note(key, params).text(language))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = {
            "members": self.members,
            "learners": self.learners,
            "matched": sum(m.change != "kept" for m in self.matches),
            "unmatched_members": len(self.unmatched_members),
            "unmatched_students": len(self.unmatched_students),
            "problems": len(self.problems),
        }
        return data


def match_members(
    learners: list[Member], people: dict[str, Person], how: str, report: RosterSync
) -> dict[str, Member]:
    """``{student id: member}`` for the learners that match exactly one student (and whom no
    other learner claims); every other learner goes to ``report.unmatched_members``."""
    if how not in MATCHES:
        raise LmsError("lms.lti.roster_match", allowed=", ".join(MATCHES), found=repr(how))
    member_key, student_keys = MATCHES[how]
    by_id = {p.lti_user_id: p.student_id for p in people.values() if p.lti_user_id}
    index: dict[str, set[str]] = {}
    for person in people.values():
        for key in student_keys(person):
            if key:
                index.setdefault(_fold(key), set()).add(person.student_id)
    claims: dict[str, list[tuple[Member, str]]] = {}
    for member in learners:
        if member.user_id in by_id:
            claims.setdefault(by_id[member.user_id], []).append((member, "known"))
            continue
        key = member_key(member)
        params = {"name": member.shown, "user_id": printable(member.user_id), "match": how}
        if not key:
            report.unmatched_members.append(Note("lms.lti_member_no_key", params).to_dict())
            continue
        found = sorted(index.get(_fold(key), ()))
        params["key"] = printable(key)
        if not found:
            report.unmatched_members.append(Note("lms.lti_member_unmatched", params).to_dict())
        elif len(found) > 1:
            params["students"] = ", ".join(found)
            report.unmatched_members.append(Note("lms.lti_member_ambiguous", params).to_dict())
        else:
            claims.setdefault(found[0], []).append((member, how))
    matched: dict[str, Member] = {}
    for student, claimed in sorted(claims.items()):
        known = [c for c in claimed if c[1] == "known"]
        if known:  # the id the roster holds wins over a key
            claimed = known
        if len(claimed) == 1:
            matched[student] = claimed[0][0]
            continue
        for member, _ in claimed:
            params = {
                "name": member.shown,
                "user_id": printable(member.user_id),
                "student": student,
                "count": len(claimed),
            }
            report.unmatched_members.append(Note("lms.lti_member_contested", params).to_dict())
    return matched


# --- the course's students and the user ids file ---------------------------------------------


def course_students(course: Course, roster: Roster) -> dict[str, Person]:
    """Every student the course knows: the roster's, the folders of ``submitted/`` and the
    students of the results files."""
    people = {p.student_id: p for p in roster.people}
    names: set[str] = set()
    if course.submitted_dir.is_dir():
        names |= {d.name for d in course.submitted_dir.iterdir() if d.is_dir()}
    for aid in course.assignments:
        try:
            names |= set(ResultsFile(course.results_dir, aid).load().students)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for name in names:
        if name not in people and STUDENT_ID.fullmatch(name):
            people[name] = Person(student_id=name)
    return people


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The user ids CSV as a header and rows (``student_id,lti_user_id`` when new); read as
    rosters are (any encoding and delimiter they accept), written back with commas."""
    if not path.is_file():
        return ["student_id", "lti_user_id"], []
    load_roster(path)  # refuses a file with problems (duplicate ids...) before it is touched
    rows = [r for r in sniff_rows(read_csv_text(path)) if any(c.strip() for c in r)]
    header = rows[0] if rows else ["student_id", "lti_user_id"]
    return header, rows[1:]


def write_user_ids(path: Path, changes: dict[str, str]) -> None:
    """Set ``lti_user_id`` of each student of ``changes`` in the CSV (rows added as needed),
    keeping every other row and column; written atomically."""
    header, rows = read_table(path)
    columns = column_map(header)
    if "student_id" not in columns:
        raise LmsError("lms.lti.user_ids_no_column", path=str(path))
    if "lti_user_id" not in columns:
        header = [*header, "lti_user_id"]
        columns["lti_user_id"] = len(header) - 1
    sid, uid = columns["student_id"], columns["lti_user_id"]
    pending = dict(changes)
    for row in rows:
        row.extend([""] * (len(header) - len(row)))
        student = row[sid].strip()
        if student in pending:
            row[uid] = pending.pop(student)
    for student, user_id in sorted(pending.items()):
        row = [""] * len(header)
        row[sid], row[uid] = student, user_id
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8", newline=""
    ) as tmp:
        writer = csv.writer(tmp)
        writer.writerow(header)
        writer.writerows(rows)
    Path(tmp.name).replace(path)


# --- the command ------------------------------------------------------------------------------


def user_ids_path(course: Course, settings: LtiSettings, out: str | os.PathLike | None) -> Path:
    path = Path(out) if out else resolve_path(course, settings.user_ids)
    if path is None:
        raise LmsError("lms.lti.user_ids_where")
    return path


def sync_roster(
    course: Course,
    *,
    out: str | os.PathLike | None = None,
    roster: str | os.PathLike | None = None,
    match: str | None = None,
    memberships_url: str | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    settings: LtiSettings | None = None,
    private_key: bytes | None = None,
    http=None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> RosterSync:
    """Read the context membership (NRPS), match its active learners to the course's
    students (``match``, default ``roster_match``) and write the matches into the user ids
    CSV (``out``, default ``user_ids``) unless ``dry_run``. ``roster`` completes the
    configured rosters (as ``--roster`` does for the exports)."""
    settings = settings or lti_settings(course)
    url = memberships_url or settings.memberships_url
    if not url:
        raise LmsError("lms.lti.no_memberships_url")
    how = match or settings.roster_match
    path = user_ids_path(course, settings, out)
    report = RosterSync(how, url, str(path), datetime.now(UTC).isoformat(timespec="seconds"))
    known = course_roster(course, roster)
    own = load_roster(path) if path.is_file() else Roster([], str(path))
    people = course_students(course, known.merged(own) if known else own)
    file_ids = {p.student_id: p.lti_user_id for p in own.people}

    if private_key is None:
        private_key, warnings = load_private_key(settings)
        report.problems.extend(warnings)  # notes (lms.lti.key_readable)
    client = AgsClient(settings, private_key, http=http, clock=clock, sleep=sleep)
    try:
        members, malformed = fetch_members(client, url)
    except TokenError as exc:
        raise LtiServiceError(
            "lms.lti.platform.during", what=doing("memberships"), detail=exc.note.to_dict()
        ) from None
    finally:
        if http is None:
            client.close()
    report.members = len(members) + malformed
    if malformed:
        report.dropped["malformed"] = malformed
    learners = []
    for member in members:
        if not member.active:
            report.dropped["inactive"] = report.dropped.get("inactive", 0) + 1
        elif not member.learner:
            report.dropped["not_learner"] = report.dropped.get("not_learner", 0) + 1
        else:
            learners.append(member)
    report.learners = len(learners)

    usable = []
    for member in learners:
        problem = user_id_problem(member.user_id)
        if problem:
            params = {
                "name": member.shown,
                "user_id": printable(member.user_id)[:80],
                "problem": problem,  # a tag, for readers of the JSON report
            }
            report.problems.append(Note("lms.lti_user_id_unusable", params).to_dict())
        else:
            usable.append(member)
    matched = match_members(usable, people, how, report)

    changes: dict[str, str] = {}
    for student, member in sorted(matched.items()):
        current = people[student].lti_user_id
        params = {"student": student, "name": member.shown, "user_id": member.user_id}
        if current and current != member.user_id:
            params["old"] = current
            elsewhere = file_ids.get(student) != current  # from a roster, which wins
            if not overwrite or elsewhere:
                key = "lms.lti_user_id_conflict_roster" if elsewhere else "lms.lti_user_id_conflict"
                report.problems.append(Note(key, {**params, "path": str(path)}).to_dict())
                report.matches.append(Match(student, member.user_id, member.shown, how, "kept"))
                continue
            change = "replaced"
        else:
            change = "unchanged" if current == member.user_id else "added"
        via = "known" if current == member.user_id else how
        report.matches.append(Match(student, member.user_id, member.shown, via, change))
        if file_ids.get(student) != member.user_id:
            changes[student] = member.user_id
    matched_students = {m.student for m in report.matches}
    for student in sorted(set(people) - matched_students):
        report.unmatched_students.append(
            Note("lms.lti_student_unmatched", {"student": student}).to_dict()
        )
    if not dry_run:
        write_user_ids(path, changes)
        report.written = True
    return report


def lti_roster(
    course: Course, out: str | os.PathLike | None = None, report_out=None, **options
) -> tuple[RosterSync, Path]:
    """``autograder lti-roster``: ``sync_roster`` and its JSON report (``report_out``, default
    ``<state>/lms/lti_roster_<time>.json``)."""
    result = sync_roster(course, out=out, **options)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(report_out) if report_out else lms_state_dir(course) / f"lti_roster_{stamp}.json"
    write_json_atomic(path, result.to_dict())
    return result, path
