"""Collect from LMS archives: realistic Canvas and Moodle downloads, built here, laid out in
nbgrader's ``submitted/`` layout; every file either lands with its student or is reported."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.collect import find_submissions
from autograder.lms import LmsError, collect_archive, load_placements
from autograder.lms.canvas import parse_canvas_name, parse_canvas_names
from autograder.lms.moodle import parse_moodle_path
from autograder.lms.roster import load_roster
from tests.conftest import make_course

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"


def notebook_bytes(owner: str) -> bytes:
    """A small notebook that says whose it is (to check it lands in the right folder)."""
    nb = new_notebook(cells=[new_code_cell(f"owner = {owner!r}")], metadata={"owner": owner})
    return nbformat.writes(nb).encode()


def owner_of(path: Path) -> str:
    return nbformat.read(path, as_version=4).metadata["owner"]


def write_zip(path: Path, members: dict[str, bytes], utf8_flag: bool = True) -> Path:
    placeholders = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for index, (name, data) in enumerate(members.items()):
            if not utf8_flag:
                # as some zip writers do: UTF-8 bytes without the UTF-8 flag. Python sets the
                # flag for non-ASCII names, so write an ASCII stand-in and patch the bytes.
                raw = name.encode()
                stand_in = f"~{index}~".encode().ljust(len(raw), b"Q")
                placeholders[stand_in] = raw
                name = stand_in.decode()
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 20, 10, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    if placeholders:
        blob = path.read_bytes()
        for stand_in, raw in placeholders.items():
            blob = blob.replace(stand_in, raw)
        path.write_bytes(blob)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def course(tmp_path):
    return make_course(tmp_path / "state")


# --- Canvas -----------------------------------------------------------------------------------


CANVAS_ROSTER = """student_id,name,sortable_name,canvas_id,sis_login_id,section,lti_user_id
ana,Ana García,"García, Ana",1001,ana.garcia,Grupo A,u-1001
ben,Ben López,"López, Ben",1002,ben.lopez,Grupo A,u-1002
carla,Carla O'Neil,"O'Neil, Carla",1003,carla.oneil,Grupo B,u-1003
dani,Dani Ruiz,"Ruiz, Dani",1004,,Grupo B,
eve,Eve Sanz,"Sanz, Eve",1005,,Grupo B,
frank,Frank Toledo,"Toledo, Frank",1006,,Grupo A,
hugo,Hugo Vidal,"Vidal, Hugo",1008,,Grupo A,
iris,Iris Ibáñez,"Ibáñez, Iris",,,Grupo B,
"""


def canvas_archive(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A "Download submissions" zip as Canvas builds it, and who owns each placed notebook."""
    members = {
        # on time, plain
        "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("ana"),
        # late, and a resubmission: Canvas appended -2 to the file name
        "lópezben_LATE_1002_502_learning_rate-2.ipynb": notebook_bytes("ben"),
        # two attachments in one submission: the newest (higher attachment id) wins
        "oneilcarla_1003_503_learning_rate.ipynb": notebook_bytes("carla-old"),
        "oneilcarla_1003_603_learning_rate-1.ipynb": notebook_bytes("carla"),
        # anonymous grading, late
        "LATE_anon_Xy12z_504_learning_rate.ipynb": notebook_bytes("anon"),
        # no notebook at all: a PDF; a text entry
        "ruizdani_1004_505_learning_rate.pdf": b"%PDF-1.4 not a notebook",
        "sanzeve_1005_text.html": b"<html>my answers</html>",
        # renamed by the student: the only notebook, taken as learning_rate.ipynb
        "toledofrank_1006_506_Copia de learning_rate (1).ipynb": notebook_bytes("frank"),
        # not in the roster
        "nadiegina_9999_507_learning_rate.ipynb": notebook_bytes("gina"),
        # two notebooks, neither is the assignment's: ambiguous
        "vidalhugo_1008_508_a.ipynb": notebook_bytes("hugo-a"),
        "vidalhugo_1008_509_b.ipynb": notebook_bytes("hugo-b"),
        # the roster has no Canvas id for Iris: matched by her (unique) name
        "ibáñeziris_1009_510_learning_rate.ipynb": notebook_bytes("iris"),
        # litter and strangers
        "__MACOSX/._garcíaana_1001_501_learning_rate.ipynb": b"\x00\x05\x16\x07",
        "README.txt": b"downloaded from Canvas",
    }
    owners = {
        "ana": "ana",
        "ben": "ben",
        "carla": "carla",
        "anon_Xy12z": "anon",
        "frank": "frank",
        "iris": "iris",
    }
    return write_zip(tmp_path / "submissions.zip", members), owners


