"""Self-checks in the student's notebook (``dlcourse.selfcheck``).

One definition serves both sides: for each crafted answer, the self-check (which captures
into memory in the kernel) must give exactly the message ids the hidden checker gives on the
artifacts the real capture writes to disk. Format-only questions never reveal the answer, and
a self-check never raises (except under ``nbgrader validate``) or sets a grade.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from autograder.check import run_checks  # noqa: E402
from autograder.config import load_course  # noqa: E402
from autograder.core import Assignment  # noqa: E402
from dlcourse import capture  # noqa: E402
from dlcourse import keras_capture as kc  # noqa: E402
from dlcourse.assignments import ASSIGNMENTS  # noqa: E402
from dlcourse.data import lesson4_scaled_split  # noqa: E402
from dlcourse.selfcheck import Checker, SelfCheckFailed  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

COURSE = load_course(ROOT / "course_config.py")


def _keras():
    import keras
    from keras import callbacks, layers

    return keras, callbacks, layers


def _hidden(aid: str, tmp_path, monkeypatch, namespace: dict, question: str) -> list[str]:
    """Message ids of the hidden checker's public checks of ``test_<question>``, on the files
    the hidden test cell's capture writes."""
    folder = tmp_path / "artifacts"
    monkeypatch.setenv(capture.ENV_ARTIFACTS, str(folder))
    spec = ASSIGNMENTS[aid].questions[question]
    spec.capture(namespace)
    if question == "history" and aid == "lesson4_early_stopping":
        kc.capture_callback(namespace, "early_stopping")
    monkeypatch.delenv(capture.ENV_ARTIFACTS)
    assignment = Assignment.from_course(COURSE, aid)
    cells = run_checks(aid, folder, assignment.cell_points, COURSE.thresholds)
    public = {rule.__name__ for rule in spec.rules}
    return [c.message_id for c in cells[f"test_{question}"].checks if c.id in public]


def _selfcheck(aid: str, namespace: dict, question: str) -> list[str]:
    result = Checker(aid, namespace).result(question)
    return [o.message_id for o in result.outcomes]


def _split_namespace(**overrides):
    x_train, x_valid, y_train, y_valid = lesson4_scaled_split()
    ns = {"X_train": x_train, "X_valid": x_valid, "y_train": y_train, "y_valid": y_valid}
    ns.update(overrides)
    return ns


def _es_model(hidden=(("relu", 512),) * 3, compile_with=("adam", "mae")):
    keras, _, layers = _keras()
    stack = [keras.Input(shape=(11,))]
    stack += [layers.Dense(units, activation=act) for act, units in hidden]
    stack.append(layers.Dense(1))
    model = keras.Sequential(stack)
    if compile_with:
        model.compile(optimizer=compile_with[0], loss=compile_with[1])
    return model


def _callback_variants():
    _, callbacks, _ = _keras()
    return {
        "right": callbacks.EarlyStopping(min_delta=0.001, patience=20, restore_best_weights=True),
        "swallowed_by_comment": callbacks.EarlyStopping(min_delta=0.001),
        "monitor_loss": callbacks.EarlyStopping(
            monitor="loss", min_delta=0.001, patience=20, restore_best_weights=True
        ),
        "seed_43_values": callbacks.EarlyStopping(min_delta=0.01, patience=30),
        "not_a_callback": "EarlyStopping",
    }


@pytest.mark.parametrize("variant", list(_callback_variants()))
def test_early_stopping_selfcheck_says_what_the_hidden_checker_says(
    variant, tmp_path, monkeypatch, data_home
):
    namespace = {"early_stopping": _callback_variants()[variant]}
    aid = "lesson4_early_stopping"
    expected = _hidden(aid, tmp_path, monkeypatch, namespace, "early_stopping")
    assert expected, "the hidden checker ran no public check"
    assert _selfcheck(aid, namespace, "early_stopping") == expected
    if variant == "right":
        assert all(m.endswith("_ok") for m in expected)
    else:
        assert any(not m.endswith("_ok") for m in expected)


MODEL_VARIANTS = {
    "right": {},
    "missing_layer": {"hidden": (("relu", 512),) * 2},
    "no_activation": {"hidden": (("relu", 512), (None, 512), ("relu", 512))},
    "sgd": {"compile_with": ("sgd", "mae")},
    "not_compiled": {"compile_with": None},
}


@pytest.mark.parametrize("variant", list(MODEL_VARIANTS))
def test_model_selfcheck_says_what_the_hidden_checker_says(
    variant, tmp_path, monkeypatch, data_home
):
    namespace = {"model": _es_model(**MODEL_VARIANTS[variant])}
    aid = "lesson4_early_stopping"
    expected = _hidden(aid, tmp_path, monkeypatch, namespace, "model")
    assert len(expected) == 3
    assert _selfcheck(aid, namespace, "model") == expected
    assert (variant == "right") == all(m.endswith("_ok") for m in expected)


