"""One student's hostile results and artifacts cost that student alone, in every stage after
grading: the results file, regrade, feedback, the class report, the exports and the LMS
comments all go on for everyone (fast: no kernel runs; the sandboxed end-to-end version is
``tests/test_adversarial.py``)."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from autograder.batch import format_table, load_results, regrade_class
from autograder.export import EXPORTERS
from autograder.feedback import write_feedback
from autograder.grades import class_grades
from autograder.lms.common import feedback_text
from autograder.report import write_report
from autograder.results import AssignmentResult, ResultsFile
from tests.test_lms_export import AID, graded_state, student_result

ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\r\u202e"


def _artifacts(course, student):
    folder = course.autograded_dir / student / AID / "artifacts"
    (folder / "answers").mkdir(parents=True)
    (folder / "keras").mkdir()
    (folder / "execution.json").write_text(json.dumps({"status": "completed", "cells": {}}))
    return folder


def _answer(folder, name, value_json: str):
    (folder / "answers" / f"{name}.json").write_text(
        json.dumps({"name": name, "present": True, "value": None}).replace("null", value_json)
    )


@pytest.fixture
def hostile_class(tmp_path):
    from tests.conftest import make_course

    course = make_course(tmp_path / "state")
    results = [student_result(course, s) for s in ("ana", "zed")]
    eve = student_result(course, "eve", {"test_steps_lr_003": 0}, "error", ESCAPES + "\udc80")
    check = eve.cells["test_steps_lr_003"].checks[0]
    check.message = check.messages["es"] = f"found {ESCAPES}\udc80"
    check.params = {"found": "\udc80" + ESCAPES, "nan": float("nan")}
    eve.problems = [f"locked cell {ESCAPES} was modified"]
    renamed = student_result(course, "ren", dict.fromkeys(eve.cells, 0), "error", "renamed")
    renamed.timing = {}
    results += [eve, renamed, student_result(course, "deep"), student_result(course, "huge")]
    graded_state(tmp_path / "state", results, course)

    deep = _artifacts(course, "deep")
    _answer(deep, "steps_lr_003", "[" * 100_000 + "]" * 100_000)
    _answer(deep, "steps_lr_01", '"' + "\\udc80" * 10 + '"')
    (deep / "keras" / "training.json").write_text('{"history": {"loss": ' + "[" * 50_000 + "}")
    huge = _artifacts(course, "huge")
    history = {"loss": [1e308, -1e308, 2.0, "nan"], "val_loss": [1e308, 1.0, "inf", 0.5]}
    (huge / "keras" / "training.json").write_text(
        json.dumps({"history": history, "params": {"epochs": 10**300}})
    )
    with zipfile.ZipFile(huge / "keras" / "weights.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("w.npy", b"\x93NUMPY\x01\x00" + bytes(50_000_000))
    os.mkfifo(huge / "answers" / "steps_lr_01.json")  # a reader that opens it must not hang
    (course.autograded_dir / "huge" / AID / "timestamp.txt").mkdir()
    return course


def test_results_file_survives_surrogates_escapes_and_nan(hostile_class):
    course = hostile_class
    results = load_results(course, AID)
    ResultsFile(course.results_dir, AID).save(results)
    raw = (course.results_dir / f"{AID}.json").read_bytes().decode("utf-8")
    data = json.loads(raw)
    assert set(data["students"]) == {"ana", "zed", "eve", "ren", "deep", "huge"}
    assert "NaN" not in raw
    store = ResultsFile(course.results_dir, AID)
    store.append(results.students["eve"])  # the journal line too
    store.close()
    assert "eve" in store.load().students


def test_every_later_stage_goes_on_for_everyone(hostile_class):
    course = hostile_class
    regraded, _ = regrade_class(course, AID)
    assert set(regraded.students) == {"ana", "zed", "eve", "ren", "deep", "huge"}
    deep = regraded.students["deep"]
    assert deep.cells["test_steps_lr_003"].score == 0
    checks = deep.cells["test_steps_lr_003"].checks
    # why, in each language: never the English reason inside the Spanish message
    assert any("anidado" in c.message and "nested" not in c.message for c in checks)
    assert any("nested" in c.messages["en"] for c in checks)

    pages = write_feedback(course, AID)
    assert {p.parent.parent.name for p in pages} == set(regraded.students)
    report = write_report(course, AID).read_text("utf-8")
    for student in regraded.students:
        assert student in report
    csv = EXPORTERS["csv"](course, AID).read_text("utf-8")
    comments = [feedback_text(row) for row in class_grades(course, AID)]
    table = format_table(regraded)
    for text in (report, csv, table, *comments, *(p.read_text("utf-8") for p in pages)):
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text


def test_a_report_of_students_without_times(tmp_path):
    from tests.conftest import make_course

    course = make_course(tmp_path / "state")
    timed = student_result(course, "ana")
    timed.timing = {"total": 3.0, "execute": 2.0}
    untimed = student_result(course, "bob", status="error", error="no notebook")
    graded_state(tmp_path / "state", [timed, untimed], course)
    page = write_report(course, AID).read_text("utf-8")
    assert "ana" in page and "bob" in page


def test_refused_folders_are_kept_as_data(tmp_path):
    results = AssignmentResult(AID, refused=[{"folder": "'ana\\n'", "reason": "invalid"}])
    results.write_json(tmp_path / "r.json")
    again = AssignmentResult.read_json(tmp_path / "r.json")
    assert again.refused == results.refused and not again.students


def test_a_work_folder_of_any_depth_is_sanitized(tmp_path):
    from autograder.sandbox import MAX_WORKDIR_DEPTH, sanitize_workdir

    work = tmp_path / "work"
    (work / "artifacts" / "answers").mkdir(parents=True)
    (work / "artifacts" / "answers" / "x.json").symlink_to("/etc/passwd")
    fd = os.open(work, os.O_RDONLY)
    for level in range(1100):
        os.mkdir("n" * 120, dir_fd=fd)
        if level == 5:
            os.symlink("/", "root-link", dir_fd=fd)
        inner = os.open("n" * 120, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    removed = sanitize_workdir(work)
    assert "artifacts/answers/x.json" in removed
    placeholder = work / "artifacts" / "answers" / "x.json"
    assert placeholder.is_file() and not placeholder.is_symlink()
    links = [
        os.path.join(r, n)
        for r, ds, fs in os.walk(work)
        for n in ds + fs
        if os.path.islink(os.path.join(r, n))
    ]
    assert not links
    depth, folder = 0, work
    while (folder / ("n" * 120)).is_dir():
        folder, depth = folder / ("n" * 120), depth + 1
    assert depth <= MAX_WORKDIR_DEPTH


def test_the_forward_pass_on_captured_data_is_bounded_before_it_runs():
    """A captured "validation set" of 1.4 million rows (or a layer a million units wide) is a
    verdict, not minutes of the grader's CPU and gigabytes of activations."""
    import numpy as np

    from dlcourse import keras_model as km

    def view(units):
        layers = [km.dense(units, "relu"), km.dense(1)]
        for position, layer in enumerate(layers):
            layer.layer = position
        return km.ModelView(11, layers)

    def weights(units):
        return {
            None: {},
            0: {"kernel": np.zeros((11, units)), "bias": np.zeros(units)},
            1: {"kernel": np.zeros((units, 1)), "bias": np.zeros(1)},
        }

    model = view(512)
    assert km.forward(model, weights(512), np.zeros((1599, 11))).shape == (1599, 1)
    with pytest.raises(km.Unsupported, match="far larger"):
        km.forward(model, weights(512), np.zeros((1_450_000, 11)))
    wide = view(2_000_000)
    with pytest.raises(km.Unsupported, match="far larger"):
        km.forward(wide, weights(2_000_000), np.zeros((1599, 11)))