def test_canvas_names_are_parsed_like_canvas_writes_them():
    name = parse_canvas_name("lópezben_LATE_1002_502_learning_rate-2.ipynb")
    assert (name.name, name.late, name.user_id, name.attachment_id, name.filename) == (
        "lópezben",
        True,
        "1002",
        "502",
        "learning_rate-2.ipynb",
    )
    anon = parse_canvas_name("LATE_anon_Xy12z_504_my_work_v2.ipynb")
    assert (anon.lms_id, anon.late, anon.attachment_id, anon.filename) == (
        "anon_Xy12z",
        True,
        "504",
        "my_work_v2.ipynb",
    )
    text = parse_canvas_name("sanzeve_1005_text.html")
    assert (text.user_id, text.attachment_id, text.filename) == ("1005", None, "text.html")
    # names keep underscores and digits; the roster's ids settle an ambiguous split
    assert parse_canvas_name("o_neil_12_34_x.ipynb").name == "o_neil"
    assert len(parse_canvas_names("smith_2_123_456_f.ipynb")) == 2
    assert parse_canvas_name("smith_2_123_456_f.ipynb", {"123"}).user_id == "123"
    assert parse_canvas_name("README.txt") is None
    assert parse_canvas_name("Doejane_1_2_x.ipynb") is None  # Canvas lower-cases names


def test_canvas_archive_with_roster_every_student_lands_where_they_belong(course, tmp_path):
    archive, owners = canvas_archive(tmp_path)
    roster = write_csv(tmp_path / "roster.csv", CANVAS_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)

    placed = report.by_student()
    assert sorted(placed) == sorted(owners)
    for student, owner in owners.items():
        path = course.submitted_dir / student / AID / NOTEBOOK
        assert owner_of(path) == owner, student
    assert placed["ben"].late and placed["anon_Xy12z"].late and not placed["ana"].late
    assert placed["ben"].renamed_from == "learning_rate-2.ipynb"
    assert placed["frank"].renamed_from == "Copia de learning_rate (1).ipynb"
    assert placed["iris"].matched_by == "roster:name"
    assert placed["ana"].matched_by == "roster:canvas_id"
    assert json.loads((course.submitted_dir / "ben" / AID / "lms.json").read_text())["late"]

    problems = {(p.kind, p.source) for p in report.problems}
    assert problems == {
        ("duplicate", "oneilcarla_1003_503_learning_rate.ipynb"),
        ("not_notebook", "ruizdani_1004_505_learning_rate.pdf"),
        ("not_notebook", "sanzeve_1005_text.html"),
        ("unmatched", "nadiegina_9999_507_learning_rate.ipynb"),
        ("ambiguous", "vidalhugo_1008_508_a.ipynb"),
        ("ambiguous", "vidalhugo_1008_509_b.ipynb"),
        ("unrecognized", "README.txt"),
    }
    # nothing is dropped: what was not placed is kept for the instructor
    for problem in report.problems:
        assert problem.kept_at and Path(problem.kept_at).is_file(), problem
    gina = next(p for p in report.problems if p.kind == "unmatched")
    assert owner_of(Path(gina.kept_at)) == "gina"
    assert "9999" in gina.detail and "not in the roster" in gina.detail

    # exactly what `autograder grade` will grade
    found = find_submissions(course.submitted_dir, AID, NOTEBOOK)
    assert sorted(s.student for s in found) == sorted(owners)
    assert all(s.path is not None for s in found)

    summary = report.summary()
    assert "collected 6 submission(s)" in summary and "unmatched" in summary
    saved = load_placements(course, AID)
    assert saved["ana"]["lms_id"] == "1001" and saved["ben"]["late"] is True


def test_canvas_archive_without_roster_uses_canvas_ids(course, tmp_path):
    archive, _ = canvas_archive(tmp_path)
    report = collect_archive(course, AID, archive, "canvas")
    placed = report.by_student()
    assert {"1001", "1002", "1003", "1006", "9999", "1009", "anon_Xy12z"} == set(placed)
    assert owner_of(course.submitted_dir / "1003" / AID / NOTEBOOK) == "carla"
    assert placed["1001"].matched_by == "Canvas user id (no roster)"


def test_canvas_gradebook_export_works_as_a_roster(course, tmp_path):
    gradebook = write_csv(
        tmp_path / "gradebook.csv",
        (
            "Student,ID,SIS User ID,SIS Login ID,Section,Lección 4 (7001)\n"
            "    Points Possible,,,,,8.00\n"
            '"García, Ana",1001,S1,ana.garcia,Grupo A,\n'
            '"López, Ben",1002,S2,ben.lopez,Grupo A,\n'
            '"Student, Test",1999,,,Grupo A,\n'
        ),
    )
    roster = load_roster(gradebook)
    assert {p.student_id for p in roster.people} == {"ana.garcia", "ben.lopez"}
    archive = write_zip(
        tmp_path / "s.zip",
        {
            "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("ana"),
            "lópezben_1002_502_learning_rate.ipynb": notebook_bytes("ben"),
        },
    )
    report = collect_archive(course, AID, archive, "canvas", roster=gradebook)
    assert set(report.by_student()) == {"ana.garcia", "ben.lopez"} and report.ok