def test_split_selfcheck_says_what_the_hidden_checker_says(tmp_path, monkeypatch, data_home):
    from sklearn.model_selection import train_test_split

    from dlcourse.data import load_red_wine

    frame = load_red_wine()
    X, y = frame.drop(columns="quality"), frame["quality"]
    x_train, x_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=42)
    low, high = X.min(), X.max()  # scaled with the whole data set: leakage
    leaky = {
        "X_train": (x_train - low) / (high - low),
        "X_valid": (x_valid - low) / (high - low),
        "y_train": y_train,
        "y_valid": y_valid,
    }
    aid = "lesson4_early_stopping"
    for namespace, good in ((_split_namespace(), True), (leaky, False)):
        expected = _hidden(aid, tmp_path / str(good), monkeypatch, namespace, "split")
        assert _selfcheck(aid, namespace, "split") == expected
        assert good == all(m.endswith("_ok") for m in expected), expected
    assert "es_split.random_state" in expected


def _l5_model(blocks):
    keras, _, layers = _keras()
    stack = [keras.Input(shape=(11,))]
    for block in blocks:
        stack += [layers.Dense(1024, activation="relu")]
        stack += [layers.Dropout(block) if isinstance(block, float) else layers.Dropout(0.3)]
        if block != "no_batchnorm":
            stack.append(layers.BatchNormalization())
    stack.append(layers.Dense(1))
    model = keras.Sequential(stack)
    model.compile(optimizer="adam", loss="mae")
    return model


L5_VARIANTS = {
    "right": [0.3, 0.3, 0.3],
    "rate_as_percent_kept": [0.7, 0.7, 0.7],
    "two_blocks": [0.3, 0.3],
    "no_batchnorm": ["no_batchnorm"] * 3,
}


@pytest.mark.parametrize("variant", list(L5_VARIANTS))
@pytest.mark.parametrize("question", ["dropout", "batchnorm"])
def test_lesson5_selfchecks_say_what_the_hidden_checker_says(
    variant, question, tmp_path, monkeypatch, data_home
):
    namespace = {"model": _l5_model(L5_VARIANTS[variant])}
    aid = "lesson5_dropout_batchnorm"
    expected = _hidden(aid, tmp_path, monkeypatch, namespace, question)
    assert expected
    assert _selfcheck(aid, namespace, question) == expected


@pytest.mark.slow
def test_history_selfchecks_say_what_the_hidden_checker_says(tmp_path, monkeypatch, data_home):
    """A short real training without the callback: epochs, batch size and 'not stopped'."""
    _, callbacks, _ = _keras()
    namespace = _split_namespace()
    model = _es_model()
    early = callbacks.EarlyStopping(min_delta=0.001, patience=20, restore_best_weights=True)
    namespace.update(model=model, early_stopping=early)
    namespace["history"] = model.fit(
        namespace["X_train"],
        namespace["y_train"],
        validation_data=(namespace["X_valid"], namespace["y_valid"]),
        epochs=3,
        batch_size=512,
        verbose=0,
    )
    aid = "lesson4_early_stopping"
    expected = _hidden(aid, tmp_path, monkeypatch, namespace, "history")
    assert _selfcheck(aid, namespace, "history") == expected
    assert expected == [
        "es_history.fit_arguments",  # epochs=3 and batch_size=512: both named in one message
        "es_history.callback_not_used",
        "es_history.not_stopped_no_callback",
    ]


# --- format-only questions, the summary, languages, never a traceback --------------------------


def test_format_only_questions_check_the_form_and_reveal_nothing():
    ns = {"lr_1_outcome": "c", "steps_lr_003": 7.5, "curve_labels": {"A": "tasa_alta"}}
    check = Checker("lesson4_learning_rate", ns)
    letters = [check.result("lr_1_outcome")] + [
        Checker("lesson4_learning_rate", {"lr_1_outcome": x}).result("lr_1_outcome") for x in "abd"
    ]
    assert {r.ok for r in letters} == {True}  # every letter looks the same: nothing leaks
    assert {r.text() for r in letters} == {letters[0].text()}
    assert check.result("steps_lr_003").outcomes[0].message_id == "form.whole"
    assert check.result("curve_labels").outcomes[0].message_id == "form.missing_keys"


def test_check_all_lists_unanswered_questions_and_each_verdict():
    check = Checker("lesson4_learning_rate", {"steps_lr_003": 40, "lr_1_outcome": "zz"})
    summary = check.all()
    assert summary.unanswered == [
        "steps_lr_01",
        "goldilocks_lr",
        "step_size",
        "steps_per_epoch",
        "curve_labels",
    ]
    assert summary.results["steps_lr_003"].ok and not summary.results["lr_1_outcome"].ok
    text = summary.text()
    assert "`steps_lr_01`" in text and "2 de 7" in text
    assert "Before submitting: 2 of 7" in summary.text("en")
    assert "<details lang='en'" in summary._repr_html_()


