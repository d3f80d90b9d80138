"""Grades out: the Canvas gradebook CSV checked against the importer's rules, and the Moodle
grading worksheet filled in with every other byte unchanged."""

from __future__ import annotations

import atexit
import csv
import io
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

from autograder.config import Course
from autograder.core import Assignment
from autograder.export import EXPORTERS
from autograder.grades import class_grades
from autograder.lms.canvas import export_canvas
from autograder.lms.collect import collect_archive
from autograder.lms.common import LmsError, feedback_text
from autograder.lms.moodle import export_moodle, parse_records
from autograder.record import open_gradebook, record_result, sync_assignment
from autograder.results import AssignmentResult, CellResult, CheckResult, Note, StudentResult
from tests.conftest import make_course

AID = "lesson4_learning_rate"
_TEMPLATE: dict[str, Path] = {}


# --- a graded class without running notebooks ---------------------------------------------------


def student_result(
    course: Course,
    student: str,
    scores: dict[str, float] | None = None,
    status: str = "graded",
    error: str | Note | None = None,
) -> StudentResult:
    """A result as the core would return it: full marks unless ``scores`` says otherwise."""
    assignment = Assignment.from_course(course, AID)
    cells = {}
    for gid, points in assignment.cell_points.items():
        score = (scores or {}).get(gid, points)
        passed = score >= points
        message = "Correcto." if passed else f"Revisa `{gid.removeprefix('test_')}`: 3 != 4."
        cells[gid] = CellResult(
            score=score,
            max_score=points,
            checks=[
                CheckResult(
                    id=gid.removeprefix("test_"),
                    passed=passed,
                    message=message,
                    message_id="ok" if passed else "assertion",
                    messages={"es": message, "en": message},
                    outcome="passed" if passed else "failed",
                    points=score,
                    max_points=points,
                )
            ],
        )
    note = error if isinstance(error, Note) else None
    return StudentResult(
        student,
        AID,
        status,
        note.text("en") if note else error,
        sum(c.score for c in cells.values()),
        assignment.max_score,
        cells,
        notebook=assignment.notebook,
        error_note=note.to_dict() if note else None,
    )


def graded_state(
    state_dir: Path, results: list[StudentResult] | None = None, course: Course | None = None
) -> Course:
    """A course whose gradebook and results file hold ``results`` (the gradebook schema is
    created once per session and copied)."""
    course = course or make_course(state_dir)
    assignment = Assignment.from_course(course, AID)
    if "db" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="lms-gradebook-"))
        atexit.register(shutil.rmtree, folder, True)
        sync_assignment(f"sqlite:///{folder / 'gradebook.db'}", assignment)
        _TEMPLATE["db"] = folder / "gradebook.db"
    course.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE["db"], course.state_dir / "gradebook.db")
    results = results or []
    with open_gradebook(course.db_url) as gb:
        for result in results:
            record_result(gb, assignment, result)
    AssignmentResult(AID, {r.student: r for r in results}).write_json(
        course.results_dir / f"{AID}.json"
    )
    return course


def set_manual_score(course: Course, student: str, gid: str, score: float) -> None:
    with open_gradebook(course.db_url) as gb:
        grade = gb.find_grade(gid, "learning_rate", AID, student)
        grade.manual_score = score
        gb.db.commit()


def class_of(course: Course) -> list[StudentResult]:
    return [
        student_result(course, "ana"),
        student_result(
            course, "ben", {"test_steps_lr_003": 0, "test_step_size": 0, "test_curve_labels": 1}
        ),
        student_result(
            course,
            "carla",
            dict.fromkeys(Assignment.from_course(course, AID).cell_points, 0.0),
            "error",
            Note("submission.not_json"),
        ),
        student_result(course, "iris"),
        student_result(course, "anon_Xy12z", {"test_step_size": 0}),
        student_result(course, "zoe", {"test_curve_labels": 0}),
    ]


ROSTER = """student_id,name,sortable_name,canvas_id,sis_user_id,sis_login_id,section,email
ana,Ana García,"García, Ana",1001,S1,ana.garcia,Grupo A,ana@uni.es
ben,Ben López,"López, Ben",1002,S2,ben.lopez,Grupo A,ben@uni.es
carla,Carla O'Neil,"O'Neil, Carla",1003,,,Grupo B,carla@uni.es
iris,Iris Ibáñez,"Ibáñez, Iris",,S9,iris.ibanez,Grupo B,iris@uni.es
zoe,Zoe Extra,"Extra, Zoe",,,,,zoe@uni.es
"""


