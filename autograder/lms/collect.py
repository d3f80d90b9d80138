"""Submissions in from an LMS download: the report every collector returns, the archive
reading every collector shares (bounded members, unsafe names refused) and the layout into
nbgrader's ``submitted/`` folders (``Layout``). The collectors themselves are
``lms.canvas`` and ``lms.moodle``."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autograder.collect import STUDENT_ID, notebook_stem
from autograder.config import Course
from autograder.lms.common import LmsError, lms_state_dir, write_json_atomic
from autograder.results import Note

# --- collect: the report every LMS collector returns ------------------------------------------


@dataclass
class Placed:
    """A notebook laid out as ``submitted/<student>/<assignment>/<notebook>``."""

    student: str
    lms: str
    lms_id: str  # Canvas user id / anon id, Moodle participant id
    name: str
    source: str  # member of the archive
    matched_by: str  # "roster:canvas_id", "roster:name", "lms id (no roster)", ...
    late: bool = False
    renamed_from: str | None = None
    attachment_id: str | None = None


PROBLEM_KINDS = (
    "unrecognized",
    "not_notebook",
    "unmatched",
    "duplicate",
    "ambiguous",
    "too_large",
    "unsafe",
)


@dataclass
class Problem:
    """Something in the archive that was not laid out as a submission, and why: ``note`` is
    the reason as data (``Note.to_dict()``: a ``lms.collect.*`` id and its parameters,
    ``autograder/messages/lms_collect.toml``), rendered in the reader's language."""

    kind: str  # one of PROBLEM_KINDS
    source: str
    note: dict[str, Any]
    lms_id: str | None = None
    name: str | None = None
    kept_at: str | None = None  # where the file was saved for the instructor to look at

    def text(self, language: str = "en") -> str:
        """The reason in ``language``."""
        note = Note.from_dict(self.note)
        return note.text(language) if note else ""

    @property
    def detail(self) -> str:
        """The reason in English (what the collect report JSON has always carried)."""
        return self.text("en")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "detail": self.detail,
            "note": {"id": self.note.get("id"), "params": dict(self.note.get("params") or {})},
            "lms_id": self.lms_id,
            "name": self.name,
            "kept_at": self.kept_at,
        }


@dataclass
class CollectReport:
    assignment: str
    lms: str
    archive: str
    notebook: str
    placed: list[Placed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    report_path: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [p.to_dict() for p in self.problems]
        return data

    def by_student(self) -> dict[str, Placed]:
        return {p.student: p for p in self.placed}

    def summary(self, language: str = "en") -> str:
        """What the instructor reads (``lms.collect.summary.*``), in ``language``."""

        def say(message_id: str, **params: Any) -> str:
            return Note(message_id, params).text(language)

        lines = [
            say(
                "lms.collect.summary.header",
                count=len(self.placed),
                assignment=self.assignment,
                archive=Path(self.archive).name,
                lms=self.lms,
            )
        ]
        late = [p.student for p in self.placed if p.late]
        if late:
            lines.append("  " + say("lms.collect.summary.late", count=len(late), students=late))
        anonymous = [p.student for p in self.placed if p.lms_id.startswith("anon_")]
        if anonymous:
            lines.append("  " + say("lms.collect.summary.anonymous", count=len(anonymous)))
        for p in self.placed:
            if p.renamed_from:
                lines.append(
                    "  "
                    + say(
                        "lms.collect.summary.renamed",
                        student=p.student,
                        filename=p.renamed_from,
                        notebook=self.notebook,
                    )
                )
        if self.problems:
            lines.append("  " + say("lms.collect.summary.problems", count=len(self.problems)))
            for p in self.problems:
                kind: Any = p.kind
                if kind in PROBLEM_KINDS:
                    kind = Note(f"lms.collect.kind.{kind}").to_dict()
                lines.append(
                    "  - "
                    + say(
                        "lms.collect.summary.problem",
                        kind=kind,
                        source=p.source,
                        name=p.name,
                        lms_id=p.lms_id,
                        reason=p.note,
                        kept_at=p.kept_at,
                    )
                )
        if self.report_path:
            lines.append("  " + say("lms.collect.summary.report", path=self.report_path))
        return "\n".join(lines)


def collect_report_path(course: Course, assignment_id: str) -> Path:
    return lms_state_dir(course) / f"{assignment_id}.collect.json"


def load_placements(course: Course, assignment_id: str) -> dict[str, dict[str, Any]]:
    """student id -> what the collector recorded (LMS, LMS id, name, lateness), all runs merged."""
    path = collect_report_path(course, assignment_id)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("students", {}))


