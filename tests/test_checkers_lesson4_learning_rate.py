"""Hidden checkers of lesson4_learning_rate on crafted artifacts (no kernel)."""

import os

import pytest

from autograder.check import CheckerError, run_checks
from tests.helpers import MISSING, write_answers, write_execution

POINTS = {
    "test_steps_lr_003": 1,
    "test_steps_lr_01": 1,
    "test_lr_1_outcome": 1,
    "test_goldilocks_lr": 1,
    "test_step_size": 1,
    "test_steps_per_epoch": 1,
    "test_curve_labels": 2,
}
RIGHT = dict(
    steps_lr_003=45,
    steps_lr_01=12,
    lr_1_outcome="c",
    goldilocks_lr=1 / 3.4,
    step_size=0.025,
    steps_per_epoch=5,
    curve_labels={"A": "tasa_baja", "B": "sobreajuste", "C": "tasa_alta", "D": "tasa_correcta"},
)


def grade(tmp_path, monkeypatch, language="es", **changes):
    folder = write_answers(tmp_path / "artifacts", monkeypatch, **{**RIGHT, **changes})
    return run_checks("lesson4_learning_rate", folder, POINTS, {"answer_rtol": 1e-6}, language)


def failures(cells, gid):
    return [c.message_id for c in cells[gid].checks if not c.passed]


def test_right_answers_get_full_marks(tmp_path, monkeypatch):
    cells = grade(tmp_path, monkeypatch)
    assert {g: c.score for g, c in cells.items()} == POINTS
    assert all(c.passed for cell in cells.values() for c in cell.checks)


@pytest.mark.parametrize(
    "changes",
    [
        dict(steps_lr_003=45.0, steps_lr_01=12.0),
        dict(lr_1_outcome="C"),
        dict(lr_1_outcome=" c) "),
        dict(lr_1_outcome={"c"}),
        dict(goldilocks_lr=0.294),
        dict(step_size=2.5 * 0.01),
        dict(steps_per_epoch=5.0),
        dict(
            curve_labels={
                "a": "TASA_BAJA",
                "b": " sobreajuste",
                "C": "tasa_alta",
                "D": "tasa_correcta",
            }
        ),
    ],
)
def test_valid_spellings_pass(tmp_path, monkeypatch, changes):
    cells = grade(tmp_path, monkeypatch, **changes)
    assert sum(c.score for c in cells.values()) == 8


@pytest.mark.parametrize(
    "name, value, gid, message_id",
    [
        ("steps_lr_003", 44, "test_steps_lr_003", "steps.off_by_one"),
        ("steps_lr_003", 46, "test_steps_lr_003", "steps.off_by_one"),
        ("steps_lr_003", 12, "test_steps_lr_003", "steps.wrong_rate"),
        ("steps_lr_01", 45, "test_steps_lr_01", "steps.wrong_rate"),
        ("steps_lr_01", 30, "test_steps_lr_01", "steps.wrong"),
        ("steps_lr_01", "12", "test_steps_lr_01", "wrong_type"),
        ("steps_lr_01", 12.5, "test_steps_lr_01", "wrong_type"),
        ("steps_lr_01", True, "test_steps_lr_01", "wrong_type"),
        ("lr_1_outcome", "a", "test_lr_1_outcome", "lr_outcome.wrong"),
        ("lr_1_outcome", "z", "test_lr_1_outcome", "lr_outcome.unknown_letter"),
        ("lr_1_outcome", 3, "test_lr_1_outcome", "lr_outcome.unknown_letter"),
        ("lr_1_outcome", {"a", "c"}, "test_lr_1_outcome", "lr_outcome.unknown_letter"),
        ("goldilocks_lr", 1.0, "test_goldilocks_lr", "goldilocks.never"),
        ("goldilocks_lr", -0.3, "test_goldilocks_lr", "goldilocks.never"),
        ("goldilocks_lr", 0.25, "test_goldilocks_lr", "goldilocks.slower"),
        ("goldilocks_lr", float("nan"), "test_goldilocks_lr", "wrong_type"),
        ("step_size", 250.0, "test_step_size", "step_size.divided"),
        ("step_size", -0.025, "test_step_size", "step_size.negative"),
        ("step_size", 0.25, "test_step_size", "step_size.wrong"),
        ("step_size", None, "test_step_size", "wrong_type"),
        ("steps_per_epoch", 4, "test_steps_per_epoch", "steps_per_epoch.floor"),
        ("steps_per_epoch", 7, "test_steps_per_epoch", "steps_per_epoch.whole_data"),
        ("steps_per_epoch", 1279, "test_steps_per_epoch", "steps_per_epoch.wrong"),
        ("curve_labels", ["tasa_baja"], "test_curve_labels", "wrong_type"),
    ],
)
def test_each_mistake_gets_its_message(tmp_path, monkeypatch, name, value, gid, message_id):
    cells = grade(tmp_path, monkeypatch, **{name: value})
    assert set(failures(cells, gid)) == {message_id}
    assert cells[gid].score == 0
    others = sum(c.score for g, c in cells.items() if g != gid)
    assert others == 8 - POINTS[gid]