def test_a_failed_selfcheck_is_a_short_message_in_both_languages(data_home):
    _, callbacks, _ = _keras()
    check = Checker("lesson4_early_stopping", {"early_stopping": callbacks.EarlyStopping()})
    result = check("early_stopping")
    assert not result.ok
    html = result._repr_html_()
    assert "Traceback" not in html and "dlcourse" not in html and "/site-packages" not in html
    assert "Lección 4.4" in html and "Lesson 4.4" in html  # the other language, one click away
    assert Checker("lesson4_early_stopping", {}, language="en").language == "en"
    assert "Check of `early_stopping`" in result.text("en")


def test_hints_come_from_the_catalogue(capsys, data_home):
    _, callbacks, _ = _keras()
    check = Checker(
        "lesson4_early_stopping", {"early_stopping": callbacks.EarlyStopping(min_delta=0.001)}
    )
    check("early_stopping")
    text = check.hint("early_stopping")
    assert "print(early_stopping.patience" in text and text in capsys.readouterr().out
    assert "No hay ninguna pista" in Checker("lesson4_learning_rate", {}).hint("step_size")


def test_selfchecks_never_raise_on_hostile_values(data_home):
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no repr for you")

        def __getattr__(self, name):
            raise RuntimeError(name)

    for aid, assignment in ASSIGNMENTS.items():
        for question in assignment.questions:
            spec = assignment.questions[question]
            ns = {name: Hostile() for name in spec.variables}
            result = Checker(aid, ns).result(question)
            assert not result.ok
            assert result.text()  # renders


def test_selfchecks_stay_quiet_while_graded_and_raise_under_nbgrader_validate(
    monkeypatch, tmp_path
):
    check = Checker("lesson4_learning_rate", {"step_size": "0.025"})
    monkeypatch.setenv(capture.ENV_ARTIFACTS, str(tmp_path))
    assert check("step_size") is None and check.all() is None
    monkeypatch.delenv(capture.ENV_ARTIFACTS)
    monkeypatch.setenv("NBGRADER_VALIDATING", "1")
    with pytest.raises(SelfCheckFailed) as raised:
        check("step_size")
    assert raised.value._render_traceback_()[0].startswith("✗")
    # a success is printed, not returned: validate would parse a returned value as a score
    assert Checker("lesson4_learning_rate", {"step_size": 0.025})("step_size") is None
    monkeypatch.delenv("NBGRADER_VALIDATING")
    assert Checker("lesson4_learning_rate", {"step_size": 0.025})("step_size").ok


def test_unknown_question_is_a_message_not_an_exception():
    result = Checker("lesson4_learning_rate", {})("step")
    assert result.outcomes[0].message_id == "selfcheck.unknown_question"
    assert "`step_size`" in result.text()


def test_every_question_matches_a_graded_cell_of_the_source_notebook():
    for aid, assignment in ASSIGNMENTS.items():
        cells = set(Assignment.from_course(COURSE, aid).cell_points)
        assert {f"test_{q}" for q in assignment.questions} == cells, aid


def test_memory_capture_is_json_plain_like_the_files():
    from dlcourse.artifacts import MemoryArtifacts

    store = MemoryArtifacts()
    with capture.recording(store):
        capture.answers({"x": {1, 2}, "y": np.float64(0.5)}, "x", "y")
    assert store.answer("x").value == frozenset({1, 2})
    assert store.answer("y").value == 0.5
    assert capture.artifacts_dir() is None and not capture.active()


@pytest.mark.slow
def test_nbgrader_validate_reports_a_failed_selfcheck(tmp_path):
    """`nbgrader validate` runs the notebook's self-checks: a wrong form fails validation with
    the catalogue's message; the reference passes (and validate sees no stray result values)."""
    import subprocess
    import sys

    import nbformat

    from tests.sample_class.lesson4_learning_rate import perfect

    release = nbformat.read(ROOT / "release" / "lesson4_learning_rate" / "learning_rate.ipynb", 4)
    outcomes = {}
    for name, answer in (("right", None), ("wrong", "step_size = 'abc'")):
        nb = perfect(release)
        for cell in nb.cells:
            if answer and cell.metadata.get("nbgrader", {}).get("grade_id") == "ans_step_size":
                cell.source = answer
        folder = tmp_path / name
        folder.mkdir()
        nbformat.write(nb, folder / "learning_rate.ipynb")
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", "validate", "learning_rate.ipynb"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "MPLBACKEND": "Agg"},
        )
        outcomes[name] = done.stdout + done.stderr
    assert "Success! Your notebook passes all the tests." in outcomes["right"]
    assert "cannot be converted to" not in outcomes["right"]
    assert "VALIDATION FAILED ON 1 CELL(S)" in outcomes["wrong"]
    assert "`step_size` debe ser un número" in outcomes["wrong"]