@pytest.fixture
def course(tmp_path):
    course = make_course(tmp_path / "state")
    graded_state(tmp_path / "state", class_of(course), course)
    set_manual_score(course, "ben", "test_step_size", 1.0)  # the instructor's override
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    course.nbgrader_config.Course.lms = {
        "roster": str(tmp_path / "roster.csv"),
        "canvas": {"assignments": {AID: {"id": 7001, "name": "Lección 4: tasa de aprendizaje"}}},
    }
    return course


def test_exporters_are_registered():
    import autograder.lms.lti  # noqa: F401

    assert {"canvas", "moodle", "lti"} <= set(EXPORTERS)


def test_class_grades_use_the_gradebook_and_the_messages(course):
    rows = {r.student: r for r in class_grades(course, AID)}
    assert rows["ana"].score == 8 and rows["ana"].status == "graded"
    assert rows["ben"].score == 6  # 5 from the grader + 1 from the manual override
    assert rows["ben"].overridden and rows["carla"].status == "error"
    text = feedback_text(rows["ben"], "es")
    assert text.startswith("Total: 6/8")
    assert "test_step_size: 1/1 (calificación revisada por el profesor)" in text
    assert "✗ test_steps_lr_003: 0/1 — Revisa `steps_lr_003`" in text
    # the reason travels as data: a Spanish comment says it in Spanish (and English in English)
    assert "No se pudo calificar: El archivo no es un cuaderno de Jupyter válido" in (
        feedback_text(rows["carla"], "es")
    )
    assert "Could not be graded: The file is not a valid Jupyter notebook" in (
        feedback_text(rows["carla"], "en")
    )


# --- Canvas -----------------------------------------------------------------------------------


