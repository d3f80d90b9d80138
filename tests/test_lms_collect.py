"""Collect from LMS archives: realistic Canvas and Moodle downloads, built here, laid out in
nbgrader's ``submitted/`` layout; every file either lands with its student or is reported."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.collect import find_submissions
from autograder.lms.canvas import CanvasName, parse_canvas_name, parse_canvas_names
from autograder.lms.collect import collect_archive, load_placements
from autograder.lms.common import LmsError
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


def write_zip(
    path: Path, members: dict[str, bytes], utf8_flag: bool = True, symlinks: frozenset = frozenset()
) -> Path:
    """A zip of ``members``; those named in ``symlinks`` are stored as symbolic links (their
    data is the link's target), as ``zip -y`` stores them."""
    placeholders = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for index, (name, data) in enumerate(members.items()):
            link = name in symlinks
            if not utf8_flag:
                # as some zip writers do: UTF-8 bytes without the UTF-8 flag. Python sets the
                # flag for non-ASCII names, so write an ASCII stand-in and patch the bytes.
                raw = name.encode()
                stand_in = f"~{index}~".encode().ljust(len(raw), b"Q")
                placeholders[stand_in] = raw
                name = stand_in.decode()
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 20, 10, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if link:
                info.create_system = 3  # Unix
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
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
        # the roster has no Canvas id for Iris: a name alone never decides (reported, with
        # the id to add to her row)
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
    # names keep underscores; the first all-digit part is the user id (Canvas's own rule),
    # so the file name the student chose can never move the ids, whatever the roster holds
    assert parse_canvas_name("o_neil_12_34_x.ipynb").name == "o_neil"
    assert parse_canvas_names("smith_2_123_456_f.ipynb") == [
        CanvasName("smith", False, "2", None, "123", "456_f.ipynb")
    ]
    assert parse_canvas_name("smith_2_123_456_f.ipynb", {"123"}).user_id == "2"
    assert parse_canvas_name("x_111_99999_learning_rate.ipynb", {"111"}).user_id == "111"
    assert parse_canvas_name("zed_9_7_x_111_99999_lr.ipynb", {"111"}).user_id == "9"
    assert parse_canvas_name("README.txt") is None
    assert parse_canvas_name("Doejane_1_2_x.ipynb") is None  # Canvas lower-cases names
    assert parse_canvas_name("doe\njane_1_2_x.ipynb") is None  # and keeps only [[:word:]]
    assert parse_canvas_name("1001_501_x.ipynb") is None  # a user id always follows a name
    # marks are word characters to Canvas (Ruby), not to Python's \w
    assert parse_canvas_name("s\u0301a_1_2_x.ipynb").name == "s\u0301a"
    # resubmissions: Canvas renames a re-uploaded file "name-N.ext"
    assert parse_canvas_name("ana_1_640_learning_rate-2.ipynb").resubmission == 2
    assert parse_canvas_name("ana_1_640_learning_rate.ipynb").resubmission == 0
    # a name that is literally "anon": named if the roster knows the id, else anonymous
    assert parse_canvas_name("anon_1001_5_x.ipynb", {"1001"}).user_id == "1001"
    assert parse_canvas_name("anon_1001_5_x.ipynb", set()).anon_id == "anon_1001"


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
    assert placed["ana"].matched_by == "roster:canvas_id"
    assert json.loads((course.submitted_dir / "ben" / AID / "lms.json").read_text())["late"]

    problems = {(p.kind, p.source) for p in report.problems}
    assert problems == {
        ("duplicate", "oneilcarla_1003_503_learning_rate.ipynb"),
        ("not_notebook", "ruizdani_1004_505_learning_rate.pdf"),
        ("not_notebook", "sanzeve_1005_text.html"),
        ("unmatched", "nadiegina_9999_507_learning_rate.ipynb"),
        ("unmatched", "ibáñeziris_1009_510_learning_rate.ipynb"),
        ("ambiguous", "vidalhugo_1008_508_a.ipynb"),
        ("ambiguous", "vidalhugo_1008_509_b.ipynb"),
        ("unrecognized", "README.txt"),
    }
    # nothing is dropped: what was not placed is kept for the instructor
    for problem in report.problems:
        assert problem.kept_at and Path(problem.kept_at).is_file(), problem
    unmatched = {p.lms_id: p for p in report.problems if p.kind == "unmatched"}
    gina, iris = unmatched["9999"], unmatched["1009"]
    assert owner_of(Path(gina.kept_at)) == "gina"
    assert "9999" in gina.detail and "not in the roster" in gina.detail
    assert "add canvas_id 1009" in iris.detail and "iris" in iris.detail

    # exactly what `autograder grade` will grade
    found = find_submissions(course.submitted_dir, AID, NOTEBOOK)
    assert sorted(s.student for s in found) == sorted(owners)
    assert all(s.path is not None for s in found)

    summary = report.summary()
    assert "collected 5 submission(s)" in summary and "unmatched" in summary
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
    # two Canvas users with the name of a student whose row has no canvas_id: a name alone
    # never decides, so neither is placed, and both reasons say what to add
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
    assert [p.kind for p in report.problems] == ["unmatched", "unmatched"]
    assert all("no canvas_id" in p.detail for p in report.problems)


def test_zip_names_without_utf8_flag_are_repaired(course, tmp_path):
    archive = write_zip(
        tmp_path / "s.zip",
        {"ibáñeziris_1009_510_learning_rate.ipynb": notebook_bytes("iris")},
        utf8_flag=False,
    )
    roster = write_csv(tmp_path / "r.csv", "student_id,name,canvas_id\niris,Iris Ibáñez,1009\n")
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
    import autograder.lms.collect as lms

    monkeypatch.setattr(lms, "MAX_MEMBER_BYTES", 1000)
    archive = write_zip(
        tmp_path / "s.zip", {"garcíaana_1001_501_learning_rate.ipynb": b"{" + b" " * 5000 + b"}"}
    )
    report = collect_archive(course, AID, archive, "canvas")
    assert not report.placed and report.problems[0].kind == "too_large"
    assert not course.submitted_dir.exists()


# --- impostors: a file is a student's only by the structure the LMS writes, confirmed by the
# roster; anything else goes to unplaced/ with a reason and never takes a student's place ------

IMPOSTOR_ROSTER = """student_id,sortable_name,canvas_id
ana,"García, Ana",1001
ben,"López, Ben",1002
s111,"Once, Uno",111
"""
IDS_ONLY_ROSTER = "student_id,canvas_id\nana,1001\nben,1002\ns111,111\n"


def unplaced(report, kind: str | None = None) -> dict[str, object]:
    """source -> problem, for the problems of ``kind`` (all if None)."""
    return {p.source: p for p in report.problems if kind is None or p.kind == kind}


def assert_graded_as(course, student: str, owner: str) -> None:
    found = {s.student: s for s in find_submissions(course.submitted_dir, AID, NOTEBOOK)}
    assert found[student].path is not None
    assert owner_of(found[student].path) == owner


@pytest.mark.parametrize("roster_text", [IMPOSTOR_ROSTER, IDS_ONLY_ROSTER])
def test_canvas_quoted_impostor_is_never_graded_as_student_111(course, tmp_path, roster_text):
    # a Canvas user outside the roster uploads "x_111_99999_learning_rate.ipynb": Canvas
    # writes their own name and ids first, and the parse reads those, from the start
    impostor = "mallorymal_9999_700_x_111_99999_learning_rate.ipynb"
    archive = write_zip(
        tmp_path / "s.zip",
        {
            "onceuno_111_501_learning_rate.ipynb": notebook_bytes("uno"),
            impostor: notebook_bytes("mallory"),
        },
    )
    roster = write_csv(tmp_path / "r.csv", roster_text)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert set(report.by_student()) == {"s111"}
    assert report.by_student()["s111"].source == "onceuno_111_501_learning_rate.ipynb"
    assert_graded_as(course, "s111", "uno")
    problem = unplaced(report)[impostor]
    assert problem.kind == "unmatched" and problem.lms_id == "9999"
    assert "Canvas user 9999" in problem.detail and "not in the roster" in problem.detail
    assert owner_of(Path(problem.kept_at)) == "mallory"


def test_canvas_files_imitating_another_students_structure_are_unplaced(course, tmp_path):
    members = {
        # the impostors come first and carry higher attachment ids: neither order nor
        # "newest wins" may let them in
        "lópezben_1001_99999_learning_rate.ipynb": notebook_bytes("ben-as-ana"),  # ana's id
        "x_1001_99998_learning_rate.ipynb": notebook_bytes("x-as-ana"),  # ana's id, no name
        "garcíaana_1002_99997_learning_rate.ipynb": notebook_bytes("ana-as-ben"),  # ben's id
        "nadie_4242_99996_learning_rate.ipynb": notebook_bytes("nadie"),  # id not in roster
        "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("ana"),
        "lópezben_1002_502_learning_rate.ipynb": notebook_bytes("ben"),
    }
    archive = write_zip(tmp_path / "s.zip", members)
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert set(report.by_student()) == {"ana", "ben"}
    assert_graded_as(course, "ana", "ana")
    assert_graded_as(course, "ben", "ben")
    problems = unplaced(report)
    assert set(problems) == set(members) - {
        "garcíaana_1001_501_learning_rate.ipynb",
        "lópezben_1002_502_learning_rate.ipynb",
    }
    assert all(p.kind == "unmatched" and p.kept_at for p in problems.values())
    imitation = problems["lópezben_1001_99999_learning_rate.ipynb"].detail
    assert "imitates" in imitation and "ana" in imitation and "'garcíaana'" in imitation
    assert "not in the roster" in problems["nadie_4242_99996_learning_rate.ipynb"].detail
    assert owner_of(Path(problems["x_1001_99998_learning_rate.ipynb"].kept_at)) == "x-as-ana"


def test_canvas_conflicting_names_without_a_roster_name_are_reported_not_guessed(course, tmp_path):
    # a zip no Canvas writes (one user, two names) and a roster with ids only: nobody can say
    # which file is the student's, so neither is graded and both are reported
    archive = write_zip(
        tmp_path / "s.zip",
        {
            "onceuno_111_501_learning_rate.ipynb": notebook_bytes("uno"),
            "x_111_99999_learning_rate.ipynb": notebook_bytes("x"),
        },
    )
    roster = write_csv(tmp_path / "r.csv", IDS_ONLY_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert not report.placed and not course.submitted_dir.exists()
    assert {p.kind for p in report.problems} == {"unmatched"}
    assert all("different names" in p.detail for p in report.problems)


def test_canvas_crafted_name_holding_another_prefix_is_not_taken_as_renamed(course, tmp_path):
    # a user who may edit their name sets it to "garcíaana_1001._9._x": Canvas joins
    # "_<digits>_" before it removes punctuation, so their file starts with Ana's prefix and
    # carries their own (x_777_800_) after it. Ana did not submit: it is not taken as hers.
    crafted = "garcíaana_1001_9_x_777_800_learning_rate.ipynb"
    archive = write_zip(tmp_path / "s.zip", {crafted: notebook_bytes("crafted")})
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert not report.placed and not course.submitted_dir.exists()
    problem = unplaced(report)[crafted]
    assert "another Canvas download name" in problem.detail and "by hand" in problem.detail
    # when Ana did submit, her notebook named as released is graded, the crafted one reported
    ana = "garcíaana_1001_501_learning_rate.ipynb"
    archive = write_zip(
        tmp_path / "s2.zip", {crafted: notebook_bytes("crafted"), ana: notebook_bytes("ana")}
    )
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert_graded_as(course, "ana", "ana")
    assert unplaced(report)[crafted].kind == "duplicate"


def test_canvas_resubmissions_newest_upload_wins_whatever_the_zip_order(course, tmp_path):
    members = {
        "garcíaana_LATE_1001_777_learning_rate-2.ipynb": notebook_bytes("ana-v3"),
        "garcíaana_LATE_1001_501_learning_rate.ipynb": notebook_bytes("ana-v1"),
        "garcíaana_LATE_1001_640_learning_rate-1.ipynb": notebook_bytes("ana-v2"),
    }
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    for order in (list(members), list(reversed(members))):
        archive = write_zip(tmp_path / "s.zip", {name: members[name] for name in order})
        report = collect_archive(course, AID, archive, "canvas", roster=roster)
        placed = report.by_student()["ana"]
        assert placed.attachment_id == "777" and placed.late
        assert_graded_as(course, "ana", "ana-v3")
        duplicates = unplaced(report, "duplicate")
        assert set(duplicates) == set(members) - {"garcíaana_LATE_1001_777_learning_rate-2.ipynb"}
        assert all("learning_rate-2.ipynb was used" in p.detail for p in duplicates.values())


def test_canvas_hostile_file_names_are_escaped_and_never_leave_their_place(course, tmp_path):
    renamed = "learning\n\x1b[2Jrate.ipynb"
    members = {
        # Ana's only notebook, with a newline and a terminal escape in its name: still hers
        f"garcíaana_1001_501_{renamed}": notebook_bytes("ana"),
        # Ben's only notebook is called "..ipynb": written under the released name only
        "lópezben_1002_502_..ipynb": notebook_bytes("ben"),
        # not Canvas's: a newline in the name part, a folder
        "garcía\nana_1001_503_learning_rate.ipynb": notebook_bytes("newline-name"),
        "lópezben_1002_504_sub/learning_rate.ipynb": notebook_bytes("folder"),
        # an outsider whose file name sets the terminal title
        "mallorymal_9999_700_\x1b]0;owned\x07learning_rate.ipynb": notebook_bytes("mallory"),
    }
    archive = write_zip(tmp_path / "s.zip", members)
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    placed = report.by_student()
    assert set(placed) == {"ana", "ben"}
    assert_graded_as(course, "ana", "ana")
    assert_graded_as(course, "ben", "ben")
    assert sorted(p.name for p in (course.submitted_dir / "ben" / AID).iterdir()) == [
        "learning_rate.ipynb",
        "lms.json",
    ]
    assert placed["ana"].renamed_from == "learning\\n\\x1b[2Jrate.ipynb"
    kinds = {p.source: p.kind for p in report.problems}
    assert kinds == {
        "garcía\\nana_1001_503_learning_rate.ipynb": "unrecognized",
        "lópezben_1002_504_sub/learning_rate.ipynb": "unrecognized",
        "mallorymal_9999_700_\\x1b]0;owned\\x07learning_rate.ipynb": "unmatched",
    }
    # what the instructor reads (the CLI prints the summary) has no raw control character
    summary = report.summary()
    assert all(line.isprintable() for line in summary.splitlines())
    assert "\\x1b]0;owned\\x07" in summary and "learning\\n\\x1b[2Jrate.ipynb" in summary
    for problem in report.problems:
        assert all(
            text is None or text.isprintable()
            for text in (problem.source, problem.detail, problem.name, problem.lms_id)
        )
        assert Path(problem.kept_at).parent == course.state_dir / "lms" / "unplaced" / AID


def test_zip_slip_and_symlink_members_are_refused_and_never_displace(course, tmp_path):
    real = "garcíaana_1001_501_learning_rate.ipynb"
    members = {
        "../../garcíaana_1001_999_learning_rate.ipynb": notebook_bytes("slip"),
        "/tmp/garcíaana_1001_998_learning_rate.ipynb": notebook_bytes("absolute"),
        "x/../garcíaana_1001_997_learning_rate.ipynb": notebook_bytes("dotdot"),
        "garcíaana_1001_996_learning_rate.ipynb": b"/etc/passwd",  # a symbolic link
        "C:garcíaana_1001_995_learning_rate.ipynb": notebook_bytes("drive"),
        real: notebook_bytes("ana"),
    }
    archive = write_zip(
        tmp_path / "s.zip", members, symlinks=frozenset({"garcíaana_1001_996_learning_rate.ipynb"})
    )
    before = set(tmp_path.parent.rglob("*"))
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    assert report.by_student()["ana"].source == real
    assert_graded_as(course, "ana", "ana")
    problems = unplaced(report)
    assert set(problems) == set(members) - {real}
    assert {p.kind for p in problems.values()} == {"unsafe"}
    assert "symbolic link" in problems["garcíaana_1001_996_learning_rate.ipynb"].detail
    # every file written is inside the course's state (nothing by the members' paths)
    written = {p for p in set(tmp_path.parent.rglob("*")) - before if p.is_file()}
    assert written and all(course.state_dir in p.parents or p == roster for p in written)
    # Moodle refuses the same members
    moodle = write_zip(
        tmp_path / "m.zip",
        {
            "Ana García López_101_assignsubmission_file/../../x.ipynb": notebook_bytes("slip"),
            "Ana García López_101_assignsubmission_file/learning_rate.ipynb": b"/etc/passwd",
        },
        symlinks=frozenset({"Ana García López_101_assignsubmission_file/learning_rate.ipynb"}),
    )
    report = collect_archive(course, AID, moodle, "moodle")
    assert not report.placed and [p.kind for p in report.problems] == ["unsafe", "unsafe"]


def test_student_ids_that_are_not_valid_are_refused(course, tmp_path):
    # without a roster the LMS id becomes the student id: it must fullmatch STUDENT_ID
    long_anon = "anon_" + "A" * 120
    archive = write_zip(
        tmp_path / "s.zip",
        {
            f"{long_anon}_501_learning_rate.ipynb": notebook_bytes("long"),
            "garcíaana_1001_502_learning_rate.ipynb": notebook_bytes("ana"),
        },
    )
    report = collect_archive(course, AID, archive, "canvas")
    assert set(report.by_student()) == {"1001"}
    assert (
        "not a valid student id" in unplaced(report)[f"{long_anon}_501_learning_rate.ipynb"].detail
    )
    moodle = write_zip(
        tmp_path / "m.zip",
        {f"Ana_{'1' * 150}_assignsubmission_file/learning_rate.ipynb": notebook_bytes("ana")},
    )
    report = collect_archive(course, AID, moodle, "moodle")
    assert not report.placed and "not a valid student id" in report.problems[0].detail
    assert not (course.submitted_dir / ("1" * 150)).exists()


MOODLE_WORKSHEET = (
    "Identifier,Full name,Email address,Status,Grade,Maximum grade\n"
    '"Participant 101",Ana García López,ana@uni.es,Submitted,,8.00\n'
    '"Participant 102",Benito Pérez,ben@uni.es,Submitted,,8.00\n'
)


def test_moodle_folders_imitating_another_participant_are_unplaced(course, tmp_path):
    ana = "Ana García López_101_assignsubmission_file/learning_rate.ipynb"
    ben = "Benito Pérez_102_assignsubmission_file_/learning_rate.ipynb"
    impostors = {
        # Zoe (not in the worksheet) nests a folder named like Ana's inside her own
        "Zoe Extra_199_assignsubmission_file/Ana García López_101_assignsubmission_file/"
        "learning_rate.ipynb": "zoe-nested",
        # a first folder no Moodle writes: names never hold "_" (Moodle makes them spaces)
        "Zoe_Extra_101_assignsubmission_file/learning_rate.ipynb": "zoe-underscore",
        "Zoe Extra_199_assignsubmission_file_Ana García López_101_assignsubmission_file/"
        "learning_rate.ipynb": "zoe-long-folder",
        # flat layout: the student's file name after Zoe's own prefix
        "Zoe Extra_199_assignsubmission_file_Ana García López_101_assignsubmission_file_"
        "learning_rate.ipynb": "zoe-flat",
        # Ana's participant id under Ben's name
        "Benito Pérez_101_assignsubmission_file/learning_rate.ipynb": "ben-as-ana",
    }
    members = {name: notebook_bytes(owner) for name, owner in impostors.items()}
    members |= {ana: notebook_bytes("ana"), ben: notebook_bytes("ben")}
    archive = write_zip(tmp_path / "m.zip", members)
    worksheet = write_csv(tmp_path / "worksheet.csv", MOODLE_WORKSHEET)
    report = collect_archive(course, AID, archive, "moodle", roster=worksheet)
    assert set(report.by_student()) == {"ana@uni.es", "ben@uni.es"}
    assert_graded_as(course, "ana@uni.es", "ana")
    assert_graded_as(course, "ben@uni.es", "ben")
    problems = unplaced(report)
    assert set(problems) == set(impostors)
    for source, owner in impostors.items():
        assert owner_of(Path(problems[source].kept_at)) == owner
    kinds = {impostors[s]: p.kind for s, p in problems.items()}
    assert kinds == {
        "zoe-nested": "unmatched",
        "zoe-underscore": "unrecognized",
        "zoe-long-folder": "unrecognized",
        "zoe-flat": "unmatched",
        "ben-as-ana": "unmatched",
    }
    by_owner = {impostors[s]: p.detail for s, p in problems.items()}
    assert "participant 199" in by_owner["zoe-nested"]
    assert "imitates" in by_owner["ben-as-ana"] and "ana@uni.es" in by_owner["ben-as-ana"]


def test_moodle_worksheet_of_another_assignment_is_caught_by_the_names(course, tmp_path):
    # participant ids differ in every assignment: 101 is Ana in the worksheet, Ben here
    archive = write_zip(
        tmp_path / "m.zip",
        {"Benito Pérez_101_assignsubmission_file/learning_rate.ipynb": notebook_bytes("ben")},
    )
    worksheet = write_csv(tmp_path / "worksheet.csv", MOODLE_WORKSHEET)
    report = collect_archive(course, AID, archive, "moodle", roster=worksheet)
    assert not report.placed and not course.submitted_dir.exists()
    assert "another assignment" in report.problems[0].detail


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


# --- what the instructor reads: notes (id and parameters), in the course language -------------


def test_collect_summary_is_rendered_in_spanish_and_in_english(course, tmp_path):
    from autograder.messages import catalogue

    archive, _ = canvas_archive(tmp_path)
    roster = write_csv(tmp_path / "roster.csv", CANVAS_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    spanish, english = report.summary("es"), report.summary("en")
    assert report.summary() == english  # English unless asked
    assert spanish.startswith("recogidas 5 entrega(s) de lesson4_learning_rate desde ")
    assert english.startswith("collected 5 submission(s) of lesson4_learning_rate from ")
    assert "con retraso (2): anon_Xy12z, ben" in spanish and "late (2)" in english
    assert "anónimas (1)" in spanish and "anonymous (1)" in english
    assert "ben: learning_rate-2.ipynb se ha tomado como learning_rate.ipynb" in spanish
    assert "8 problema(s), no colocados como entregas:" in spanish
    assert "- sin asociar: nadiegina_9999_507_learning_rate.ipynb [nadiegina 9999]: " in spanish
    assert "- unmatched: nadiegina_9999_507_learning_rate.ipynb [nadiegina 9999]: " in english
    assert "el usuario de Canvas 9999 («nadiegina») no está en el roster" in spanish
    # a reason that quotes another (the hint) is in the same language
    assert "no está en el roster; iris tiene ese nombre" in spanish
    assert "añade canvas_id 1009 a su fila" in spanish
    assert "informe: " in spanish and "report: " in english
    assert "guardado en " in spanish and "kept at " in english
    for problem in report.problems:
        assert problem.note["id"] in catalogue(), problem.note
        assert problem.note["id"].startswith("lms.collect.")
        assert problem.text("en") == problem.detail and problem.detail in english
        assert problem.text("es") in spanish and problem.text("es") != problem.detail
        assert problem.detail not in spanish  # no English reason in the Spanish summary
    for word in ("collected", "submission(s)", "not laid out", "kept at", "report:", "roster:"):
        assert word not in spanish, word
    for kind in ("unmatched", "not_notebook", "duplicate", "ambiguous", "unrecognized"):
        assert f"- {kind}:" not in spanish and f"- {kind}:" in english


def test_moodle_reasons_quoting_the_roster_match_are_in_one_language(course, tmp_path):
    members, _ = moodle_members("4")
    archive = write_zip(tmp_path / "m.zip", members)
    roster = write_csv(tmp_path / "roster.csv", MOODLE_ROSTER)
    report = collect_archive(course, AID, archive, "moodle", roster=roster)
    zoe = next(p for p in report.problems if p.lms_id == "199")
    assert zoe.note["id"] == "lms.collect.moodle.not_in_roster"
    assert zoe.note["params"]["why"] == {
        "id": "lms.collect.name.nobody",
        "params": {"name": "Zoe Extra"},
    }
    assert zoe.text("es") == (
        "el participante de Moodle 199 («Zoe Extra») no está en el roster: "
        "nadie se llama «Zoe Extra» en el roster"
    )
    assert zoe.detail == (
        "Moodle participant 199 ('Zoe Extra') is not in the roster: "
        "nobody called 'Zoe Extra' in the roster"
    )
    spanish = report.summary("es")
    assert zoe.text("es") in spanish and "nobody called" not in spanish


def test_collect_report_json_carries_each_problems_note(course, tmp_path):
    from autograder.lms.collect import collect_report_path
    from autograder.results import Note

    archive, _ = canvas_archive(tmp_path)
    roster = write_csv(tmp_path / "roster.csv", CANVAS_ROSTER)
    report = collect_archive(course, AID, archive, "canvas", roster=roster)
    saved = json.loads(collect_report_path(course, AID).read_text(encoding="utf-8"))
    problems = {p["source"]: p for p in saved["last_run"]["problems"]}
    assert set(problems) == {p.source for p in report.problems}
    for entry in problems.values():
        assert set(entry) >= {"kind", "source", "detail", "note", "lms_id", "name", "kept_at"}
        note = Note.from_dict(entry["note"])
        assert note is not None and set(entry["note"]) == {"id", "params"}
        assert entry["detail"] == note.text("en")  # the English text, as before notes
        assert note.text("es") != entry["detail"]
    assert problems["README.txt"]["note"] == {
        "id": "lms.collect.canvas.not_canvas_name",
        "params": {},
    }
    assert problems["nadiegina_9999_507_learning_rate.ipynb"]["note"] == {
        "id": "lms.collect.canvas.not_in_roster",
        "params": {"user_id": "9999", "name": "nadiegina", "hint": None},
    }
    iris = problems["ibáñeziris_1009_510_learning_rate.ipynb"]["note"]
    assert iris["id"] == "lms.collect.canvas.not_in_roster"
    assert iris["params"]["hint"] == {
        "id": "lms.collect.canvas.hint_no_canvas_id",
        "params": {"student": "iris", "user_id": "1009"},
    }
    assert problems["ruizdani_1004_505_learning_rate.pdf"]["note"] == {
        "id": "lms.collect.not_notebook",
        "params": {"filename": "learning_rate.pdf"},
    }
    assert problems["vidalhugo_1008_508_a.ipynb"]["note"] == {
        "id": "lms.collect.ambiguous",
        "params": {"count": 2, "notebook": NOTEBOOK},
    }
    assert problems["oneilcarla_1003_503_learning_rate.ipynb"]["note"] == {
        "id": "lms.collect.duplicate_notebook",
        "params": {"used": "learning_rate-1.ipynb"},
    }


def test_hostile_names_in_reasons_are_escaped_in_every_language(course, tmp_path):
    canvas = write_zip(
        tmp_path / "s.zip",
        {
            # Ana's PDF, its name with a newline and terminal escapes: in the reason's params
            "garcíaana_1001_505_\x1b]0;owned\x07evil\nname.pdf": b"%PDF-1.4",
            "garcíaana_1001_501_learning_rate.ipynb": notebook_bytes("ana"),
            # a crafted name that quotes the student's own file name in the reason
            "lópezben_1002_9_x_777_800_\x1b[2Jlr.ipynb": notebook_bytes("crafted"),
        },
    )
    roster = write_csv(tmp_path / "r.csv", IMPOSTOR_ROSTER)
    report = collect_archive(course, AID, canvas, "canvas", roster=roster)
    # Moodle: a right-to-left override in the folder's name, quoted twice (nested reason)
    moodle = write_zip(
        tmp_path / "m.zip",
        {"Zoe\u202eExtra_199_assignsubmission_file/learning_rate.ipynb": notebook_bytes("zoe")},
    )
    moodle_report = collect_archive(
        course, AID, moodle, "moodle", roster=write_csv(tmp_path / "m.csv", MOODLE_ROSTER)
    )
    pdf = next(p for p in report.problems if p.kind == "not_notebook")
    assert pdf.note["params"]["filename"] == "\\x1b]0;owned\\x07evil\\nname.pdf"
    crafted = next(p for p in report.problems if p.note["id"] == "lms.collect.canvas.crafted_name")
    assert crafted.note["params"]["filename"] == "x_777_800_\\x1b[2Jlr.ipynb"
    zoe = moodle_report.problems[0]
    assert zoe.note["params"]["why"]["params"]["name"] == "Zoe\\u202eExtra"
    for language in ("es", "en"):
        for each in (report, moodle_report):
            summary = each.summary(language)
            assert all(line.isprintable() for line in summary.splitlines()), language
            assert "\x1b" not in summary and "\u202e" not in summary
            for problem in each.problems:
                assert problem.text(language).isprintable(), (language, problem.note)
        assert "\\x1b]0;owned\\x07evil\\nname.pdf" in pdf.text(language)
        assert "x_777_800_\\x1b[2Jlr.ipynb" in crafted.text(language)
        assert zoe.text(language).count("Zoe\\u202eExtra") == 2
    assert "«\\x1b]0;owned" not in pdf.text("es")  # the file name, escaped, in the sentence
    assert pdf.text("es").endswith("no es un cuaderno (.ipynb)")


def test_every_reason_of_the_collect_path_is_a_catalogue_note():
    """The collectors pass notes (``Note("lms.collect...", ...)``) to the layout, never
    sentences, and every id they name (and every problem kind) is in the catalogue."""
    import ast
    import re

    import autograder.lms as lms_package
    from autograder.lms.collect import PROBLEM_KINDS, Layout
    from autograder.messages import catalogue

    def is_text(node) -> bool:
        return isinstance(node, ast.JoinedStr | ast.BinOp) or (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
        )

    folder = Path(lms_package.__file__).parent
    used, calls = set(), 0
    for name in ("collect.py", "canvas.py", "moodle.py", "roster.py"):
        text = (folder / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'Note\(\s*"(lms\.collect\.[a-z0-9_.]+)"', text))
        for node in ast.walk(ast.parse(text)):
            # layout.problem(zf, kind, source, note, ...): the reason is never a text
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "problem":
                calls += 1
                assert len(node.args) >= 4 and not is_text(node.args[3]), (name, node.lineno)
            if isinstance(node, ast.Assign) and any(
                getattr(t, "attr", "") == "refusal" for t in node.targets
            ):
                assert not is_text(node.value), (name, node.lineno)
            # match_name / member_refusal / the resolver: (None, why) with why a Note
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
                first, *rest = node.value.elts
                if isinstance(first, ast.Constant) and first.value is None and rest:
                    assert not is_text(rest[0]), (name, node.lineno)
            if isinstance(node, ast.FunctionDef) and node.name == "member_refusal":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        assert not is_text(ret.value), (name, ret.lineno)
    assert calls >= 12
    assert len(used) > 30
    assert used <= set(catalogue()), sorted(used - set(catalogue()))
    for kind in PROBLEM_KINDS:
        assert f"lms.collect.kind.{kind}" in catalogue(), kind
    entries = {k: v for k, v in catalogue().items() if k.startswith("lms.collect.")}
    for message_id, texts in entries.items():
        if not message_id.startswith("lms.collect.kind."):
            assert texts["es"] != texts["en"], message_id
    # and at run time: a sentence handed to the layout is refused
    layout = Layout.__new__(Layout)
    with pytest.raises(TypeError):
        layout.problem(None, "unrecognized", "x.txt", "an English sentence")


@pytest.mark.parametrize(
    ("language", "expected", "absent"),
    [
        ("es", "recogidas 5 entrega(s)", "collected"),
        ("en", "collected 5 submission(s)", "recogidas"),
    ],
)
def test_cli_collect_prints_the_summary_in_the_course_language(
    tmp_path, monkeypatch, capsys, language, expected, absent
):
    from autograder import cli
    from tests.conftest import ROOT

    monkeypatch.setenv("DLCOURSE_LANGUAGE", language)
    archive, _ = canvas_archive(tmp_path)
    roster = write_csv(tmp_path / "roster.csv", CANVAS_ROSTER)
    state = tmp_path / "state"
    state.mkdir()
    argv = ["collect", AID, str(archive), "--lms", "canvas", "--roster", str(roster)]
    argv += ["--config", str(ROOT / "course_config.py"), "--state-dir", str(state)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert expected in out and absent not in out
    assert ("sin asociar" in out) == (language == "es")
