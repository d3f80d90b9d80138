"""The collect stage: student ids are whole-string matches of the allowed pattern."""

from autograder.collect import STUDENT_ID, find_submissions


def test_student_ids_match_in_full(tmp_path):
    assert STUDENT_ID.fullmatch("ana.garcia@uni.es")
    for bad in ("ana\n", "ana\r", "=HYPERLINK(1)", "-ana", "", "a" * 101, "ana/../x"):
        assert not STUDENT_ID.fullmatch(bad), repr(bad)
    for name in ("ana", "ana\n"):
        folder = tmp_path / name / "a1"
        folder.mkdir(parents=True)
        (folder / "nb.ipynb").write_text("{}")
    found = {s.student: s for s in find_submissions(tmp_path, "a1", "nb.ipynb")}
    assert found["ana"].path is not None and found["ana"].problem is None
    assert found["ana\n"].path is None and "not a valid student id" in found["ana\n"].problem