def test_curve_labels_give_partial_credit(tmp_path, monkeypatch):
    cells = grade(
        tmp_path,
        monkeypatch,
        curve_labels={"A": "tasa_baja", "B": "tasa_alta", "C": "nada", "D": "tasa_correcta"},
    )
    assert cells["test_curve_labels"].score == 1.0
    assert failures(cells, "test_curve_labels") == ["curve_label.wrong", "curve_label.unknown"]
    cells = grade(tmp_path, monkeypatch, curve_labels={"A": "tasa_baja"})
    assert cells["test_curve_labels"].score == 0.5
    assert failures(cells, "test_curve_labels").count("curve_label.missing") == 3


def test_messages_never_reveal_the_expected_count(tmp_path, monkeypatch):
    cells = grade(tmp_path, monkeypatch, steps_lr_003=30, steps_lr_01=11)
    for gid in ("test_steps_lr_003", "test_steps_lr_01"):
        for check in cells[gid].checks:
            for text in check.messages.values():
                assert "45" not in text and "12" not in text.replace("0.1", "")


def test_not_attempted_is_distinct_from_wrong(tmp_path, monkeypatch):
    cells = grade(tmp_path, monkeypatch, steps_lr_003=MISSING, step_size=...)
    assert [c.outcome for c in cells["test_steps_lr_003"].checks] == ["not_attempted"]
    assert [c.outcome for c in cells["test_step_size"].checks] == ["not_attempted"]
    assert "No intentada" in cells["test_steps_lr_003"].checks[0].message


def test_answer_cell_error_is_reported(tmp_path, monkeypatch):
    folder = write_answers(tmp_path / "a", monkeypatch, **{**RIGHT, "steps_lr_01": MISSING})
    write_execution(
        folder,
        {
            "ans_steps_lr_01": {
                "status": "error",
                "error": {"ename": "ZeroDivisionError", "evalue": "division by zero"},
            }
        },
    )
    cells = run_checks("lesson4_learning_rate", folder, POINTS)
    check = cells["test_steps_lr_01"].checks[0]
    assert check.message_id == "answer_cell_error" and "ZeroDivisionError" in check.message


def test_unexecuted_test_cell_is_not_graded(tmp_path, monkeypatch):
    folder = write_answers(tmp_path / "a", monkeypatch, **RIGHT)
    os.remove(folder / "answers" / "step_size.json")
    write_execution(
        folder,
        {
            "test_step_size": {
                "status": "not_run",
                "reason": "the Python kernel died (the notebook crashed or used too much memory)",
                "reason_note": {"id": "run.kernel_died", "params": {}},
            }
        },
        "kernel_died",
    )
    cells = run_checks("lesson4_learning_rate", folder, POINTS)
    check = cells["test_step_size"].checks[0]
    assert check.message_id == "not_executed"
    # the reason is data, said in each language: never an English reason in Spanish
    assert "el kernel de Python murió" in check.messages["es"]
    assert "the Python kernel died" in check.messages["en"]


@pytest.mark.parametrize(
    "payload, spanish, english",
    [
        (b"{not json", "no es JSON válido", "it is not valid JSON"),
        (b'{"present": "yes"}', "no tiene el formato", "does not have the captured-answer format"),
        (b"[1, 2]", "no tiene el formato", "does not have the captured-answer format"),
        (b'{"present": true, "value": NaN}', "no es JSON válido", "it is not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "está anidado 5000 niveles", "nested 5000 levels deep"),
        (b"\xff\xfe{}", "no es texto UTF-8", "not UTF-8 text"),
    ],
)
def test_forged_artifacts_are_rejected(tmp_path, monkeypatch, payload, spanish, english):
    folder = write_answers(tmp_path / "a", monkeypatch, **RIGHT)
    (folder / "answers" / "steps_lr_003.json").write_bytes(payload)
    cells = run_checks("lesson4_learning_rate", folder, POINTS)
    assert cells["test_steps_lr_003"].score == 0
    check = cells["test_steps_lr_003"].checks[0]
    assert check.message_id == "artifact_invalid"
    # why, as data: said in each language, never an English reason in the Spanish message
    assert spanish in check.messages["es"] and english in check.messages["en"], check.messages
    assert english not in check.messages["es"]


def test_symlinked_artifact_is_rejected(tmp_path, monkeypatch):
    folder = write_answers(tmp_path / "a", monkeypatch, **RIGHT)
    target = folder / "answers" / "steps_lr_003.json"
    outside = tmp_path / "outside.json"
    outside.write_text(target.read_text())
    target.unlink()
    target.symlink_to(outside)
    cells = run_checks("lesson4_learning_rate", folder, POINTS)
    check = cells["test_steps_lr_003"].checks[0]
    assert check.message_id == "artifact_invalid"
    assert "es un enlace simbólico" in check.messages["es"]
    assert "is a symbolic link" in check.messages["en"]


def test_english_messages(tmp_path, monkeypatch):
    cells = grade(tmp_path, monkeypatch, language="en", steps_lr_003=46)
    check = cells["test_steps_lr_003"].checks[0]
    assert check.message.startswith("Almost") and check.messages["es"].startswith("Casi")
    assert check.hint and "RESET" in check.hint


def test_points_must_match_the_notebook(tmp_path, monkeypatch):
    folder = write_answers(tmp_path / "a", monkeypatch, **RIGHT)
    with pytest.raises(CheckerError, match="worth"):
        run_checks("lesson4_learning_rate", folder, {**POINTS, "test_curve_labels": 3})
