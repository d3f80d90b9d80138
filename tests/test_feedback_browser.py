"""The sample class's feedback and class report, opened in a real headless browser.

Asserts on what a person sees: the rendered text (score, messages, hints, the error reason near
the top), images that actually loaded (``naturalWidth > 0``), links that lead to the right page.
Screenshots of every page are saved (``$FEEDBACK_SCREENSHOTS``, else a temporary folder).

Also here (slow, no browser): the learning-curve reader against a real Keras fit captured by
``keras_capture``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``) and the ``selenium`` package; skipped with that message when missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from autograder.feedback import (
    feedback_path,
    localized_hint,
    localized_message,
    unrunnable,
    write_feedback,
)
from autograder.plots import read_trainings
from autograder.report import check_stats, write_report
from tests.helpers import headless_chromium

pytestmark = pytest.mark.slow

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"
HIDDEN_MARKERS = (
    "BEGIN HIDDEN",
    "HIDDEN TESTS",
    "capture.answers",
    "BEGIN SOLUTION",
    "CURVE.curvature",
    "n_train() / 256",
)
WIDTH = 1200


class Browser:
    """A headless chromium driven by selenium, with the helpers the assertions need."""

    def __init__(self, driver, shots: Path):
        self.driver = driver
        self.shots = shots

    def open(self, path: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(path.resolve().as_uri())
        WebDriverWait(self.driver, 30).until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && "
                "Array.from(document.images).every(i => i.complete)"
            )
        )

    def images(self) -> list[dict]:
        return self.driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight,"
            " shown: i.getBoundingClientRect().width}))"
        )

    def text(self, css: str = "body") -> str:
        from selenium.webdriver.common.by import By

        return re.sub(r"\s+", " ", self.driver.find_element(By.CSS_SELECTOR, css).text)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def screenshot(self, name: str) -> Path:
        """The whole page, not only the first screenful."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(WIDTH, min(int(height) + 40, 14000))
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} failed"
        self.driver.set_window_size(WIDTH, 900)
        return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    shots = Path(os.environ.get("FEEDBACK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), WIDTH, 30)
    try:
        yield Browser(driver, shots)
    finally:
        driver.quit()
        print(f"\nfeedback screenshots: {shots}")


@pytest.fixture(scope="module")
def sample(graded_class):
    graded = graded_class(AID)
    course = graded.course
    return graded, write_feedback(course, AID), write_report(course, AID)


def seen(message: str) -> str:
    """A catalogue message as the browser shows it (markup rendered, whitespace collapsed)."""
    return re.sub(r"\s+", " ", message.replace("`", "").replace("**", "")).strip()


def assert_images_loaded(browser: Browser, at_least: int) -> list[dict]:
    shown = browser.images()
    assert len(shown) >= at_least, shown
    for image in shown:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["shown"] > 0, image
    return shown


def test_every_students_feedback_as_a_person_sees_it(browser, sample):
    graded, paths, _ = sample
    assert len(paths) == len(graded.students)
    for sid in graded.students:
        result = graded.results.students[sid]
        browser.open(feedback_path(graded.course.feedback_dir, sid, AID, NOTEBOOK))
        browser.screenshot(f"feedback_{sid}")
        source = browser.driver.page_source
        for marker in HIDDEN_MARKERS:
            assert marker not in source, (sid, marker)
        assert browser.text("#student") == sid
        assert browser.text("#score") == f"{result.score:g} / {result.max_score:g}"
        body = browser.text()
        if unrunnable(result):
            continue
        for gid, cell in result.cells.items():
            for check in cell.checks:
                assert seen(localized_message(check, "es")) in body, (sid, gid, check.id)
                hint = localized_hint(check, "es")
                if hint:
                    assert seen(f"Pista: {hint}") in body, (sid, gid, check.id)
        assert_images_loaded(browser, 0)


def test_perfect_and_partial_students(browser, sample):
    graded, _, _ = sample
    browser.open(feedback_path(graded.course.feedback_dir, "perfect", AID, NOTEBOOK))
    assert browser.text("#score") == "8 / 8"
    assert "100 %" in browser.text("header")
    (labels,) = assert_images_loaded(browser, 1)
    assert labels["alt"] == "Tus etiquetas sobre las curvas" and labels["width"] >= 600

    browser.open(feedback_path(graded.course.feedback_dir, "partial", AID, NOTEBOOK))
    assert browser.text("#score") == "3 / 8"
    q1 = browser.text("#q-test_steps_lr_003")
    assert "Incorrecto" in q1 and "te has desviado en un paso" in q1 and "Pista:" in q1
    assert "Tu respuesta: 46" in q1 and not re.search(r"\b45\b", q1)
    assert "Has dividido" in browser.text("#q-test_step_size")
    assert "Parcial" in browser.text("#summary")
    assert_images_loaded(browser, 1)


def test_an_ungradable_submission_says_why_at_the_top(browser, sample):
    graded, _, _ = sample
    browser.open(feedback_path(graded.course.feedback_dir, "corrupt", AID, NOTEBOOK))
    alert = browser.find("#error")
    assert alert.is_displayed()
    assert alert.rect["y"] < 400, "the reason must be seen without scrolling"
    text = browser.text("#error")
    assert "No se pudo calificar tu entrega" in text
    assert "no es un cuaderno de Jupyter válido" in text
    assert browser.text("#score") == "0 / 8"


def test_class_report_as_an_instructor_sees_it(browser, sample):
    graded, _, report = sample
    browser.open(report)
    browser.screenshot("report")
    assert browser.text("#n-students") == str(len(graded.students))
    assert browser.text("#n-errors") == "1"
    (histogram,) = assert_images_loaded(browser, 1)
    assert histogram["alt"] == "Distribución de las notas" and histogram["width"] >= 500
    # the most common mistakes come first
    stats = check_stats(graded.results, "es")
    rows = [e.text for e in browser.find_all("#checks code.check-id")]
    assert rows == [s.check for s in stats]
    assert stats[0].pass_rate <= stats[-1].pass_rate
    assert "Casi: te has desviado en un paso" in browser.text("#checks")
    # one row and one working link per student
    assert len(browser.find_all("tr.student-row")) == len(graded.students)
    assert len(browser.find_all("a.feedback-link")) == len(graded.students)
    errors = browser.text("#errors")
    assert "corrupt" in errors and "no es un cuaderno de Jupyter válido" in errors
    assert "raises" in errors and "ZeroDivisionError" in errors
    assert "skip_execution" in errors and "cuaderno reparado" in errors
    assert "Tiempo de calificación por entrega" in browser.text("#timing")
    browser.find("#student-partial a.feedback-link").click()
    browser.open(Path(browser.driver.current_url.removeprefix("file://")))
    assert browser.text("#student") == "partial"
    assert browser.text("#score") == "3 / 8"


def test_english_pages(browser, sample, tmp_path):
    graded, _, _ = sample
    course = graded.course
    out = tmp_path / "feedback_en"
    write_feedback(course, AID, language="en", feedback_dir=out)
    report = write_report(
        course, AID, language="en", path=tmp_path / "report_en.html", feedback_dir=out
    )
    browser.open(feedback_path(out, "partial", AID, NOTEBOOK))
    browser.screenshot("feedback_partial_en")
    body = browser.text()
    assert "Feedback: lesson4_learning_rate" in body and "Score per question" in body
    assert "Almost: you are one step off" in body and "Hint:" in body
    assert "Your labels on the curves" in body
    assert_images_loaded(browser, 1)
    browser.open(feedback_path(out, "corrupt", AID, NOTEBOOK))
    error = browser.text("#error")
    assert "Your submission could not be graded" in error
    assert "The file is not a valid Jupyter notebook: it is not JSON" in error
    browser.open(report)
    browser.screenshot("report_en")
    assert "Checks: most common mistakes first" in browser.text()
    assert_images_loaded(browser, 1)


def test_learning_curves_in_the_browser(browser, course):
    """A student who trained a model: her curves beside the reference's, with a diagnosis."""
    import autograder.core
    from tests.test_feedback import build_class

    build_class(course)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(autograder.core, "grade", lambda *a, **k: pytest.fail("reference regraded"))
        write_feedback(course, AID)
    browser.open(feedback_path(course.feedback_dir, "eve", AID, NOTEBOOK))
    browser.screenshot("feedback_training")
    shown = assert_images_loaded(browser, 2)
    curves = next(i for i in shown if i["alt"] == "Tus curvas de aprendizaje")
    assert curves["width"] >= 1000
    body = browser.text()
    assert "Sobreajuste a partir de la época 39" in body
    assert "El early stopping detuvo el entrenamiento en la época 60." in body


def test_reads_what_a_real_keras_fit_captures(tmp_path, monkeypatch):
    """The reader against the real capture module and a real (tiny) Keras fit."""
    import numpy as np

    keras = pytest.importorskip("keras")
    from dlcourse import keras_capture

    monkeypatch.setenv("AUTOGRADER_ARTIFACTS", str(tmp_path))
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((64, 3))
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input(shape=(3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mae")
    early_stopping = keras.callbacks.EarlyStopping(
        patience=2, min_delta=0.5, restore_best_weights=True
    )
    history = model.fit(
        x,
        y,
        validation_data=(x[:16], y[:16]),
        epochs=30,
        batch_size=32,
        callbacks=[early_stopping],
        verbose=0,
    )
    keras_capture.capture_training(
        {"model": model, "history": history, "early_stopping": early_stopping}
    )
    curves = read_trainings(tmp_path)["history"]
    assert curves.loss == pytest.approx(history.history["loss"])
    assert curves.val_loss == pytest.approx(history.history["val_loss"])
    assert curves.epochs_limit == 30 and curves.epochs == len(history.history["loss"]) < 30
    assert curves.best_epoch == early_stopping.best_epoch + 1
    assert curves.stopped_epoch == early_stopping.stopped_epoch + 1 == curves.epochs
