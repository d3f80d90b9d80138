"""The sample class's feedback and class report, opened in a real headless browser.

Asserts on what a person sees: the rendered text (score, messages, hints, the error reason near
the top), images that actually loaded (``naturalWidth > 0``), links that lead to the right page.
Every page is also opened at a desktop's width (1280 px) and a phone's (390 px): nothing may
overflow the page sideways or clip a badge, every plot must stay legible, and axe-core (the npm
package in ``tests/browser``: ``npm ci --prefix tests/browser``) must find no accessibility
violation. Screenshots of every page at both widths are saved (``$FEEDBACK_SCREENSHOTS``, else a
temporary folder; the paths are printed).

Also here (slow, no browser): the learning-curve reader against a real Keras fit captured by
``keras_capture``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``) and the ``selenium`` package; skipped with that message when missing. The
accessibility checks also need ``tests/browser/node_modules``: without it the layout is still
checked and the test is skipped for axe, except in CI (``$CI`` set), where it fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from autograder import plots
from autograder.feedback import (
    feedback_path,
    localized_hint,
    localized_message,
    unrunnable,
    write_feedback,
)
from autograder.plots import read_trainings
from autograder.report import check_stats, write_report
from tests.conftest import make_course
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
DESKTOP, PHONE = 1280, 390
AXE = Path(__file__).resolve().parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
AXE_INSTALL = "axe-core is not installed: run `npm ci --prefix tests/browser`"
MIN_PLOT_FONT_PX = 9.0  # the smallest text of a plot, in CSS px, once the image is scaled
MIN_PHONE_PLOT_PX = 340  # a plot's width on a 390 px phone


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

    def screenshot(self, name: str, width: int = WIDTH) -> Path:
        """The whole page, not only the first screenful."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(int(height) + 40, 14000))
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} failed"
        self.resize(width)
        return path

    def resize(self, width: int) -> None:
        """A window whose page area (``window.innerWidth``) is ``width`` CSS px."""
        self.driver.set_window_size(width, 900)
        inner = self.driver.execute_script("return window.innerWidth")
        if inner != width:  # window decorations, if any
            self.driver.set_window_size(2 * width - inner, 900)
        assert self.driver.execute_script("return window.innerWidth") == width

    def layout(self) -> dict:
        """What overflows the viewport, which badges are clipped, how big the plots are."""
        return self.driver.execute_script(LAYOUT_JS)

    def axe(self, source: str) -> list[dict]:
        """axe-core's violations on the open page (every rule axe runs by default)."""
        self.driver.execute_script(source)
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document).then(r => done(r.violations.map(v => ({id: v.id,"
            " impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))),"
            " e => done([{id: 'axe-crashed', help: String(e), nodes: []}]));"
        )


# Measured in the page: an element sticks out when its right edge passes the viewport's, unless
# an ancestor scrolls sideways by itself (a wide table in its own overflow-x box).
LAYOUT_JS = """
const vw = window.innerWidth;
const scroller = el => {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === 'auto' || o === 'scroll') return p;
  }
  return null;
};
const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
  (el.classList.length ? '.' + [...el.classList].join('.') : '');
const sticking = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > vw + 0.5 && !scroller(el))
    sticking.push(name(el) + ' right=' + Math.round(r.right));
}
const badges = [];
for (const b of document.querySelectorAll('.badge')) {
  const r = b.getBoundingClientRect(), p = b.parentElement.getBoundingClientRect();
  const clipped = b.scrollWidth > b.clientWidth + 0.5 || r.right > p.right + 0.5 ||
    (!scroller(b) && r.right > vw + 0.5);
  if (clipped) badges.push(b.textContent.trim() + ' in ' + name(b.parentElement));
}
const scrolling = [...document.querySelectorAll('*')]
  .filter(el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX) &&
                el.scrollWidth > el.clientWidth + 0.5)
  .map(el => name(el.closest('section') || el));
const images = [...document.images].map(i => ({alt: i.alt, natural: i.naturalWidth,
  shown: i.getBoundingClientRect().width}));
return {width: document.documentElement.scrollWidth, viewport: vw, sticking, badges,
        scrolling, images};
"""


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


@pytest.fixture(scope="module")
def axe_source() -> str | None:
    """axe-core's script; None when it is not installed (the test then checks the layout and
    is skipped for axe), and a failure in CI, which must run it."""
    if not AXE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{AXE_INSTALL}: CI must run the accessibility checks (.ci/run does)")
        return None
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def every_page(sample, tmp_path_factory) -> dict[str, Path]:
    """Every kind of page: the sample class's feedback pages and report in Spanish and English,
    and those of a crafted class whose student trained a model (learning curves)."""
    import autograder.core
    from tests.test_feedback import build_class

    graded, paths, report = sample
    out = tmp_path_factory.mktemp("every-page")
    english = write_feedback(graded.course, AID, language="en", feedback_dir=out / "en")
    report_en = write_report(
        graded.course, AID, language="en", path=out / "report_en.html", feedback_dir=out / "en"
    )
    trained = make_course(out / "trained")
    build_class(trained)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(autograder.core, "grade", lambda *a, **k: pytest.fail("reference regraded"))
        trained_paths = write_feedback(trained, AID)
    student = lambda path: path.parent.parent.name  # noqa: E731 - <student>/<assignment>/x.html
    return {
        **{f"feedback_{student(p)}": p for p in paths},
        "report": report,
        **{f"feedback_{student(p)}_en": p for p in english},
        "report_en": report_en,
        **{f"trained_{student(p)}": p for p in trained_paths},
        "trained_report": write_report(trained, AID),
    }


def layout_problems(browser: Browser, width: int, student_page: bool) -> list[str]:
    """Why the open page does not fit a ``width`` px screen (``[]`` when it does)."""
    shown = browser.layout()
    found = []
    if shown["width"] > shown["viewport"]:
        found.append(f"the page is {shown['width']} px wide in a {width} px window")
    found += [f"sticks out: {e}" for e in shown["sticking"][:5]]
    found += [f"badge clipped: {b}" for b in shown["badges"]]
    if student_page:  # a student's page fits as it is: not even a table scrolls sideways
        found += [f"scrolls sideways: {e}" for e in shown["scrolling"]]
    for image in shown["images"]:
        # the plot's smallest text (MIN_FONT_PT on a figure of natural/DPI inches), as shown
        font = plots.MIN_FONT_PT / 72 * plots.DPI * image["shown"] / max(image["natural"], 1)
        if font < MIN_PLOT_FONT_PX:
            found.append(f"plot text {font:.1f} CSS px high: {image['alt'][:60]}")
        sharp = 2 if width <= PHONE else 1  # a phone's screen has 2-3 pixels per CSS px
        if image["natural"] < sharp * image["shown"]:
            found.append(f"plot of {image['natural']} px shown at {image['shown']:.0f} CSS px")
        if width <= PHONE and image["shown"] < MIN_PHONE_PLOT_PX:
            found.append(f"plot only {image['shown']:.0f} px wide: {image['alt'][:60]}")
    return found


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_every_page_fits_a_desktop_and_a_phone_and_passes_axe(
    axe_source, browser, every_page, width
):
    """No page overflows sideways, no badge is clipped, plots stay legible and axe-core finds
    no violation, at 1280 px and at 390 px; screenshots of both are saved."""
    problems: dict[str, list[str]] = {}
    shots = []
    try:
        browser.resize(width)
        for name, path in every_page.items():
            browser.open(path)
            found = layout_problems(browser, width, student_page="report" not in name)
            found += [
                f"axe {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
                for v in (browser.axe(axe_source) if axe_source else [])
            ]
            if found:
                problems[name] = found
            shots.append(browser.screenshot(f"{width}px_{name}", width))
    finally:
        browser.resize(WIDTH)
        print(f"\nscreenshots at {width} px:", *shots, sep="\n  ")
    assert not problems, problems
    if axe_source is None:
        pytest.skip(f"the layout fits; accessibility not checked: {AXE_INSTALL}")


def test_the_report_speaks_to_the_instructor(browser, sample):
    """What the students were told is quoted as such; everything else is said to the
    instructor (no "your answer cell", no "fix it and run it again")."""
    _, _, report = sample
    browser.open(report)
    own = browser.driver.execute_script(
        "const page = document.body.cloneNode(true);"
        "page.querySelectorAll('q.said').forEach(q => q.remove());"
        "return page.textContent.replace(/\\s+/g, ' ');"
    )
    for student_words in STUDENT_WORDS["es"]:
        assert not re.search(student_words, own, re.I), student_words
    errors = browser.text("#errors")
    assert "La celda de respuesta ans_steps_lr_01 del estudiante terminó con un error" in errors
    assert "Se pidió al estudiante que lo descargue de nuevo" in errors
    quoted = [q.text for q in browser.find_all("#checks q.said")]
    assert any("Corrígelo" in q for q in quoted), "the student's own words are quoted"


# Words said to a student, never to the instructor reading the report
STUDENT_WORDS = {
    "es": (
        r"\btu (respuesta|celda|cuaderno|profesor|entrega)",
        r"\bcorr[ií]gelo\b",
        r"\bdesc[aá]rgalo\b",
        r"\bvuelve a entregarlo\b",
        r"\b(tu|te) has\b",
    ),
    "en": (
        r"\byour (answer|cell|notebook|instructor|submission)",
        r"\bfix it and\b",
        r"\byou are one step off\b",
    ),
}


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
    panels = assert_images_loaded(browser, 4)
    assert [p["alt"].split(" ", 2)[:2] for p in panels] == [["Curva", f"{x}."] for x in "ABCD"]
    assert "Tu etiqueta: «sobreajuste», correcta." in panels[1]["alt"]
    assert all(p["width"] >= 600 for p in panels)

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
    assert histogram["alt"].startswith(
        f"Histograma de las notas de {len(graded.students)} estudiantes, de 0 a 8 puntos: media"
    )
    assert histogram["width"] >= 500
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
    shown = assert_images_loaded(browser, 6)  # four labelled curves, hers and the reference's
    mine = next(i for i in shown if i["alt"].startswith("Tu entrenamiento: 60 épocas."))
    assert (
        "La línea roja discontinua marca dónde se detuvo el entrenamiento: la época 60."
        in (mine["alt"])
    )
    assert "es mayor que la de la solución de referencia" in mine["alt"]
    assert any(i["alt"].startswith("Solución de referencia: 70 épocas.") for i in shown)
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
