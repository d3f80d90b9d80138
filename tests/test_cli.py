"""The instructor's terminal and the class kept in sync with ``submitted/``: help that explains
the workflow, options in either position, errors that name the path or the nearest id, exit
codes, quiet runs, and students who no longer have a submission. No notebook is executed."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

from autograder import cli
from autograder.batch import grade_class, regrade_class
from autograder.collect import scan_submissions
from autograder.config import load_course
from autograder.core import Assignment
from autograder.record import gradebook_scores
from tests.conftest import ROOT, make_course
from tests.test_lms_export import AID, class_of, graded_state, set_manual_score

NOTEBOOK = "learning_rate.ipynb"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    finally:
        quiet_logging()
    out, err = capsys.readouterr()
    return code, out, err


def quiet_logging() -> None:
    """main() points logging at this test's captured stderr: unhook it before that closes."""
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    logging.captureWarnings(False)


def every_action(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_action(sub)
        else:
            yield parser.prog, action


# --- help, version, options -------------------------------------------------------------------


@pytest.mark.parametrize("language", ["es", "en"])
def test_help_gives_the_workflow_the_exit_codes_and_the_assignment_ids(language, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", language)
    text = cli.build_parser().format_help()
    order = ["autograder release", "autograder grade", "autograder feedback", "autograder report"]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions), "the workflow is listed in the order it is run"
    for aid in load_course(None).assignments:
        assert aid in text
    for code in ("0", "1", "2", "3"):
        assert f"\n  {code}  " in text, f"exit code {code} explained"
    assert "`" not in text and "``" not in text, "no raw reST in the help"
    assert text.rstrip().endswith(
        ("DLCOURSE_LANGUAGE=en lo cambia.", "DLCOURSE_LANGUAGE=en changes it.")
    )


def test_every_argument_of_every_command_has_help():
    missing = [
        f"{prog}: {action.dest}"
        for prog, action in every_action(cli.build_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert not missing


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    from importlib import metadata

    assert capsys.readouterr().out.strip() == f"autograder {metadata.version('autograder')}"


def test_global_options_work_before_and_after_the_command(tmp_path):
    parser = cli.build_parser()
    before = parser.parse_args(["--state-dir", str(tmp_path), "-v", "grade", AID])
    after = parser.parse_args(["grade", AID, "--state-dir", str(tmp_path), "-v"])
    for args in (before, after):
        assert args.state_dir == str(tmp_path) and args.verbose and args.assignment == AID
    neither = parser.parse_args(["grade", AID])
    assert neither.state_dir is None and neither.config is None and not neither.verbose


def test_demo_says_it_deletes_its_folder_and_never_deletes_a_real_class(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    assert "DELETES" in capsys.readouterr().out
    real = tmp_path / "my-class"
    (real / "submitted").mkdir(parents=True)
    (real / "gradebook.db").write_bytes(b"precious")
    code, _, err = run(capsys, "demo", "--state-dir", str(real))
    assert code == 1 and str(real) in err and "not an earlier demo" in err
    assert (real / "gradebook.db").read_bytes() == b"precious"


# --- errors that say what to do ------------------------------------------------------------------


def test_a_missing_submissions_folder_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    state = tmp_path / "state"
    code, out, err = run(capsys, "grade", AID, "--state-dir", str(state), "-q")
    assert code == 1
    assert str(state / "submitted") in err and "does not exist" in err
    assert "(no submissions)" not in out
    assert not (state / "gradebook.db").exists() and not (state / "results").exists()
    elsewhere = tmp_path / "typo"
    code, _, err = run(
        capsys, "grade", AID, "--state-dir", str(state), "--submitted", str(elsewhere)
    )
    assert code == 1 and str(elsewhere) in err


def test_a_misspelt_assignment_names_the_nearest_one(tmp_path, capsys):
    for command in (["feedback"], ["report"], ["regrade"], ["grade"]):
        code, _, err = run(capsys, *command, "lesson4_learning_rat", "--state-dir", str(tmp_path))
        assert code == 1, command
        # in the course language (Spanish): the nearest id, and no English sentence
        assert '¿Querías decir "lesson4_learning_rate"?' in err, (command, err)
        assert "Did you mean" not in err, err
        assert "grade it first" not in err and "califícala primero" not in err


def test_feedback_before_grading_says_which_command_grades(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    code, _, err = run(capsys, "feedback", AID, "--state-dir", str(tmp_path))
    assert code == 1 and f"autograder grade {AID}" in err


def test_exports_without_a_grade_fail(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    graded_state(tmp_path / "state", [])  # a gradebook that knows the assignment, no student
    code, out, err = run(
        capsys,
        "export",
        "--format",
        "csv",
        "--assignment",
        AID,
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert code == 1 and "no grade to export" in err and "exported" not in out


def test_a_canvas_export_of_no_row_fails_and_says_why(tmp_path):
    from autograder.export import export
    from autograder.results import StageError

    state = tmp_path / "state"
    course = make_course(state)
    graded_state(state, class_of(course), course)
    # no roster and no collected submissions: Canvas has no identity for anyone
    course.nbgrader_config.Course.lms = {"canvas": {"assignments": {AID: 7001}}}
    with pytest.raises(StageError) as raised:
        export(course, "canvas", assignment_id=AID)
    text = raised.value.note.text("en")
    assert "has no row" in text and "6 student(s)" in text and "report.json" in text


def course_beside(tmp_path: Path, extra: str) -> Path:
    """course_config.py plus ``extra`` in a folder that sees the course's source/ and release/
    (the course directory is always the config file's folder)."""
    folder = tmp_path / "course"
    folder.mkdir()
    for name in ("source", "release"):
        (folder / name).symlink_to(ROOT / name)
    config = folder / "course_config.py"
    config.write_text(
        (ROOT / "course_config.py").read_text(encoding="utf-8") + "\n" + extra + "\n",
        encoding="utf-8",
    )
    return config


def test_the_canvas_snippet_a_message_suggests_is_valid_config(tmp_path):
    from autograder.lms.canvas import canvas_assignment
    from autograder.lms.common import LmsError

    course = make_course(tmp_path / "state")
    with pytest.raises(LmsError) as raised:
        canvas_assignment(course, AID)
    snippet = next(
        line.strip() for line in str(raised.value).splitlines() if "c.Course.lms =" in line
    )
    again = load_course(course_beside(tmp_path, snippet), state_dir=tmp_path / "state")
    assert canvas_assignment(again, AID).id == "123456"


def commented_block(text: str, opening: str) -> str:
    """The commented-out example that starts with ``# <opening>`` and ends at ``# }``."""
    lines = text.splitlines()
    start = lines.index(f"# {opening}")
    end = next(i for i in range(start, len(lines)) if lines[i] == "# }")
    return "\n".join(line.removeprefix("# ").removeprefix("#") for line in lines[start : end + 1])


def setting_names(cls) -> set[str]:
    import dataclasses
    import typing

    names = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names.add(f.name)
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            names |= setting_names(kind)
    return names


def test_course_config_has_an_example_of_every_setting_and_it_loads(tmp_path):
    from autograder.config import CourseSettings, LmsSettings

    text = (ROOT / "course_config.py").read_text(encoding="utf-8")
    for name in setting_names(CourseSettings) - setting_names(LmsSettings) - {"lms"}:
        assert f"c.Course.{name}" in text or f'"{name}"' in text, name
    from autograder.sandbox import SandboxSettings

    for name in setting_names(SandboxSettings):
        assert f'"{name}"' in text, f"c.Course.sandbox has no example of {name!r}"
    example = commented_block(text, "c.Course.lms = {")
    for name in setting_names(LmsSettings):
        assert f'"{name}"' in example, f"c.Course.lms has no example of {name!r}"
    load_course(
        course_beside(tmp_path, example), state_dir=tmp_path / "state"
    )  # validated: no unknown key, no bad type


# --- quiet by default ------------------------------------------------------------------------------


def test_dependency_warnings_go_to_the_log_file_unless_verbose(tmp_path, capsys):
    for verbose in (False, True):
        args = argparse.Namespace(state_dir=str(tmp_path), config=None, verbose=verbose)
        log_file = cli.configure_logging(args)
        logging.getLogger("traitlets").warning("Kernel noise %s", verbose)
        logging.getLogger("autograder.batch").warning("ours %s", verbose)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"deprecated thing {verbose}", DeprecationWarning, stacklevel=1)
        for handler in logging.getLogger().handlers:
            handler.flush()
        err = capsys.readouterr().err
        assert f"ours {verbose}" in err
        assert (f"Kernel noise {verbose}" in err) is verbose
        assert log_file == tmp_path / cli.LOG_FILE_NAME
        logged = log_file.read_text(encoding="utf-8")
        assert f"Kernel noise {verbose}" in logged and f"ours {verbose}" in logged
        assert f"deprecated thing {verbose}" in logged
    quiet_logging()


def test_local_kernels_talk_over_private_ipc_sockets(tmp_path):
    from autograder.execute import LocalLauncher

    manager = LocalLauncher().kernel_manager(tmp_path, {})
    assert manager.transport == "ipc"
    sockets = Path(manager.ip).parent
    assert sockets.is_dir() and oct(sockets.stat().st_mode & 0o777) == "0o700"
    assert len(str(manager.ip)) + 8 < 108  # Unix socket path limit, with a port suffix
    del manager
    import gc

    gc.collect()
    assert not sockets.exists()


def test_gitignore_keeps_student_data_out_of_git():
    ignored = [
        "reports/lesson4_learning_rate.html",
        "lms/roster.csv",
        "exchange/x",
        "autograder.log",
    ]
    kept = ["autograder/lms/canvas.py", "autograder/report.py", "docs/lms.md"]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *ignored, *kept],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert checked == ignored


# --- the class in sync with submitted/ -----------------------------------------------------------


def submit(
    course, student: str, name: str = NOTEBOOK, content: bytes = b"", where: str | None = None
) -> Path:
    folder = course.submitted_dir / student / (AID if where is None else where)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_a_browser_download_suffix_is_graded_with_a_note(tmp_path):
    course = make_course(tmp_path / "state")
    submit(course, "ana", "learning_rate (1).ipynb", b"{}")
    submit(course, "ben", "Learning_Rate-2.ipynb", b"{}")
    submit(course, "ben", "Learning_Rate-1.ipynb", b"{}")
    submit(course, "cris", "otra_cosa.ipynb", b"{}")
    found = {
        s.student: s for s in scan_submissions(course.submitted_dir, AID, NOTEBOOK).submissions
    }
    assert found["ana"].path.name == "learning_rate (1).ipynb" and found["ana"].problem is None
    assert found["ben"].path.name == "Learning_Rate-2.ipynb", "the latest copy"
    assert [n.id for n in found["ana"].notes] == ["note.notebook_copy"]
    assert "learning_rate (1).ipynb" in found["ana"].notes[0].text("en")
    assert found["cris"].path is None and found["cris"].problem.id == "submission.no_notebook"


def test_a_notebook_outside_the_assignment_folder_is_reported_for_that_student(tmp_path):
    course = make_course(tmp_path / "state")
    submit(course, "ana", where="")  # submitted/ana/learning_rate.ipynb
    submit(course, "ben", where="Lesson4_Learning_Rate")  # the id's case changed
    submit(course, "cris", where="lesson4_early_stopping")  # another assignment's folder
    results = grade_class(course, AID, progress=False, allow_unsandboxed=True)
    for student, found in (
        ("ana", "ana/learning_rate.ipynb"),
        ("ben", "ben/Lesson4_Learning_Rate/learning_rate.ipynb"),
    ):
        result = results.students[student]
        assert result.status == "error" and result.score == 0
        text = result.error_in("en")
        assert found in text and f"{student}/{AID}/{NOTEBOOK}" in text, text
    assert "cris" not in results.students


def test_students_without_a_submission_are_listed_then_pruned(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    state = tmp_path / "state"
    course = make_course(state)
    graded_state(state, class_of(course), course)  # ana, ben, carla, iris, anon_Xy12z, zoe
    for student in ("ana", "zoe"):
        submit(course, student)  # still there (an empty file: an error, no kernel)
        work = state / "autograded" / student / AID
        work.mkdir(parents=True, exist_ok=True)
    (state / "autograded" / "ben" / AID).mkdir(parents=True)
    gone = ["anon_Xy12z", "ben", "carla", "iris"]

    code, out, _ = run(
        capsys,
        "grade",
        AID,
        "--state-dir",
        str(state),
        "-q",
        "--allow-unsandboxed",
        "--workers",
        "1",
    )
    assert code == 0 and "--prune" in out
    for student in gone:
        assert student in out.split("no submission of this assignment any more:")[1]
    assert set(gradebook_scores(course.db_url, Assignment.from_course(course, AID))) >= set(gone)

    code, out, _ = run(
        capsys, "grade", AID, "--state-dir", str(state), "-q", "--prune", "--allow-unsandboxed"
    )
    assert code == 0 and "removed from" in out and all(s in out for s in gone)
    booked = gradebook_scores(course.db_url, Assignment.from_course(course, AID))
    assert set(booked) == {"ana", "zoe"}
    stored = json.loads((course.results_dir / f"{AID}.json").read_text(encoding="utf-8"))
    assert set(stored["students"]) == {"ana", "zoe"}
    assert not (state / "autograded" / "ben" / AID).exists()
    code, out, _ = run(
        capsys,
        "export",
        "--assignment",
        AID,
        "--state-dir",
        str(state),
        "--out",
        str(tmp_path / "g.csv"),
    )
    assert code == 0
    exported = (tmp_path / "g.csv").read_text(encoding="utf-8")
    assert "ana" in exported and not any(f"\n{s}," in exported for s in gone)


def test_regrade_names_students_whose_artifacts_are_gone(tmp_path, capsys, monkeypatch):
    """``nbgrader autograde --force`` empties autograded/<student>/<assignment>/: "no score
    changed" would be a lie for those students."""
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    state = tmp_path / "state"
    course = make_course(state)
    graded_state(state, class_of(course), course)  # graded, and no artifacts on disk
    results, changes = regrade_class(course, AID)
    assert results.unchecked == ["ana", "anon_Xy12z", "ben", "iris", "zoe"]  # carla: an error
    code, _, err = run(capsys, "regrade", AID, "--state-dir", str(state))
    assert code == cli.EXIT_ATTENTION
    assert "could not be re-checked" in err and "ana" in err and f"grade {AID} --force" in err


def test_grade_tables_show_formgrader_overrides(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")
    state = tmp_path / "state"
    course = make_course(state)
    graded_state(state, class_of(course), course)
    set_manual_score(course, "ben", "test_step_size", 1.0)
    code, out, _ = run(capsys, "regrade", AID, "--state-dir", str(state))
    ben = next(line for line in out.splitlines() if line.startswith("ben "))
    assert "6/8" in ben and "1*" in ben, out
    assert "reviewed by the instructor" in out


def test_the_lti_and_moodle_snippets_messages_suggest_are_valid_config(tmp_path):
    from autograder.lms.common import LmsError, lms_config
    from autograder.lms.lti import lti_settings

    course = make_course(tmp_path / "state")
    with pytest.raises(LmsError) as raised:
        lti_settings(course)
    snippet = next(
        line.strip() for line in str(raised.value).splitlines() if "c.Course.lms =" in line
    )
    again = load_course(course_beside(tmp_path, snippet), state_dir=tmp_path / "state")
    assert lms_config(again).lti.client_id
    # the Moodle hint, with its placeholder filled in
    from autograder.lms.moodle import export_moodle

    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text("Nombre,Otra cosa\nAna,1\n", encoding="utf-8")
    graded_state(tmp_path / "state", class_of(course), course)
    with pytest.raises(LmsError) as raised:
        export_moodle(course, AID, worksheet=worksheet)
    hint = str(raised.value).split(": ", 2)[-1].replace("<title>", "Calificación")
    assert hint.startswith("c.Course.lms = {"), hint
    (tmp_path / "course").rename(tmp_path / "first")
    moodle = load_course(course_beside(tmp_path, hint), state_dir=tmp_path / "state")
    assert lms_config(moodle).moodle.columns in (
        {"grade": "Calificación"},
        {"identifier": "Calificación"},
    )


def test_a_missing_lti_user_ids_file_names_the_command_that_writes_it(tmp_path):
    from autograder.lms.common import LmsError
    from autograder.lms.roster import course_roster

    course = make_course(tmp_path / "state")
    course.nbgrader_config.Course.lms = {"lti": {"user_ids": str(tmp_path / "lti_users.csv")}}
    with pytest.raises(LmsError, match="autograder lti-roster"):
        course_roster(course, lti=True)


@pytest.mark.parametrize(
    "language, words, foreign",
    [
        (
            "es",
            ("uso: autograder", "opciones:", "órdenes:", "error de uso"),
            ("usage:", "options:"),
        ),
        ("en", ("usage: autograder", "options:", "commands:", "usage error"), ("uso:", "opciones")),
    ],
)
def test_argparse_own_words_are_in_the_course_language(language, words, foreign, monkeypatch):
    """The usage line, the section headings and the usage-error line are catalogue texts."""
    monkeypatch.setenv("DLCOURSE_LANGUAGE", language)
    parser = cli.build_parser()
    grade = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = parser.format_help() + grade.choices["grade"].format_help()
    errors = io.StringIO()
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(errors):
        cli.build_parser().parse_args(["grade"])
    assert stop.value.code == cli.EXIT_USAGE
    text += errors.getvalue()
    for word in words:
        assert word in text, word
    for word in foreign:
        assert word not in text, word
    heading = "argumentos:" if language == "es" else "positional arguments:"
    assert heading in grade.choices["grade"].format_help()
    assert text.count("uso: uso:") == 0 and text.count("usage: usage:") == 0
