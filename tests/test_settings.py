"""The settings schema (autograder.config, docs/settings.md): validated once, at load.

Every mistake an instructor can make in ``course_config.py`` (an unknown or misspelt key at any
level, a value of the wrong type) stops ``load_course`` with a ``ConfigError`` that names the
key, where it is and the nearest valid key. The checkers take the data home and thresholds from
their context, never from the current directory or the environment.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from autograder.config import (
    THRESHOLDS,
    CanvasAssignmentSettings,
    ConfigError,
    LmsSettings,
    assignment_thresholds,
    load_course,
    threshold_defaults,
)
from autograder.lms.common import LmsError, lms_config
from tests.conftest import ROOT

AIDS = ("lesson4_learning_rate", "lesson4_early_stopping", "lesson5_dropout_batchnorm")


def load_with(tmp_path: Path, extra: str):
    """The real course_config.py followed by ``extra`` (lines of Python)."""
    path = tmp_path / "course_config.py"
    path.write_text((ROOT / "course_config.py").read_text(encoding="utf-8") + "\n" + extra)
    return load_course(path, state_dir=tmp_path / "state")


# --- the real course --------------------------------------------------------------------------


def test_the_course_config_loads_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        course = load_course(ROOT / "course_config.py", state_dir=tmp_path)
    assert set(course.thresholds) == set(AIDS)
    for aid in AIDS:
        assert set(course.thresholds[aid]) == set(threshold_defaults(aid))
    assert isinstance(course.lms, LmsSettings)
    assert course.sandbox.memory_mb == 3072


def test_checker_defaults_come_from_the_one_declaration():
    with warnings.catch_warnings():  # grade_cell is the checkers' own pytest's mark, not ours
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        from autograder.checkers import lesson4_early_stopping as es
        from autograder.checkers import lesson4_learning_rate as lr
        from autograder.checkers import lesson5_dropout_batchnorm as db
    from dlcourse.rules import lesson4_early_stopping as es_rules
    from dlcourse.rules import lesson5_dropout_batchnorm as db_rules

    assert lr.DEFAULTS == threshold_defaults("lesson4_learning_rate")
    assert es.DEFAULTS == threshold_defaults("lesson4_early_stopping")
    assert db.DEFAULTS == threshold_defaults("lesson5_dropout_batchnorm")
    # the public tolerances are the student distribution's own (it cannot import the grader)
    for public, aid in ((es_rules.DEFAULTS, AIDS[1]), (db_rules.DEFAULTS, AIDS[2])):
        assert {k: threshold_defaults(aid)[k] for k in public} == public
    assert set(THRESHOLDS) == set(AIDS)


# --- unknown and misspelt keys ------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match='c.Course has an unknown key "langauge". Did you mean '):
        load_with(tmp_path, 'c.Course.langauge = "en"')
    with pytest.raises(ConfigError, match='Did you mean "language"'):
        load_with(tmp_path, 'c.Course.langauge = "en"')


def test_misspelt_sandbox_key(tmp_path):
    with pytest.raises(
        ConfigError,
        match='c.Course.sandbox has an unknown key "memroy_mb". Did you mean "memory_mb"',
    ):
        load_with(tmp_path, 'c.Course.sandbox["memroy_mb"] = 1024')


@pytest.mark.parametrize(
    ("lms", "where", "key", "near"),
    [
        ({"rooster": "r.csv"}, "c.Course.lms", "rooster", "roster"),
        ({"canvas": {"assignment": {}}}, 'c.Course.lms["canvas"]', "assignment", "assignments"),
        (
            {"canvas": {"assignments": {"lesson4_learning_rate": {"id": 7, "nmae": "L4"}}}},
            'c.Course.lms["canvas"]["assignments"]["lesson4_learning_rate"]',
            "nmae",
            "name",
        ),
        (
            {"canvas": {"assignments": {"lesson4_learning_rte": 7}}},
            'c.Course.lms["canvas"]["assignments"]',
            "lesson4_learning_rte",
            "lesson4_learning_rate",
        ),
        ({"moodle": {"worksheet": "w.csv"}}, 'c.Course.lms["moodle"]', "worksheet", "worksheets"),
        (
            {"moodle": {"columns": {"grades": "Nota"}}},
            'c.Course.lms["moodle"]["columns"]',
            "grades",
            "grade",
        ),
        ({"lti": {"client-id": "1"}}, 'c.Course.lms["lti"]', "client-id", "client_id"),
        (
            {"lti": {"line_items": {"lesson4_early_stoping": "https://p/li/1"}}},
            'c.Course.lms["lti"]["line_items"]',
            "lesson4_early_stoping",
            "lesson4_early_stopping",
        ),
        (
            {"gradescope": {"visiblity": "hidden"}},
            'c.Course.lms["gradescope"]',
            "visiblity",
            "visibility",
        ),
        (
            {"gradescope": {"time_limit": {"lesson5_dropout_batchnom": 900}}},
            'c.Course.lms["gradescope"]["time_limit"]',
            "lesson5_dropout_batchnom",
            "lesson5_dropout_batchnorm",
        ),
    ],
)
def test_misspelt_lms_key_in_every_section(tmp_path, lms, where, key, near):
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, f"c.Course.lms = {lms!r}")
    message = str(info.value)
    assert message.startswith(f"{where} has an unknown "), message
    assert f'"{key}". Did you mean "{near}"?' in message


def test_unknown_threshold(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r'c.Course.thresholds\["lesson4_early_stopping"\] has an unknown threshold '
        r'"es_val_mae_mx". Did you mean "es_val_mae_max"',
    ):
        load_with(tmp_path, 'c.Course.thresholds["lesson4_early_stopping"]["es_val_mae_mx"] = 0.1')
    with pytest.raises(
        ConfigError, match='unknown assignment "lesson4_learning". Did you mean "lesson4_learning_'
    ):
        load_with(tmp_path, 'c.Course.thresholds["lesson4_learning"] = {"answer_rtol": 1e-3}')
    # a threshold another assignment declares is unknown here too
    with pytest.raises(ConfigError, match='unknown threshold "db_val_mae_max"'):
        load_with(tmp_path, 'c.Course.thresholds["lesson4_early_stopping"]["db_val_mae_max"] = 1')


def test_the_old_flat_thresholds_still_load_with_a_deprecation_warning(tmp_path):
    with pytest.warns(DeprecationWarning, match="flat"):
        course = load_with(
            tmp_path, 'c.Course.thresholds = {"answer_rtol": 0.5, "es_val_mae_max": 0.2}'
        )
    assert course.thresholds["lesson4_learning_rate"] == {"answer_rtol": 0.5}
    assert course.thresholds["lesson4_early_stopping"]["es_val_mae_max"] == 0.2
    assert course.thresholds["lesson5_dropout_batchnorm"] == threshold_defaults(AIDS[2])
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match='"answer_rtol"'):
        load_with(tmp_path, 'c.Course.thresholds = {"answer_rtl": 0.5}')


# --- wrong types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "where", "expected", "found"),
    [
        ('c.Course.workers = "4"', "c.Course.workers", "int", "str"),
        ("c.Course.notebook_timeout = None", "c.Course.notebook_timeout", "float", "NoneType"),
        ('c.Course.language = "fr"', "c.Course.language", "'es' | 'en'", "str"),
        ('c.Course.sandbox["memory_mb"] = 3.5', 'c.Course.sandbox["memory_mb"]', "int", "float"),
        (
            'c.Course.sandbox["allow_unsandboxed"] = "no"',
            'c.Course.sandbox["allow_unsandboxed"]',
            "bool",
            "str",
        ),
        (
            'c.Course.assignments["lesson4_learning_rate"]["timeout"] = "300"',
            'c.Course.assignments["lesson4_learning_rate"]["timeout"]',
            "float",
            "str",
        ),
        (
            'c.Course.thresholds["lesson4_learning_rate"]["answer_rtol"] = "1e-6"',
            'c.Course.thresholds["lesson4_learning_rate"]["answer_rtol"]',
            "float",
            "str",
        ),
        (
            'c.Course.lms = {"moodle": {"feedback": "yes"}}',
            'c.Course.lms["moodle"]["feedback"]',
            "bool",
            "str",
        ),
        ('c.Course.lms = {"lti": []}', 'c.Course.lms["lti"]', "dict", "list"),
        (
            'c.Course.lms = {"gradescope": {"visibility": "public"}}',
            'c.Course.lms["gradescope"]["visibility"]',
            "'hidden' | ",
            "str",
        ),
    ],
)
def test_wrong_type_names_expected_and_found(tmp_path, line, where, expected, found):
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, line)
    message = str(info.value)
    assert message.startswith(f"{where} must be "), message
    assert expected in message and f"not {found} " in message, message


def test_refused_and_missing_keys(tmp_path):
    with pytest.raises(ConfigError, match="Do not put the LTI private key"):
        load_with(tmp_path, 'c.Course.lms = {"lti": {"private_key": "-----BEGIN..."}}')
    with pytest.raises(ConfigError, match='needs the key "notebook"'):
        load_with(tmp_path, 'c.Course.assignments["extra"] = {"timeout": 10}')
    with pytest.raises(ConfigError, match="Canvas assignment id must be a number"):
        load_with(tmp_path, f'c.Course.lms = {{"canvas": {{"assignments": {{"{AIDS[0]}": "x"}}}}}}')
    with pytest.raises(ConfigError, match="minimum"):
        load_with(tmp_path, 'c.Course.thresholds["lesson4_early_stopping"]["es_val_mae_min"] = 1')


# --- a full, valid configuration --------------------------------------------------------------

FULL_LMS = {
    "roster": ["roster.csv", "more.csv"],
    "canvas": {
        "assignments": {
            "lesson4_learning_rate": {"id": 7001, "name": "Lección 4", "points": 10},
            "lesson4_early_stopping": "7002",
        }
    },
    "moodle": {
        "worksheets": {"lesson4_learning_rate": "w.csv", "*": "all.csv"},
        "feedback": False,
        "columns": {"grade": "Nota"},
    },
    "lti": {
        "issuer": "https://canvas.instructure.com",
        "client_id": 10000000000042,
        "token_url": "https://school.example/login/oauth2/token",
        "key_id": "course-2026",
        "key_file": "keys/lti.pem",
        "line_items": {"lesson4_learning_rate": "https://school.example/li/7"},
        "user_ids": "lti_users.csv",
        "timeout": 10,
        "max_attempts": 2,
        "comment": False,
    },
    "gradescope": {
        "visibility": {"lesson4_learning_rate": "after_published", "*": "hidden"},
        "stdout_visibility": "hidden",
        "test_visibility": {"lesson4_learning_rate": {"test_curve_labels": "after_due_date"}},
        "time_limit": 1200,
        "margin": {"lesson5_dropout_batchnorm": 120},
        "run_as": "",
    },
}


def test_a_full_valid_config_loads(tmp_path):
    course = load_with(
        tmp_path,
        f"c.Course.lms = {FULL_LMS!r}\n"
        'c.Course.sandbox["extra_ro_paths"] = ["/opt/data"]\n'
        'c.Course.thresholds["lesson4_early_stopping"]["es_val_mae_max"] = 0.09\n'
        'c.Course.assignments["lesson4_learning_rate"]["mode"] = "practice"\n'
        'c.Course.language = "en"\n'
        "c.Course.workers = 2\n",
    )
    lms = course.lms
    assert lms.roster == ["roster.csv", "more.csv"]
    assert lms.canvas.assignments["lesson4_learning_rate"] == CanvasAssignmentSettings(
        "7001", "Lección 4", 10.0
    )
    assert lms.canvas.assignments["lesson4_early_stopping"].id == "7002"
    assert lms.lti.client_id == "10000000000042" and lms.lti.timeout == 10.0
    assert course.sandbox.extra_ro_paths == ("/opt/data",)
    assert course.thresholds["lesson4_early_stopping"]["es_val_mae_max"] == 0.09
    assert course.assignment("lesson4_learning_rate").mode == "practice"
    assert course.language == "en" and course.workers == 2

    from autograder.lms import gradescope as gs
    from autograder.lms import lti

    settings = gs.GradescopeSettings.from_course(course, "lesson4_learning_rate")
    assert settings.visibility == "after_published" and settings.time_limit == 1200
    assert settings.test_visibility == {"test_curve_labels": "after_due_date"}
    assert settings.run_as is None
    assert gs.GradescopeSettings.from_course(course, "lesson5_dropout_batchnorm").margin == 120
    assert gs.GradescopeSettings.from_course(course, "lesson4_early_stopping").visibility == (
        "hidden"
    )
    resolved = lti.lti_settings(course)
    assert resolved.key_file == str(course.root / "keys" / "lti.pem")


def test_settings_changed_after_loading_are_validated_when_read(course):
    course.nbgrader_config.Course.lms = {"canvas": {"asignments": {}}}
    with pytest.raises(ConfigError, match='Did you mean "assignments"'):
        _ = course.lms
    with pytest.raises(LmsError, match='Did you mean "assignments"'):  # what LMS code raises
        lms_config(course)
    course.nbgrader_config.Course.lms = {"canvas": {"assignments": {AIDS[0]: 7001}}}
    assert lms_config(course).canvas.assignments[AIDS[0]].id == "7001"


def test_run_time_thresholds_are_checked_by_the_same_declaration():
    nested = {aid: threshold_defaults(aid) for aid in AIDS}
    assert assignment_thresholds(AIDS[0], nested) == threshold_defaults(AIDS[0])
    assert assignment_thresholds(AIDS[0], {"answer_rtol": 0.1}) == {"answer_rtol": 0.1}
    assert assignment_thresholds(AIDS[0]) == threshold_defaults(AIDS[0])
    with pytest.raises(ConfigError, match='Did you mean "answer_rtol"'):
        assignment_thresholds(AIDS[0], {"answer_rtl": 0.1})
    with pytest.raises(ConfigError, match="not both"):
        assignment_thresholds(AIDS[0], {**nested, "answer_rtol": 0.1})


# --- the checkers' data home comes from their context ----------------------------------------


def test_checkers_use_the_context_data_home_not_cwd_or_environment(
    tmp_path, monkeypatch, data_home
):
    from autograder.check import run_checks
    from autograder.core import Assignment
    from dlcourse import capture, keras_capture
    from dlcourse import data as dlcourse_data
    from tests.helpers import write_execution

    aid = "lesson4_early_stopping"
    course = load_course(ROOT / "course_config.py", state_dir=tmp_path / "state")
    points = Assignment.from_course(course, aid).cell_points
    folder = tmp_path / "artifacts"
    monkeypatch.setenv(capture.ENV_ARTIFACTS, str(folder))  # the capture, as a kernel runs it
    arrays = dlcourse_data.course_arrays(str(data_home))
    keras_capture.capture_split(
        {k: arrays[k] for k in ("X_train", "X_valid", "y_train", "y_valid")}
    )
    write_execution(folder, {})
    monkeypatch.delenv(capture.ENV_ARTIFACTS)

    # somewhere else, with an environment that points at nothing useful
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("COURSE_DATA_HOME", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("COURSE_CONFIG", str(tmp_path / "no-such-config.py"))

    def no_download(*args, **kwargs):
        raise AssertionError("a checker looked for the data outside its context")

    calls = []
    original = dlcourse_data.course_arrays

    def spy(home=None):
        calls.append(home)
        return original(home)

    monkeypatch.setattr(dlcourse_data, "_download", no_download)
    monkeypatch.setattr(dlcourse_data, "course_arrays", spy)
    cells = run_checks(aid, folder, points, course.thresholds, "en", data_home=data_home)
    checks = {c.id: c for c in cells["test_split"].checks}
    assert checks["split_rows"].passed, checks["split_rows"].message
    assert checks["split_rows"].message_id == "es_split.rows_ok"
    assert checks["split_scaling"].passed, checks["split_scaling"].message
    assert calls and set(calls) == {str(data_home)}


def test_the_schemas_moodle_column_roles_are_the_exporters():
    from autograder.config import MOODLE_COLUMN_ROLES
    from autograder.lms.moodle import COLUMN_NAMES

    assert set(MOODLE_COLUMN_ROLES) == set(COLUMN_NAMES)


# --- the errors are catalogue messages, in the instructor's language --------------------------

BAD_CONFIGS = {
    "config.unknown_key": "c.Course.langauge = 'es'",
    "config.wrong_type": 'c.Course.lms = {"moodle": {"feedback": "yes"}}',
    "config.missing_key": 'c.Course.assignments["extra"] = {"timeout": 10}',
    "config.refused.lti_private_key": 'c.Course.lms = {"lti": {"private_key": "-----BEGIN"}}',
    "config.canvas_id_not_number": (
        f'c.Course.lms = {{"canvas": {{"assignments": {{"{AIDS[0]}": "x"}}}}}}'
    ),
    "config.not_positive": 'c.Course.lms = {"lti": {"max_response_mb": 0}}',
    "config.min_not_below_max": (
        'c.Course.thresholds["lesson4_early_stopping"]["es_val_mae_min"] = 1'
    ),
    "config.one_of": 'c.Course.sandbox = {"memory_accounting": "pss"}',
}


@pytest.mark.parametrize("message_id", sorted(BAD_CONFIGS))
def test_a_config_error_is_a_message_in_both_languages(tmp_path, message_id):
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, BAD_CONFIGS[message_id])
    note = info.value.note
    assert note.id == message_id
    english, spanish = note.text("en"), note.text("es")
    assert str(info.value) == english
    assert english != spanish and "{{" not in spanish and "{%" not in spanish
    assert note.params["where"].startswith("c.Course") and note.params["where"] in spanish
    # the Spanish text carries none of the English one's words
    for english_word in (" must ", " needs ", " has an unknown ", "See docs", " Do not "):
        assert english_word not in spanish, spanish


def test_the_cli_names_the_misspelt_key_in_the_course_language(tmp_path, capsys, monkeypatch):
    from autograder.cli import main

    monkeypatch.delenv("DLCOURSE_LANGUAGE", raising=False)
    path = tmp_path / "course_config.py"
    path.write_text(
        (ROOT / "course_config.py").read_text(encoding="utf-8") + "\nc.Course.workrs = 2\n"
    )
    assert main(["--config", str(path), "--state-dir", str(tmp_path), "report", AIDS[0]]) == 1
    said = capsys.readouterr().err
    assert "error de configuración" in said and 'clave desconocida "workrs"' in said, said
    assert '¿Querías decir "workers"?' in said and "Did you mean" not in said, said
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    assert main(["--config", str(path), "--state-dir", str(tmp_path), "report", AIDS[0]]) == 1
    assert 'unknown key "workrs". Did you mean "workers"?' in capsys.readouterr().err


def test_no_config_error_is_a_sentence_in_the_code():
    """Every ``ConfigError``/``InvalidSetting`` names a catalogue id; none holds a sentence."""
    import re

    import autograder
    from autograder.config import LtiSettings
    from autograder.messages import catalogue

    used, sentences = set(), []
    for path in Path(autograder.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'(?:ConfigError|InvalidSetting)\(\s*"([a-z0-9_.]+)"', text))
        sentences += re.findall(r'(?:ConfigError|InvalidSetting)\(\s*f?"([^"]*[A-Z ][^"]*)"', text)
    used |= set(LtiSettings.REFUSED_KEYS.values())
    with pytest.raises(ConfigError) as info:  # {name: value} beside {assignment id: {...}}
        assignment_thresholds(AIDS[0], {AIDS[0]: {"answer_rtol": 1e-3}, "answer_rtol": 1e-3})
    assert info.value.note.id == "config.thresholds_mixed" and "{" not in info.value.note.id
    assert "no de las dos formas" in info.value.note.text("es")
    assert set(BAD_CONFIGS) <= used | {"config.unknown_key", "config.wrong_type"}
    assert used <= set(catalogue()), sorted(used - set(catalogue()))
    assert not sentences, sentences
