"""The collect stage: student ids are whole-string matches of the allowed pattern; a folder
that is not a valid id is refused (never a submission); ``timestamp.txt`` is read bounded."""

import os

from autograder.collect import STUDENT_ID, scan_submissions
from autograder.results import Note


def _submit(root, name, stamp=None):
    folder = root / name / "a1"
    folder.mkdir(parents=True)
    (folder / "nb.ipynb").write_text("{}")
    if stamp is not None:
        (folder / "timestamp.txt").write_bytes(stamp)
    return folder


def test_student_ids_match_in_full(tmp_path):
    assert STUDENT_ID.fullmatch("ana.garcia@uni.es")
    for bad in ("ana\n", "ana\r", "=HYPERLINK(1)", "-ana", "", "a" * 101, "ana/../x"):
        assert not STUDENT_ID.fullmatch(bad), repr(bad)


def test_invalid_ids_are_refused_with_a_reason_and_never_become_submissions(tmp_path):
    names = ["ana", "ana\n", '=HYPERLINK("evil.example","y")', "+1", "@sum", "\x1b[2Jbob", "-x"]
    for name in names:
        _submit(tmp_path, name)
    scan = scan_submissions(tmp_path, "a1", "nb.ipynb")
    assert [s.student for s in scan.submissions] == ["ana"]
    refused = {r.folder: r.reason for r in scan.refused}
    assert len(refused) == len(names) - 1
    for folder, reason in refused.items():
        assert folder.isprintable() and "\x1b" not in folder, folder
        assert "not a valid student id" in Note.from_dict(reason).text("en")
        assert "no es un identificador de estudiante válido" in Note.from_dict(reason).text("es")


def test_timestamps_are_parsed_or_noted(tmp_path):
    _submit(tmp_path, "ok", b"2026-11-20 10:00:00.123456 UTC\n")
    _submit(tmp_path, "text", b"submitted yesterday, honest")
    _submit(tmp_path, "binary", b"\xff\xfe\x00garbage")
    _submit(tmp_path, "huge", b"2026-11-20 " + b"9" * 100_000)
    _submit(tmp_path, "past", b"0001-01-01 00:00:00")
    folder = _submit(tmp_path, "folder")
    (folder / "timestamp.txt").mkdir()
    (folder / "timestamp.txt" / "x").write_text("x")
    link = _submit(tmp_path, "link")
    os.symlink("/etc/passwd", link / "timestamp.txt")
    fifo = _submit(tmp_path, "fifo")
    os.mkfifo(fifo / "timestamp.txt")  # must not block the scan
    found = {s.student: s for s in scan_submissions(tmp_path, "a1", "nb.ipynb").submissions}
    assert found["ok"].timestamp == "2026-11-20 10:00:00.123456 UTC" and not found["ok"].notes
    for student in ("text", "binary", "huge", "past", "folder", "link", "fifo"):
        assert found[student].timestamp is None, student
        assert found[student].path is not None, student  # the notebook is still graded
        assert any("timestamp.txt" in n.text("en") for n in found[student].notes), student