COLLECTORS = {
    "canvas": "autograder.lms.canvas:collect_canvas",
    "moodle": "autograder.lms.moodle:collect_moodle",
}


def collect_archive(
    course: Course,
    assignment_id: str,
    archive: str | os.PathLike,
    lms: str,
    roster: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> CollectReport:
    """``autograder collect ASSIGNMENT ARCHIVE --lms canvas|moodle [--roster CSV]``."""
    target = COLLECTORS.get(lms)
    if target is not None:
        # named, imported when asked for: the collectors build on this module, never the
        # other way round (lazy dispatch, as the exporters)
        module, _, function = target.partition(":")
        collector = getattr(importlib.import_module(module), function)
        return collector(course, assignment_id, archive, roster=roster, dry_run=dry_run)
    raise LmsError("lms.collect.unknown_lms", lms=repr(lms))


# --- collect: from an archive's members to nbgrader's submitted/ layout -------------------------

MAX_MEMBER_BYTES = 50_000_000  # a notebook larger than this is not extracted (zip bombs)


@dataclass
class Candidate:
    """One file of an LMS archive, with the identity the LMS gave it."""

    lms_id: str
    name: str
    member: zipfile.ZipInfo
    filename: str  # the student's own file name
    late: bool = False
    order: int = 0  # newer uploads sort higher (Canvas attachment id)
    attachment_id: str | None = None


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name, repaired when a UTF-8 name was stored without the UTF-8 flag."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def skippable_member(name: str) -> bool:
    """Folders and the litter archivers leave (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``)."""
    base = name.rsplit("/", 1)[-1]
    return (
        name.endswith("/")
        or name.startswith("__MACOSX/")
        or "/__MACOSX/" in name
        or base in (".DS_Store", "Thumbs.db", "desktop.ini")
    )


def open_archive(archive: str | os.PathLike) -> zipfile.ZipFile:
    path = Path(archive)
    if not path.is_file():
        raise LmsError("lms.collect.no_archive", path=str(path))
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise LmsError("lms.collect.not_zip", path=str(path)) from None


class Layout:
    """Lays candidates out in ``submitted/``: one notebook per student, everything else reported.

    ``resolve(candidate)`` gives ``(student id, matched_by)`` or ``(None, reason)``, the
    reason a ``Note``. Every problem's reason is a ``Note`` (``lms.collect.*``), never a
    sentence: the report is rendered in the reader's language.
    """

    def __init__(
        self,
        course: Course,
        assignment_id: str,
        lms: str,
        archive: str | os.PathLike,
        resolve,
        dry_run: bool = False,
    ):
        spec = course.assignment(assignment_id)
        self.course = course
        self.assignment_id = assignment_id
        self.notebook = spec.notebook
        self.resolve = resolve
        self.dry_run = dry_run
        self.report = CollectReport(assignment_id, lms, str(archive), spec.notebook)
        self.unplaced_dir = lms_state_dir(course) / "unplaced" / assignment_id

    def problem(
        self,
        zf: zipfile.ZipFile | None,
        kind: str,
        source: str,
        note: Note,
        candidate: Candidate | None = None,
        keep: bool = True,
    ) -> None:
        """Report ``source`` as not laid out (``kind``), because of ``note``; its file is kept
        in ``unplaced/`` unless ``keep`` is false."""
        if not isinstance(note, Note):  # a reason is data, shown in the reader's language
            raise TypeError(f"Layout.problem takes a Note, not {type(note).__name__}")
        kept = None
        if keep and zf is not None and candidate is not None and not self.dry_run:
            kept = self._keep(zf, candidate)
        self.report.problems.append(
            Problem(
                kind,
                source,
                note.to_dict(),
                candidate.lms_id if candidate else None,
                candidate.name if candidate else None,
                kept,
            )
        )

    def _keep(self, zf: zipfile.ZipFile, candidate: Candidate) -> str | None:
        """Save an unplaced file where the instructor can look at it (never over the limit)."""
        if candidate.member.file_size > MAX_MEMBER_BYTES:
            return None
        safe = re.sub(r"[^\w.+-]", "_", member_name(candidate.member).rsplit("/", 1)[-1])[:150]
        target = self.unplaced_dir / f"{candidate.lms_id or 'unknown'}__{safe}"
        target.parent.mkdir(parents=True, exist_ok=True)
        data = _read_limited(zf, candidate.member)
        if data is None:
            return None
        target.write_bytes(data)
        return str(target)

    def run(self, zf: zipfile.ZipFile, candidates: list[Candidate]) -> CollectReport:
        groups: dict[str, list[Candidate]] = {}
        for cand in candidates:
            groups.setdefault(cand.lms_id, []).append(cand)
        chosen: dict[str, tuple[Candidate, str, str | None]] = {}  # student -> (cand, how, renamed)
        owners: dict[str, list[Candidate]] = {}
        want = notebook_stem(self.notebook)
        for _lms_id, group in sorted(groups.items()):
            notebooks = [c for c in group if c.filename.lower().endswith(".ipynb")]
            for c in group:
                if c not in notebooks:
                    self.problem(
                        zf,
                        "not_notebook",
                        member_name(c.member),
                        Note("lms.collect.not_notebook", {"filename": c.filename}),
                        c,
                    )
            if not notebooks:
                continue
            exact = [c for c in notebooks if notebook_stem(c.filename) == want]
            pick_from = exact or (notebooks if len(notebooks) == 1 else [])
            if not pick_from:
                for c in notebooks:
                    self.problem(
                        zf,
                        "ambiguous",
                        member_name(c.member),
                        Note(
                            "lms.collect.ambiguous",
                            {"count": len(notebooks), "notebook": self.notebook},
                        ),
                        c,
                    )
                continue
            best = max(pick_from, key=lambda c: c.order)
            for c in notebooks:
                if c is not best:
                    self.problem(
                        zf,
                        "duplicate",
                        member_name(c.member),
                        Note("lms.collect.duplicate_notebook", {"used": best.filename}),
                        c,
                    )
            student, how = self.resolve(best)
            if student is None:
                self.problem(zf, "unmatched", member_name(best.member), how, best)
                continue
            if not STUDENT_ID.fullmatch(student):
                self.problem(
                    zf,
                    "unmatched",
                    member_name(best.member),
                    Note("lms.collect.invalid_student_id", {"student": student}),
                    best,
                )
                continue
            owners.setdefault(student, []).append(best)
            renamed = None if best.filename == self.notebook else best.filename
            chosen[student] = (best, how, renamed)
        for student, cands in owners.items():
            if len(cands) > 1:
                del chosen[student]
                for c in cands:
                    self.problem(
                        zf,
                        "duplicate",
                        member_name(c.member),
                        Note(
                            "lms.collect.same_student",
                            {
                                "count": len(cands),
                                "lms_ids": [x.lms_id for x in cands],
                                "student": student,
                            },
                        ),
                        c,
                    )
        for student, (cand, how, renamed) in sorted(chosen.items()):
            if cand.member.file_size > MAX_MEMBER_BYTES:
                self.problem(
                    zf,
                    "too_large",
                    member_name(cand.member),
                    Note("lms.collect.too_large", {"size": cand.member.file_size}),
                    cand,
                    keep=False,
                )
                continue
            data = _read_limited(zf, cand.member)
            if data is None:
                self.problem(
                    zf,
                    "unsafe",
                    member_name(cand.member),
                    Note("lms.collect.unreadable"),
                    cand,
                    keep=False,
                )
                continue
            placed = Placed(
                student=student,
                lms=self.report.lms,
                lms_id=cand.lms_id,
                name=cand.name,
                source=member_name(cand.member),
                matched_by=how,
                late=cand.late,
                renamed_from=renamed,
                attachment_id=cand.attachment_id,
            )
            if not self.dry_run:
                self._write(student, data, placed)
            self.report.placed.append(placed)
        if not self.dry_run:
            self._save_report()
        return self.report

    def _write(self, student: str, data: bytes, placed: Placed) -> None:
        folder = self.course.submitted_dir / student / self.assignment_id
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)  # a newer download replaces the previous one whole
        folder.mkdir(parents=True)
        (folder / self.notebook).write_bytes(data)
        (folder / "lms.json").write_text(
            json.dumps(asdict(placed), ensure_ascii=False, indent=1), encoding="utf-8"
        )

    def _save_report(self) -> None:
        path = collect_report_path(self.course, self.assignment_id)
        students = load_placements(self.course, self.assignment_id)
        for p in self.report.placed:
            students[p.student] = asdict(p)
        self.report.report_path = str(path)
        data = {
            "assignment": self.assignment_id,
            "students": dict(sorted(students.items())),
            "last_run": self.report.to_dict(),
        }
        write_json_atomic(path, data)


def _read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """The member's bytes, or None if it is corrupt or expands past ``MAX_MEMBER_BYTES``."""
    try:
        with zf.open(info) as handle:
            data = handle.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError):
        return None
    return None if len(data) > MAX_MEMBER_BYTES else data