def canvas_import(
    text: str, students: dict[str, dict[str, str]], assignments: dict[str, str]
) -> dict[str, dict[str, str]]:
    """What Canvas's GradebookImporter does with the file (its rules, restated): raises
    AssertionError where Canvas would reject the file, create an assignment, or match a
    student by name only. Returns {canvas user id: {assignment id: grade}}."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert len(header) > 3 and re.search("Student", header[0]) and re.search("ID", header[1]), (
        "invalid header row"
    )
    columns = 3
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        columns += 1
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        columns += 2
    assert re.search("Section", header[columns - 1]), "the student columns must end at Section"
    titles = header[columns:]
    while titles and re.search(
        "Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade",
        titles[-1],
    ):
        titles.pop()
    ids = []
    for title in titles:
        m = re.fullmatch(r"(.*)\s+\((\d+)\)", title, re.S)
        assert m and m[2] in assignments, f"{title!r} would create a new assignment"
        ids.append(m[2])
    imported: dict[str, dict[str, str]] = {}
    by_sis = {s.get("sis_user_id"): cid for cid, s in students.items() if s.get("sis_user_id")}
    by_login = {s.get("sis_login_id"): cid for cid, s in students.items() if s.get("sis_login_id")}
    points_seen = False
    for row in rows[1:]:
        if re.search("Points Possible", row[0]):
            points_seen = True
            for value in row[columns : columns + len(ids)]:
                assert value == "" or float(value) > 0
            continue
        if all(c.strip() in ("", "Muted") for c in row):
            continue
        cid = row[1] if row[1] in students else None
        if cid is None and columns == 5:
            cid = by_sis.get(row[2]) or by_login.get(row[3])
        assert cid, f"{row[0]!r} would be matched by name only (or added as a new student)"
        for aid, value in zip(ids, row[columns : columns + len(ids)], strict=False):
            assert value in ("", "EX") or re.fullmatch(r"-?[0-9.,]+%?", value), value
            imported.setdefault(cid, {})[aid] = value
    assert points_seen
    return imported


CANVAS_COURSE = {
    "1001": {"sis_user_id": "S1", "sis_login_id": "ana.garcia"},
    "1002": {"sis_user_id": "S2", "sis_login_id": "ben.lopez"},
    "1003": {},
    "1009": {"sis_user_id": "S9", "sis_login_id": "iris.ibanez"},
}


def test_canvas_csv_passes_the_importer_rules(course):
    path = EXPORTERS["canvas"](course, AID)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == (
        "Student,ID,SIS User ID,SIS Login ID,Section,Lección 4: tasa de aprendizaje (7001)"
    )
    assert lines[1] == "    Points Possible,,,,,8"
    imported = canvas_import(text, CANVAS_COURSE, {"7001": "Lección 4"})
    assert imported == {
        "1001": {"7001": "8"},
        "1002": {"7001": "6"},
        "1003": {"7001": "0"},
        "1009": {"7001": "8"},
    }  # Iris matched by her SIS ids
    report = json.loads(path.with_name(path.name + ".report.json").read_text())
    skipped = {s["student"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"anon_Xy12z", "zoe"}
    assert "anonymous" in skipped["anon_Xy12z"] and "name only" in skipped["zoe"]


def test_canvas_ids_come_from_collected_submissions_too(course, tmp_path):
    course.nbgrader_config.Course.lms["roster"] = None
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("garcíaana_1001_5_learning_rate.ipynb", "lópezben_1002_6_x.ipynb"):
            zf.writestr(name, "{}")
    roster = tmp_path / "r.csv"
    roster.write_text("student_id,canvas_id\nana,1001\nben,1002\n")
    collect_archive(course, AID, archive, "canvas", roster=roster)
    path = export_canvas(course, AID)  # no roster now: the collect report knows the ids
    imported = canvas_import(path.read_text(), CANVAS_COURSE, {"7001": ""})
    assert imported == {"1001": {"7001": "8"}, "1002": {"7001": "6"}}


def test_canvas_points_scaling_and_missing_id(course):
    course.nbgrader_config.Course.lms["canvas"]["assignments"][AID]["points"] = 10
    path = export_canvas(course, AID)
    imported = canvas_import(path.read_text(), CANVAS_COURSE, {"7001": ""})
    assert imported["1002"] == {"7001": "7.5"} and imported["1001"] == {"7001": "10"}
    assert path.read_text().splitlines()[1].endswith(",10")
    course.nbgrader_config.Course.lms["canvas"] = {}
    with pytest.raises(LmsError, match="No Canvas assignment id"):
        export_canvas(course, AID)
    with pytest.raises(LmsError, match="No assignment has a Canvas id"):
        export_canvas(course)


# --- Moodle -------------------------------------------------------------------------------------


def php_field(value: str) -> str:
    """How PHP's fputcsv (Moodle's csv_export_writer) writes a field."""
    if any(ch in value for ch in ', "\n\r\t'):
        return '"' + value.replace('"', '""') + '"'
    return value


EN_HEADER = [
    "Identifier",
    "Full name",
    "Email address",
    "Status",
    "Grade",
    "Maximum grade",
    "Grade can be changed",
    "Last modified (submission)",
    "Last modified (grade)",
    "Feedback comments",
]
ES_HEADER = [
    "Identificador",
    "Nombre completo",
    "Dirección de correo",
    "Estado",
    "Calificación",
    "Calificación máxima",
    "La calificación puede ser cambiada",
    "Última modificación (entrega)",
    "Última modificación (calificación)",
    "Comentarios de retroalimentación",
]


def worksheet_rows(maximum: str) -> list[list[str]]:
    return [
        [
            "Participant 101",
            "Ana García López",
            "ana@uni.es",
            "Submitted for grading",
            "",
            maximum,
            "Yes",
            "Friday, 20 November 2026, 10:00 AM",
            "-",
            "",
        ],
        [
            "Participant 102",
            'Ben "Benito" López',
            "ben@uni.es",
            "Submitted for grading\nGraded",
            "3.00",
            maximum,
            "Yes",
            "Friday, 20 November 2026, 11:00 AM",
            "Friday, 20 November 2026, 12:00 PM",
            '<p>old, "quoted" feedback</p>',
        ],
        [
            "Participant 103",
            "Carla O'Neil",
            "carla@uni.es",
            "Submitted for grading",
            "",
            maximum,
            "Yes",
            "Friday, 20 November 2026, 10:30 AM",
            "-",
            "",
        ],
        [
            "Participant 104",
            "Dani Ruiz",
            "dani@uni.es",
            "No submission",
            "",
            maximum,
            "Yes",
            "-",
            "-",
            "<p>Talk to me,\nplease</p>",
        ],
        [
            "Participant 105",
            "Zoe Extra",
            "zoe@uni.es",
            "Submitted for grading",
            "",
            maximum,
            "No",
            "Friday, 20 November 2026, 9:00 AM",
            "-",
            "",
        ],
    ]


def build_worksheet(
    header: list[str], rows: list[list[str]], newline: str = "\n", bom: bool = False
) -> tuple[bytes, list[list[str]]]:
    raw = [[php_field(v) for v in row] for row in [header, *rows]]
    text = ("\ufeff" if bom else "") + "".join(",".join(r) + newline for r in raw)
    return text.encode("utf-8"), raw


def assert_only_grade_and_feedback_changed(
    out: bytes, raw: list[list[str]], newline: str, bom: bool, changed_rows: set[int]
) -> None:
    """Byte-for-byte: every field of every row is as downloaded, except the Grade and
    Feedback comments fields of ``changed_rows`` (which must still be one CSV field each)."""
    any_field = r'(?:"(?:[^"]|"")*"|[^,"\r\n]*)'
    pattern = "\ufeff" if bom else ""
    for index, fields in enumerate(raw):
        parts = []
        for col, value in enumerate(fields):
            replaceable = index in changed_rows and col in (4, 9)
            parts.append(any_field if replaceable else re.escape(value))
        pattern += ",".join(parts) + re.escape(newline)
    assert re.fullmatch(pattern, out.decode("utf-8"), re.S), "a byte outside Grade/Feedback changed"


def moodle_placements(course: Course, tmp_path: Path) -> None:
    """Collect a Moodle download, as the instructor would before grading."""
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, pid in (
            ("Ana García López", 101),
            ("Ben López", 102),
            ("Carla O'Neil", 103),
            ("Zoe Extra", 105),
        ):
            zf.writestr(f"{name}_{pid}_assignsubmission_file/learning_rate.ipynb", "{}")
    roster = tmp_path / "moodle_roster.csv"
    roster.write_text(
        "student_id,name\nana,Ana García López\nben,Ben López\ncarla,Carla O'Neil\nzoe,Zoe Extra\n",
        encoding="utf-8",
    )
    report = collect_archive(course, AID, archive, "moodle", roster=roster)
    assert report.ok, report.summary()


@pytest.mark.parametrize("newline,bom", [("\n", False), ("\r\n", True)])
def test_moodle_worksheet_round_trip(course, tmp_path, newline, bom):
    moodle_placements(course, tmp_path)
    data, raw = build_worksheet(EN_HEADER, worksheet_rows("8.00"), newline, bom)
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_bytes(data)
    out = export_moodle(course, AID, worksheet=worksheet)
    assert worksheet.read_bytes() == data  # the download itself is never touched
    result = out.read_bytes()
    assert_only_grade_and_feedback_changed(result, raw, newline, bom, changed_rows={1, 2, 3})
    rows = list(csv.reader(io.StringIO(result.decode("utf-8-sig"), newline="")))
    grades = {r[0]: r[4] for r in rows[1:]}
    assert grades == {
        "Participant 101": "8.00",
        "Participant 102": "6.00",
        "Participant 103": "0.00",
        "Participant 104": "",
        "Participant 105": "",
    }
    feedback = {r[0]: r[9] for r in rows[1:]}
    assert feedback["Participant 101"].startswith("<p><strong>Total: 8/8</strong></p><ul>")
    assert "<code>steps_lr_003</code>" in feedback["Participant 102"]
    assert "calificación revisada por el profesor" in feedback["Participant 102"]
    assert "no es un cuaderno de Jupyter válido" in feedback["Participant 103"]
    assert feedback["Participant 104"] == "<p>Talk to me,\nplease</p>"
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    skipped = {s["student"]: s["reason"] for s in report["skipped"]}
    assert "cannot be changed" in skipped["zoe"]
    assert set(skipped) == {"zoe", "iris", "anon_Xy12z"}  # no worksheet row for the last two
    assert report["rows_left_as_they_were"] == 2


def test_moodle_spanish_worksheet_decimal_comma_and_scaling(course, tmp_path):
    moodle_placements(course, tmp_path)
    data, raw = build_worksheet(ES_HEADER, worksheet_rows("10,00"))
    worksheet = tmp_path / "hoja.csv"
    worksheet.write_bytes(data)
    out = export_moodle(course, AID, worksheet=worksheet, out=tmp_path / "filled.csv")
    assert_only_grade_and_feedback_changed(out.read_bytes(), raw, "\n", False, {1, 2, 3})
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [r[4] for r in rows[1:4]] == ["10,00", "7,50", "0,00"]
    report = json.loads((tmp_path / "filled.csv.report.json").read_text())
    assert report["scaled_to"] == 10


def test_moodle_worksheet_matched_by_roster_email(course, tmp_path):
    # no collect report: the roster's e-mails identify the worksheet rows
    data, raw = build_worksheet(EN_HEADER, worksheet_rows("8.00"))
    worksheet = tmp_path / "w.csv"
    worksheet.write_bytes(data)
    out = export_moodle(course, AID, worksheet=worksheet)
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [r[4] for r in rows[1:]] == ["8.00", "6.00", "0.00", "", ""]


def test_moodle_worksheet_without_feedback_column_or_identifier(course, tmp_path):
    moodle_placements(course, tmp_path)
    header = EN_HEADER[:-1]
    data, raw = build_worksheet(header, [r[:-1] for r in worksheet_rows("8.00")])
    worksheet = tmp_path / "w.csv"
    worksheet.write_bytes(data)
    out = export_moodle(course, AID, worksheet=worksheet)
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    assert any("Feedback comments" in n for n in report["notes"])
    records = parse_records(out.read_text(encoding="utf-8"), ",")
    assert all(len(r.fields) == len(header) for r in records)
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Score\nAna,1\n", encoding="utf-8")
    with pytest.raises(LmsError, match="no identifier column"):
        export_moodle(course, AID, worksheet=bad)
    with pytest.raises(LmsError, match="--worksheet"):
        export_moodle(course, AID)


def test_exported_cells_never_run_as_spreadsheet_formulas(tmp_path):
    """Folder names, roster names and error reasons reach CSV cells: any that starts like a
    formula (=, +, -, @, tab, CR) is neutralised with a leading quote."""
    from autograder.spreadsheet import FORMULA_STARTS, safe_cell

    course = make_course(tmp_path / "state")
    hostile = [f"{start}HYPERLINK(x)" for start in FORMULA_STARTS]
    results = [
        student_result(course, "ana", status="error", error="=cmd|' /C calc'!A0"),
        *(student_result(course, f"s{i}") for i in range(len(hostile))),
    ]
    graded_state(tmp_path / "state", results, course)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["student_id", "name", "sortable_name", "canvas_id", "sis_user_id", "sis_login_id"]
        + ["section", "email"]
    )
    for i, name in enumerate(hostile):
        writer.writerow([f"s{i}", name, name, 2000 + i, "", "", "@SUM(1)", f"s{i}@uni.es"])
    (tmp_path / "roster.csv").write_text(buffer.getvalue(), encoding="utf-8")
    course.nbgrader_config.Course.lms = {
        "roster": str(tmp_path / "roster.csv"),
        "canvas": {"assignments": {AID: {"id": 7001, "name": "+Lección 4"}}},
    }
    for path in (EXPORTERS["csv"](course, AID), EXPORTERS["canvas"](course, AID)):
        cells = [cell for row in csv.reader(io.StringIO(path.read_text())) for cell in row]
        risky = [c for c in cells if c.startswith(FORMULA_STARTS) and c != "    Points Possible"]
        assert not risky, (path.name, risky)
    text = EXPORTERS["csv"](course, AID).read_text()
    assert "'=cmd|' /C calc'!A0" in text
    canvas = EXPORTERS["canvas"](course, AID).read_text()
    assert "'=HYPERLINK(x)" in canvas and "'@SUM(1)" in canvas and "'+Lección 4" in canvas
    assert safe_cell(-1.5) == -1.5 and safe_cell("ana") == "ana"


def test_a_formgrader_override_reaches_the_feedback_page_and_the_report(course):
    """The grades layer: ben's step-size cell was raised to 1/1 in formgrader; his page and the
    class report say 6/8 (and that the instructor reviewed it), as every export does."""
    from autograder.feedback import write_feedback
    from autograder.grades import reviewed_results
    from autograder.report import write_report

    results = reviewed_results(course, AID)
    ben = results.students["ben"]
    assert ben.score == 6 and ben.cells["test_step_size"].reviewed
    assert not ben.cells["test_steps_lr_003"].reviewed
    page = next(p for p in write_feedback(course, AID, reference=False) if "/ben/" in str(p))
    html = page.read_text(encoding="utf-8")
    assert "revisada por el profesor" in html
    assert re.search(r'id="score">\s*6 / 8', html), html[:2000]
    report = write_report(course, AID).read_text(encoding="utf-8")
    assert re.search(r"ben.{0,400}?6/8|ben.{0,400}?6 / 8", report, re.S)


# --- what the exports say: notes in the report, the course's language on the terminal ------------


def _english_texts(*message_ids: str) -> list[str]:
    from autograder.messages import render

    return [render(m, {}, "en") for m in message_ids]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_canvas_skip_reasons_are_notes_in_the_course_language(course, caplog):
    course.language = "es"
    with caplog.at_level("WARNING", logger="autograder"):
        path = export_canvas(course, AID)
    report = json.loads(path.with_name(path.name + ".report.json").read_text())
    items = {s["student"]: s for s in report["skipped"]}
    assert items["anon_Xy12z"]["note"] == {"id": "lms.export.canvas.anonymous", "params": {}}
    assert items["zoe"]["note"]["id"] == "lms.export.canvas.no_id"
    english = _english_texts("lms.export.canvas.anonymous", "lms.export.canvas.no_id")
    for item in items.values():  # the English text beside the note, for JSON readers
        assert item["reason"] == Note.from_dict(item["note"]).text("en")
        spanish = Note.from_dict(item["note"]).text("es")
        assert spanish and not any(e in spanish for e in english)
        assert "anonymous" not in spanish and "name only" not in spanish
    assert "anónima" in Note.from_dict(items["anon_Xy12z"]["note"]).text("es")
    logged = _warnings(caplog)
    assert len(logged) == 2, logged
    assert all(line.startswith("exportación a Canvas: ") for line in logged), logged
    assert any("anon_Xy12z no se ha escrito: entrega anónima" in line for line in logged)
    assert not any(e in line for line in logged for e in english), logged
    caplog.clear()
    course.language = "en"
    with caplog.at_level("WARNING", logger="autograder"):
        export_canvas(course, AID)
    assert "canvas export: zoe not written: " + english[1] in _warnings(caplog)


def test_moodle_skip_reasons_and_notes_are_notes_in_the_course_language(course, tmp_path, caplog):
    course.language = "es"
    moodle_placements(course, tmp_path)
    keep = [i for i, title in enumerate(EN_HEADER) if title != "Maximum grade"]
    data, _ = build_worksheet(
        [EN_HEADER[i] for i in keep], [[r[i] for i in keep] for r in worksheet_rows("8.00")]
    )
    worksheet = tmp_path / "w.csv"
    worksheet.write_bytes(data)
    with caplog.at_level("WARNING", logger="autograder"):
        out = export_moodle(course, AID, worksheet=worksheet)
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    items = {s["student"]: s for s in report["skipped"]}
    assert set(items) == {"zoe", "iris", "anon_Xy12z"}
    assert items["iris"]["note"]["id"] == "lms.export.moodle.not_in_worksheet"
    assert items["zoe"]["note"]["id"] == "lms.export.moodle.locked"
    assert report["notes_as_data"] == [{"id": "lms.export.moodle.no_max_grade", "params": {}}]
    english = _english_texts(
        "lms.export.moodle.not_in_worksheet",
        "lms.export.moodle.locked",
        "lms.export.moodle.no_max_grade",
    )
    assert report["notes"] == [english[2]]  # the English text too, for JSON readers
    notes = [Note.from_dict(s["note"]) for s in report["skipped"]]
    notes += [Note.from_dict(n) for n in report["notes_as_data"]]
    for item in report["skipped"]:
        assert item["reason"] == Note.from_dict(item["note"]).text("en")
    for note in notes:
        spanish = note.text("es")
        assert spanish and not any(e in spanish for e in english), spanish
        assert "worksheet" not in spanish and "Maximum grade" not in spanish
    assert "Calificación máxima" in notes[-1].text("es")
    logged = _warnings(caplog)
    assert len(logged) == 4, logged
    assert all(line.startswith("exportación a Moodle: ") for line in logged), logged
    assert any("iris: no está en la hoja de calificaciones" in line for line in logged), logged
    assert not any(e in line for line in logged for e in english), logged


def test_moodle_several_rows_of_one_student_is_a_note():
    from autograder.grades import GradeRow
    from autograder.lms.moodle import fill_worksheet

    data, _ = build_worksheet(EN_HEADER, worksheet_rows("8.00")[:2])
    row = GradeRow("ana", AID, 8, 8, "graded", None)
    result = fill_worksheet(data, [row], lambda records, columns: {1: "ana", 2: "ana"})
    (item,) = result.skipped
    assert item["note"] == {"id": "lms.export.moodle.several_rows", "params": {"count": 2}}
    assert item["reason"] == "2 worksheet rows belong to this student"
    assert Note.from_dict(item["note"]).text("es").startswith("2 filas de la hoja")


def test_export_sources_hold_no_english_reasons_and_only_known_ids():
    """The exporters' reasons and notes are catalogue ids (``lms_export.toml``): no English
    ``"reason"`` literal is left, and every id they name is defined."""
    import autograder.lms.canvas as canvas_module
    import autograder.lms.moodle as moodle_module
    from autograder.messages import catalogue

    known = set(catalogue())
    for module in (canvas_module, moodle_module):
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert not re.search(r"""["']reason["']\s*:\s*[rbuf]*["']""", source), module.__name__
        assert not re.search(r"""notes\.append\(\s*[rbuf]*["']""", source), module.__name__
        used = set(re.findall(r'(?:Note|LmsError|StageError)\(\s*"([a-z0-9_.]+)"', source))
        assert any(u.startswith("lms.export.") for u in used), module.__name__
        assert used <= known, sorted(used - known)


# --- grading and feedback warnings on the instructor's terminal ---------------------------------


def test_grading_and_feedback_warnings_are_in_the_course_language(course, caplog, monkeypatch):
    from autograder import batch, feedback, reference
    from autograder.lms.collect import collect_report_path
    from autograder.results import StageError

    course.language = "es"
    path = collect_report_path(course, AID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json", encoding="utf-8")

    def no_reference(*args, **kwargs):
        raise StageError("lms.moodle.empty")

    monkeypatch.setattr(reference, "grade_reference", no_reference)
    with caplog.at_level("WARNING", logger="autograder"):
        assert batch._placements(course, AID) == {}
        assert feedback.reference_trainings(course, AID) == {}
        feedback.write_feedback(course, AID, students=["nadie\x1b[31m"], reference=False)
    logged = _warnings(caplog)
    assert f"el informe de recogida de {AID} no se puede leer" in logged[0], logged
    assert logged[1] == (
        f"no hay curvas de referencia para {AID}: La hoja de calificaciones está vacía."
    ), logged
    assert logged[2] == (  # the student id as given, cleaned of its escape sequence
        f"no hay resultados de nadie en {AID}: no se ha escrito su retroalimentación"
    ), logged


def test_regrade_and_refused_folder_warnings_are_in_the_course_language(course, caplog):
    from autograder.batch import grade_class, regrade_class

    course.language = "es"
    (course.submitted_dir / "bad name" / AID).mkdir(parents=True)
    with caplog.at_level("WARNING", logger="autograder"):
        regrade_class(course, AID)  # graded results, but no artifacts on disk
        grade_class(course, AID, launcher=object(), progress=False)  # nothing to run
    logged = _warnings(caplog)
    assert "ana: no hay artefactos legibles; califícalo de nuevo con --force" in logged, logged
    # the reason is the note ``scan_submissions`` gives, in the same language
    refused = [
        line for line in logged if line.startswith("carpeta de entrega rechazada 'bad name'")
    ]
    assert refused and "valid student id" not in refused[0], refused
    assert not any("no readable artifacts" in line or "refused" in line for line in logged)