def test_recollect_replaces_old_submission_and_keeps_earlier_placements(course, tmp_path):
    first = write_zip(
        tmp_path / "first.zip",
        {
            "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("ana-v1"),
            "lópezben_1002_502_learning_rate.ipynb": notebook_bytes("ben"),
        },
    )
    collect_archive(course, AID, first, "canvas")
    stale = course.submitted_dir / "1001" / AID / "stale.txt"
    stale.write_text("left over")
    second = write_zip(
        tmp_path / "second.zip",
        {"garcíaana_LATE_1001_601_learning_rate-1.ipynb": notebook_bytes("ana-v2")},
    )
    collect_archive(course, AID, second, "canvas")
    assert owner_of(course.submitted_dir / "1001" / AID / NOTEBOOK) == "ana-v2"
    assert not stale.exists()
    assert owner_of(course.submitted_dir / "1002" / AID / NOTEBOOK) == "ben"
    saved = load_placements(course, AID)
    assert saved["1001"]["late"] and saved["1002"]["attachment_id"] == "502"


def test_dry_run_writes_nothing(course, tmp_path):
    archive, _ = canvas_archive(tmp_path)
    report = collect_archive(course, AID, archive, "canvas", dry_run=True)
    assert report.placed and report.problems
    assert not course.submitted_dir.exists()
    assert not (course.state_dir / "lms").exists()


