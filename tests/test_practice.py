"""Practice mode: an opt-in answer key in the release lets self-checks judge hidden answers."""

from __future__ import annotations

import json
import shutil

import pytest

from autograder.config import ConfigError, load_course
from autograder.release import release
from dlcourse import practice
from dlcourse.selfcheck import Checker
from tests.conftest import ROOT

AID = "lesson4_learning_rate"
RIGHT = {
    "steps_lr_003": 45,
    "steps_lr_01": 12,
    "lr_1_outcome": "c",
    "steps_per_epoch": 5,
    "curve_labels": {"A": "tasa_baja", "B": "sobreajuste", "C": "tasa_alta", "D": "tasa_correcta"},
}


def _course(tmp_path, mode: str):
    shutil.copytree(ROOT / "source" / AID, tmp_path / "source" / AID)
    text = (ROOT / "course_config.py").read_text()
    text += f'\nc.Course.assignments["{AID}"]["mode"] = "{mode}"\n'
    (tmp_path / "course_config.py").write_text(text)
    return load_course(tmp_path / "course_config.py", state_dir=tmp_path / "state")


def test_practice_release_lets_selfchecks_judge_hidden_answers(tmp_path, monkeypatch):
    course = _course(tmp_path, "practice")
    release(course, AID, self_test=False)
    folder = course.release_dir / AID
    key = (folder / practice.FILENAME).read_text()
    for answer in ("tasa_baja", "sobreajuste", '"c"', '"45"', ": 45"):
        assert answer not in key  # digests, not the answers (still guessable: see the docs)
    monkeypatch.chdir(folder)  # the kernel's working folder is the notebook's
    right = Checker(AID, dict(RIGHT))
    for question in RIGHT:
        result = right.result(question)
        assert result.ok, (question, result.text())
        assert "practice.right" in [o.message_id for o in result.outcomes]
    wrong = Checker(AID, {**RIGHT, "lr_1_outcome": "b", "steps_lr_003": 44})
    assert [o.message_id for o in wrong.result("lr_1_outcome").outcomes] == [
        "form.ok",
        "practice.wrong",
    ]
    assert not wrong.result("steps_lr_003").ok
    labels = Checker(AID, {"curve_labels": {**RIGHT["curve_labels"], "A": "tasa_alta"}})
    verdicts = [o.status for o in labels.result("curve_labels").outcomes[1:]]
    assert verdicts == ["failed", "passed", "passed", "passed"]
    # back to graded mode: the release no longer carries the answer key
    graded = load_course(tmp_path / "course_config.py", state_dir=tmp_path / "state")
    object.__setattr__(graded.assignments[AID], "mode", "graded")
    release(graded, AID, self_test=False)
    assert not (folder / practice.FILENAME).exists()
    assert [o.message_id for o in Checker(AID, dict(RIGHT)).result("lr_1_outcome").outcomes] == [
        "form.ok"
    ]


def test_graded_mode_is_the_default_and_ships_no_key(course):
    assert {spec.mode for spec in course.assignments.values()} == {"graded"}
    assert not list(course.release_dir.glob(f"*/{practice.FILENAME}"))


def test_assignment_settings_are_strict(tmp_path):
    (tmp_path / "course_config.py").write_text(
        (ROOT / "course_config.py").read_text()
        + f'\nc.Course.assignments["{AID}"]["mod"] = "practice"\n'
    )
    with pytest.raises(ConfigError, match='unknown key "mod". Did you mean "mode"'):
        load_course(tmp_path / "course_config.py")
    (tmp_path / "course_config.py").write_text(
        (ROOT / "course_config.py").read_text()
        + f'\nc.Course.assignments["{AID}"]["mode"] = "exam"\n'
    )
    with pytest.raises(ConfigError, match="graded"):
        load_course(tmp_path / "course_config.py")


def test_a_corrupt_or_huge_practice_file_is_ignored(tmp_path):
    (tmp_path / practice.FILENAME).write_text("{not json")
    assert practice.load(tmp_path) is None
    (tmp_path / practice.FILENAME).write_text(json.dumps({"salt": "s", "questions": []}))
    assert practice.load(tmp_path) is None
    (tmp_path / practice.FILENAME).write_text(" " * (practice.MAX_BYTES + 1))
    assert practice.load(tmp_path) is None