def test_duplicate_ids_in_roster_and_two_users_for_one_student_are_refused(course, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", "student_id,canvas_id\nana,1001\nben,1001\n")
    with pytest.raises(LmsError, match="1001"):
        load_roster(bad)
    invalid = write_csv(tmp_path / "invalid.csv", "student_id,canvas_id\n../etc,1001\n")
    with pytest.raises(LmsError, match="not valid"):
        load_roster(invalid)
    # two Canvas users matched (by name) to the same student: neither is placed
    roster = write_csv(tmp_path / "r.csv", 'student_id,sortable_name\nana,"García, Ana"\n')
    archive = write_zip(
        tmp_path / "s.zip",
        {
            "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("a1"),
            "garcíaana_1077_502_learning_rate.ipynb": notebook_bytes("a2"),
        },
    )
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert not report.placed
    assert [p.kind for p in report.problems] == ["duplicate", "duplicate"]


def test_zip_names_without_utf8_flag_are_repaired(course, tmp_path):
    archive = write_zip(
        tmp_path / "s.zip",
        {"ibáñeziris_1009_510_learning_rate.ipynb": notebook_bytes("iris")},
        utf8_flag=False,
    )
    roster = write_csv(tmp_path / "r.csv", "student_id,name\niris,Iris Ibáñez\n")
    with zipfile.ZipFile(archive) as zf:
        assert not zf.infolist()[0].flag_bits & 0x800
        assert zf.namelist()[0] != "ibáñeziris_1009_510_learning_rate.ipynb"  # mojibake
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert report.by_student()["iris"].name == "ibáñeziris"


def test_not_a_zip_and_unknown_lms(course, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(LmsError, match="not a zip"):
        collect_archive(course, AID, junk, "canvas")
    with pytest.raises(LmsError, match="Unknown LMS"):
        collect_archive(course, AID, junk, "blackboard")


def test_oversized_notebook_is_reported_not_extracted(course, tmp_path, monkeypatch):
    import autograder.lms as lms

    monkeypatch.setattr(lms, "MAX_MEMBER_BYTES", 1000)
    archive = write_zip(
        tmp_path / "s.zip", {"garcíaana_1001_501_learning_rate.ipynb": b"{" + b" " * 5000 + b"}"}
    )
    report = collect_archive(course, AID, archive, "canvas")
    assert not report.placed and report.problems[0].kind == "too_large"
    assert not course.submitted_dir.exists()


# --- Moodle -----------------------------------------------------------------------------------


MOODLE_ROSTER = """student_id,name,email
ana,Ana García López,ana@uni.es
ben,Benito Pérez,ben@uni.es
carla,Carla Núñez,carla@uni.es
dani,Dani Ruiz,dani@uni.es
"""


def moodle_members(version: str) -> tuple[dict[str, bytes], dict[str, str]]:
    trail = "_" if version == "3" else ""
    folder = lambda name, pid: f"{name}_{pid}_assignsubmission_file{trail}"  # noqa: E731
    members = {
        f"{folder('Ana García López', 101)}/learning_rate.ipynb": notebook_bytes("ana"),
        # a notebook in a sub-folder, with a browser copy suffix
        f"{folder('Benito Pérez', 102)}/entrega/learning_rate (1).ipynb": notebook_bytes("ben"),
        # the notebook and a PDF export of it
        f"{folder('Carla Núñez', 103)}/learning_rate.ipynb": notebook_bytes("carla"),
        f"{folder('Carla Núñez', 103)}/learning_rate.pdf": b"%PDF-1.4",
        # online text instead of a file
        f"Dani Ruiz_104_assignsubmission_onlinetext{trail}/onlinetext.html": b"<p>hola</p>",
        # not in the roster
        f"{folder('Zoe Extra', 199)}/learning_rate.ipynb": notebook_bytes("zoe"),
    }
    return members, {"ana": "ana", "ben": "ben", "carla": "carla"}


@pytest.mark.parametrize("version", ["3", "4"])
def test_moodle_archive_every_student_lands_where_they_belong(course, tmp_path, version):
    members, owners = moodle_members(version)
    archive = write_zip(tmp_path / f"moodle{version}.zip", members)
    roster = write_csv(tmp_path / "roster.csv", MOODLE_ROSTER)
    report = collect_archive(course, AID, archive, "moodle", roster=roster)
    placed = report.by_student()
    assert sorted(placed) == sorted(owners)
    for student, owner in owners.items():
        assert owner_of(course.submitted_dir / student / AID / NOTEBOOK) == owner
    assert placed["ana"].lms_id == "101" and placed["ana"].matched_by == "roster:name"
    assert placed["ben"].renamed_from == "learning_rate (1).ipynb"
    kinds = sorted((p.kind, p.lms_id) for p in report.problems)
    assert kinds == [("not_notebook", "103"), ("not_notebook", "104"), ("unmatched", "199")]
    found = find_submissions(course.submitted_dir, AID, NOTEBOOK)
    assert sorted(s.student for s in found) == sorted(owners)


def test_moodle_paths_3x_4x_flat_and_blind():
    p3 = parse_moodle_path("Ana García López_101_assignsubmission_file_/learning_rate.ipynb")
    p4 = parse_moodle_path("Ana García López_101_assignsubmission_file/learning_rate.ipynb")
    flat = parse_moodle_path("Ana García López_101_assignsubmission_file_learning_rate.ipynb")
    blind = parse_moodle_path("Participant_205_assignsubmission_file/sub/x.ipynb")
    assert (p3.name, p3.participant_id, p3.layout) == ("Ana García López", "101", "3.x folders")
    assert (p4.participant_id, p4.layout) == ("101", "4.x folders")
    assert (flat.filename, flat.layout) == ("learning_rate.ipynb", "flat")
    assert (blind.name, blind.participant_id, blind.filename) == ("Participant", "205", "x.ipynb")
    assert parse_moodle_path("notes/readme.txt") is None


def test_moodle_worksheet_as_roster_identifies_blind_marked_students(course, tmp_path):
    worksheet = write_csv(
        tmp_path / "worksheet.csv",
        (
            "Identifier,Full name,Email address,Status,Grade,Maximum grade\n"
            '"Participant 205",Ana García López,ana@uni.es,Submitted,,8.00\n'
            '"Participant 206",Benito Pérez,ben@uni.es,Submitted,,8.00\n'
        ),
    )
    archive = write_zip(
        tmp_path / "blind.zip",
        {
            "Participant_205_assignsubmission_file/learning_rate.ipynb": notebook_bytes("ana"),
            "Participant_206_assignsubmission_file_/learning_rate.ipynb": notebook_bytes("ben"),
            "Participant_207_assignsubmission_file/learning_rate.ipynb": notebook_bytes("who"),
        },
    )
    report = collect_archive(course, AID, archive, "moodle", roster=worksheet)
    placed = report.by_student()
    assert set(placed) == {"ana@uni.es", "ben@uni.es"}
    assert owner_of(course.submitted_dir / "ana@uni.es" / AID / NOTEBOOK) == "ana"
    assert [(p.kind, p.lms_id) for p in report.problems] == [("unmatched", "207")]
    # blind marking without a way to identify: the name "Participant" matches nobody
    plain = write_csv(tmp_path / "r.csv", MOODLE_ROSTER)
    report = collect_archive(course, AID, archive, "moodle", roster=plain)
    assert not report.placed and {p.kind for p in report.problems} == {"unmatched"}


def test_moodle_without_roster_uses_participant_ids(course, tmp_path):
    members, _ = moodle_members("4")
    report = collect_archive(course, AID, write_zip(tmp_path / "m.zip", members), "moodle")
    assert set(report.by_student()) == {"101", "102", "103", "199"}
