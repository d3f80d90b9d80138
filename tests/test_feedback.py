"""Student feedback and class report, rendered from crafted results and artifacts (fast: no
kernel, no training). The browser test (``test_feedback_browser.py``) renders the real sample
class."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

import pytest

from autograder import messages
from autograder.batch import results_path
from autograder.check import failed_cells
from autograder.feedback import (
    FIGURES,
    Text,
    feedback_path,
    md,
    questions_from_release,
    ui_strings,
    write_feedback,
)
from autograder.plots import TrainingCurves, diagnose, read_trainings
from autograder.report import check_stats, report_path, write_report
from autograder.results import AssignmentResult, CellResult, CheckResult, Note, StudentResult
from dlcourse.capture import describe

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"
POINTS = {
    "test_steps_lr_003": 1.0,
    "test_steps_lr_01": 1.0,
    "test_lr_1_outcome": 1.0,
    "test_goldilocks_lr": 1.0,
    "test_step_size": 1.0,
    "test_steps_per_epoch": 1.0,
    "test_curve_labels": 2.0,
}
LANGS = ("es", "en")
TEMPLATES = Path(__file__).resolve().parents[1] / "autograder" / "templates"

# Text that exists only in the hidden test cells or the solutions: never in any feedback page.
HIDDEN_MARKERS = (
    "BEGIN HIDDEN",
    "END HIDDEN",
    "HIDDEN TESTS",
    "capture.answers",
    "BEGIN SOLUTION",
    "CURVE.curvature",
    "n_train() / 256",
    "globals()",
)


# --- crafting a graded class -----------------------------------------------------------------


def check(cid: str, outcome: str, message_id: str, points: float, **params) -> CheckResult:
    """A check as the checkers' plugin stores it; a ``Note`` parameter (why a cell never ran)
    is rendered in each language, as ``autograder.check`` does."""
    texts = {
        lang: messages.render(
            message_id,
            {k: v.text(lang) if isinstance(v, Note) else v for k, v in params.items()},
            lang,
        )
        for lang in messages.LANGUAGES
    }
    params = {k: v.text("en") if isinstance(v, Note) else v for k, v in params.items()}
    passed = outcome == "passed"
    return CheckResult(
        id=cid,
        passed=passed,
        message=texts["es"],
        message_id=message_id,
        params=params,
        messages=texts,
        hint=None if passed else messages.render_hint(message_id, params, "es"),
        outcome=outcome,
        points=points if passed else 0.0,
        max_points=points,
    )


def cell(*checks: CheckResult) -> CellResult:
    return CellResult(
        score=sum(c.points for c in checks),
        max_score=sum(c.max_points for c in checks),
        checks=list(checks),
    )


def student(sid: str, cells: dict[str, CellResult], **kw) -> StudentResult:
    kw.setdefault("timing", {"execute": 2.0, "check": 0.3, "total": 2.3, "wall": 2.3})
    return StudentResult(
        student=sid,
        assignment=AID,
        status=kw.pop("status", "graded"),
        error=kw.pop("error", None),
        score=sum(c.score for c in cells.values()),
        max_score=8.0,
        cells=cells,
        notebook=NOTEBOOK,
        **kw,
    )


def labels(outcomes: dict[str, str], found: dict[str, str]) -> CellResult:
    out = []
    for panel in "ABCD":
        if outcomes[panel] == "passed":
            out.append(
                check(f"curve_labels[{panel}]", "passed", "curve_label.correct", 0.5, panel=panel)
            )
        elif outcomes[panel] == "not_attempted":
            out.append(
                check(
                    f"curve_labels[{panel}]",
                    "not_attempted",
                    "not_attempted",
                    0.5,
                    name="curve_labels",
                )
            )
        else:
            out.append(
                check(
                    f"curve_labels[{panel}]",
                    "failed",
                    "curve_label.wrong",
                    0.5,
                    panel=panel,
                    found=found[panel],
                )
            )
    return cell(*out)


def ana() -> StudentResult:
    """Wrong in the classic ways (like the sample class's ``partial``)."""
    return student(
        "ana",
        {
            "test_steps_lr_003": cell(
                check(
                    "steps_lr_003",
                    "failed",
                    "steps.off_by_one",
                    1,
                    name="steps_lr_003",
                    lr=0.03,
                    exercise=1,
                )
            ),
            "test_steps_lr_01": cell(
                check(
                    "steps_lr_01",
                    "failed",
                    "steps.wrong",
                    1,
                    name="steps_lr_01",
                    found=7,
                    lr=0.1,
                    exercise=2,
                )
            ),
            "test_lr_1_outcome": cell(
                check("lr_1_outcome", "failed", "lr_outcome.wrong", 1, found="b")
            ),
            "test_goldilocks_lr": cell(check("goldilocks_lr", "passed", "goldilocks.correct", 1)),
            "test_step_size": cell(check("step_size", "failed", "step_size.divided", 1)),
            "test_steps_per_epoch": cell(
                check(
                    "steps_per_epoch", "not_attempted", "not_attempted", 1, name="steps_per_epoch"
                )
            ),
            "test_curve_labels": labels(
                {"A": "failed", "B": "passed", "C": "passed", "D": "failed"},
                {"A": "tasa_correcta", "D": "tasa_baja"},
            ),
        },
        problems=["locked cell test_step_size was modified; the original was restored"],
        notes=[Note("note.locked_modified", {"cell": "test_step_size"}).to_dict()],
    )


ANA_ANSWERS = {
    "steps_lr_003": 46,
    "steps_lr_01": 7,
    "lr_1_outcome": "b",
    "goldilocks_lr": 1 / 3.4,
    "step_size": 250.0,
    "steps_per_epoch": Ellipsis,
    "curve_labels": {"A": "tasa_correcta", "B": "sobreajuste", "C": "tasa_alta", "D": "tasa_baja"},
}


def bob() -> StudentResult:
    """A corrupt upload: nothing could be graded."""
    reason = Note("submission.not_json")
    return student(
        "bob",
        failed_cells(POINTS, "submission_error", reason),
        status="error",
        error=reason.text("en"),
        error_note=reason.to_dict(),
        timing={"total": 0.01, "wall": 0.01},
    )


def eve() -> StudentResult:
    """Everything right; her notebook also trained a model (a history was captured)."""
    full = {
        gid: cell(check(gid.removeprefix("test_"), "passed", "ok", pts))
        for gid, pts in POINTS.items()
        if gid != "test_curve_labels"
    }
    full["test_curve_labels"] = labels(dict.fromkeys("ABCD", "passed"), {})
    return student("eve", full, timing={"execute": 9.5, "check": 0.4, "total": 9.9, "wall": 9.9})


def tim() -> StudentResult:
    """The notebook ran out of time at the step-size cell: the rest was never executed."""
    reason = Note("run.timeout", {"seconds": "300"})
    cells = {}
    for gid, pts in POINTS.items():
        name = gid.removeprefix("test_")
        if gid in ("test_steps_lr_003", "test_steps_lr_01"):
            cells[gid] = cell(check(name, "passed", "ok", pts))
        elif gid == "test_step_size":
            cells[gid] = cell(
                check(name, "failed", "answer_cell_timeout", pts, name=name, seconds=120)
            )
        elif gid == "test_curve_labels":
            cells[gid] = cell(
                *[
                    check(
                        f"curve_labels[{p}]", "failed", "not_executed", 0.5, cell=gid, reason=reason
                    )
                    for p in "ABCD"
                ]
            )
        else:
            cells[gid] = cell(check(name, "failed", "not_executed", pts, cell=gid, reason=reason))
    return student(
        "tim",
        cells,
        status="error",
        error=reason.text("en"),
        error_note=reason.to_dict(),
        timing={"execute": 300.2, "check": 0.3, "total": 300.6, "wall": 300.6},
    )


def overfit_history(epochs: int = 60, best: int = 38) -> dict:
    """Loss keeps falling; val_loss bottoms out at epoch ``best + 1`` and climbs afterwards."""
    loss = [0.30 * math.exp(-0.08 * e) + 0.05 for e in range(epochs)]
    val = [0.32 * math.exp(-0.08 * e) + 0.09 + 0.004 * max(0, e - best) for e in range(epochs)]
    return {
        "history": {"loss": loss, "val_loss": val},
        "params": {"epochs": 500, "steps": 5},
        "early_stopping": {"best_epoch": best, "stopped_epoch": epochs - 1, "monitor": "val_loss"},
    }


def keras_capture(history: dict, attached: bool = True) -> dict:
    """``history`` in the layout of ``keras_capture.capture_training`` (keras/training.json)."""
    state = {
        "stopped_epoch": history["early_stopping"]["stopped_epoch"],
        "best_epoch": history["early_stopping"]["best_epoch"],
        "wait": 20,
        "best": 0.1,
        "attached": attached,
        "attached_to_model": attached,
    }
    return {
        "model_name": "model",
        "history_name": "history",
        "callback_name": "early_stopping",
        "history_present": True,
        "history": {
            "type": "keras.src.callbacks.history.History",
            "is_history": True,
            "history": history["history"],
            "params": history["params"],
            "epoch": list(range(len(history["history"]["loss"]))),
            "model_is_model": True,
            "has_model": True,
        },
        "callback_present": True,
        "callback": {
            "type": "keras.src.callbacks.early_stopping.EarlyStopping",
            "is_callback": True,
            "is_early_stopping": True,
            "settings": {
                "monitor": "val_loss",
                "min_delta": 0.001,
                "patience": 20,
                "restore_best_weights": True,
            },
            "state": state,
        },
        "other_early_stopping": [],
    }


def reference_history(epochs: int = 70) -> dict:
    loss = [0.30 * math.exp(-0.09 * e) + 0.06 for e in range(epochs)]
    val = [0.31 * math.exp(-0.09 * e) + 0.092 + 0.0005 * max(0, e - 50) for e in range(epochs)]
    return {
        "history": {"loss": loss, "val_loss": val},
        "params": {"epochs": 500, "steps": 5},
        "early_stopping": {"best_epoch": 49, "stopped_epoch": 69},
    }


def write_answers(folder: Path, answers: dict) -> None:
    (folder / "answers").mkdir(parents=True, exist_ok=True)
    for name, value in answers.items():
        (folder / "answers" / f"{name}.json").write_text(
            json.dumps({"name": name, "present": True, "value": describe(value)})
        )


def build_class(course) -> AssignmentResult:
    """Results, artifacts, an executed notebook holding hidden tests, and a cached reference."""
    results = AssignmentResult(AID, {s.student: s for s in (ana(), bob(), eve(), tim())})
    results.write_json(results_path(course, AID))
    for sid in results.students:
        work = course.autograded_dir / sid / AID
        (work / "artifacts").mkdir(parents=True)
        (work / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
        # what the executed notebook holds: the feedback must never read or show it
        (work / NOTEBOOK).write_text(
            json.dumps(
                {
                    "cells": [
                        {
                            "source": (
                                "### BEGIN HIDDEN TESTS\ncapture.answers(globals(), 'steps_lr_003')\n"
                                "assert steps_lr_003 == 45\n### END HIDDEN TESTS"
                            )
                        }
                    ]
                }
            )
        )
    write_answers(course.autograded_dir / "ana" / AID / "artifacts", ANA_ANSWERS)
    eve_artifacts = course.autograded_dir / "eve" / AID / "artifacts"
    write_answers(
        eve_artifacts,
        {
            "steps_lr_003": 45,
            "curve_labels": {
                "A": "tasa_baja",
                "B": "sobreajuste",
                "C": "tasa_alta",
                "D": "tasa_correcta",
            },
        },
    )
    (eve_artifacts / "keras").mkdir()
    (eve_artifacts / "keras" / "training.json").write_text(
        json.dumps(keras_capture(overfit_history()))
    )
    # the reference solution's capture, cached as if graded already (stamped with the source)
    ref = course.state_dir / "reference" / AID
    (ref / "artifacts").mkdir(parents=True)
    (ref / "artifacts" / "history.json").write_text(json.dumps(reference_history()))
    from autograder.reference import DIGEST_FILE, RESULT_FILE, reference_digest
    from autograder.results import student_to_dict

    (ref / RESULT_FILE).write_text(json.dumps(student_to_dict(eve())))
    (ref / DIGEST_FILE).write_text(reference_digest(course, AID))
    return results


# --- reading what a person sees ---------------------------------------------------------------


def visible_text(page: str) -> str:
    """The page's text as a reader sees it: no style, no tags, no image data."""
    page = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def section(page: str, element_id: str) -> str:
    """The visible text of the element with ``id=element_id`` (an article or section)."""
    match = re.search(rf'<(article|section)[^>]*id="{re.escape(element_id)}".*?</\1>', page, re.S)
    assert match, f"no element #{element_id}"
    return visible_text(match.group(0))


def images(page: str) -> list[bytes]:
    return [
        base64.b64decode(data)
        for data in re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    ]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class Rendered:
    """The crafted class rendered once per module: feedback and report, in both languages."""

    def __init__(self, course, results):
        self.course = course
        self.results = results
        self.dirs = {"es": course.feedback_dir, "en": course.state_dir / "feedback_en"}
        self.paths = {
            "es": write_feedback(course, AID),
            "en": write_feedback(course, AID, language="en", feedback_dir=self.dirs["en"]),
        }
        self.report = {
            "es": write_report(course, AID),
            "en": write_report(
                course,
                AID,
                language="en",
                path=course.state_dir / "reports" / "report_en.html",
                feedback_dir=self.dirs["en"],
            ),
        }

    def page(self, sid: str, language: str = "es") -> str:
        return feedback_path(self.dirs[language], sid, AID, NOTEBOOK).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    import autograder.core
    from tests.conftest import make_course

    def no_grading(*args, **kwargs):
        raise AssertionError("the cached reference must be reused, not graded again")

    course = make_course(tmp_path_factory.mktemp("feedback") / "state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(autograder.core, "grade", no_grading)
        return Rendered(course, build_class(course))


# --- student feedback -----------------------------------------------------------------------


def test_one_page_per_student_in_nbgraders_layout(rendered):
    course, results = rendered.course, rendered.results
    assert sorted(rendered.paths["es"]) == sorted(
        course.feedback_dir / sid / AID / "learning_rate.html" for sid in results.students
    )
    assert all(p.is_file() for p in rendered.paths["es"])


def test_spanish_feedback_shows_scores_messages_and_hints(rendered):
    page = rendered.page("ana")
    text = visible_text(page)
    assert '<html lang="es">' in page
    assert re.search(r'id="score">\s*2 / 8\s*<', page)
    assert "Corrección: lesson4_learning_rate" in text and "ana" in text
    assert "Entregado: 2026-11-20 10:00:00 UTC" in text
    q1 = section(page, "q-test_steps_lr_003")
    assert "Pregunta 1: steps_lr_003" in q1 and "Pregunta 1: Ejercicio" not in q1
    assert "Incorrecto" in q1 and "te has desviado en un paso" in q1
    assert "Pista: Pulsa RESET, pon el learning rate 0.03" in q1
    assert "Tu respuesta: 46" in q1
    assert "No intentada" in section(page, "q-test_steps_per_epoch")
    assert "Correcto" in section(page, "q-test_goldilocks_lr")
    summary = section(page, "summary")
    assert "Sin puntos" in summary and "Completa" in summary and "Parcial" in summary
    # the question titles come from the release notebook, not from code comments in it
    assert "Épocas, lotes y pasos de gradiente" in summary
    assert "split the dataset" not in summary
    notes = section(page, "notes")  # the pipeline's English note, in the course language
    assert "La celda bloqueada test_step_size estaba modificada" in notes


def test_english_is_one_setting_away(rendered):
    page = rendered.page("ana", "en")
    text = visible_text(page)
    assert '<html lang="en">' in page
    assert "Feedback: lesson4_learning_rate" in text and "Score per question" in text
    q1 = section(page, "q-test_steps_lr_003")
    assert "Incorrect" in q1 and "you are one step off" in q1
    assert "Hint: Press RESET, set the learning rate to 0.03" in q1
    assert "Your answer: 46" in q1
    assert "Not attempted" in section(page, "q-test_steps_per_epoch")
    for spanish in ("Pregunta", "Tu respuesta", "Pista", "Incorrecto", "puntos"):
        assert spanish not in text, spanish


def test_error_submission_shows_the_reason_first(rendered):
    page = rendered.page("bob")
    alert = section(page, "error")
    assert "No se pudo calificar tu entrega" in alert
    assert "El archivo no es un cuaderno de Jupyter válido: no es JSON" in alert
    assert "vuelve a entregar" in alert
    assert page.index('id="error"') < page.index('id="summary"')
    assert 'id="details"' not in page  # seven copies of the same reason help nobody
    assert "0 / 8" in visible_text(page)


def test_timeout_shows_the_reason_and_what_was_graded(rendered):
    page = rendered.page("tim")
    alert = section(page, "error")
    assert "superó su tiempo límite de 300 s" in alert
    assert "Se ha calificado lo que llegó a ejecutarse" in alert
    assert "superó el tiempo límite de 120 s" in section(page, "q-test_step_size")
    labels_section = section(page, "q-test_curve_labels")
    assert (
        "no llegó a ejecutarse (el cuaderno superó su tiempo límite de 300 s y se detuvo)"
        in labels_section
    )
    assert labels_section.count("no llegó a ejecutarse") == 1 and "×4" in labels_section
    assert re.search(r'id="score">\s*2 / 8\s*<', page)


def test_no_hidden_test_code_or_expected_answer_in_any_page(rendered):
    for path in [*rendered.paths["es"], *rendered.paths["en"], *rendered.report.values()]:
        page = path.read_text(encoding="utf-8")
        for marker in HIDDEN_MARKERS:
            assert marker not in page, (path, marker)
    page = rendered.page("ana")
    # ana got these wrong: the expected values must not appear where she reads about them
    assert not re.search(r"\b45\b", section(page, "q-test_steps_lr_003"))
    assert not re.search(r"\b12\b", section(page, "q-test_steps_lr_01"))
    assert "0.025" not in section(page, "q-test_step_size")
    assert '"c"' not in section(page, "q-test_lr_1_outcome")
    labels_section = section(page, "q-test_curve_labels")
    # her own labels are shown; the right label of a panel she got wrong is not
    assert "tasa_correcta" in labels_section
    assert not re.search(r"Curva A:? \W*tasa_baja", labels_section)


def test_pages_are_self_contained_and_inert(rendered):
    for path in rendered.paths["es"] + rendered.paths["en"]:
        page = path.read_text(encoding="utf-8")
        assert "Content-Security-Policy" in page and "default-src 'none'" in page
        assert "<script" not in page.lower()
        for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
            assert ref.startswith(("data:image/png;base64,", "#")), ref


def test_student_values_are_escaped(course):
    hostile = "<script>alert('x')</script>"
    result = student(
        "mallory",
        {
            gid: cell(
                check(gid.removeprefix("test_"), "failed", "step_size.wrong", pts, found=hostile)
            )
            for gid, pts in POINTS.items()
        },
    )
    AssignmentResult(AID, {"mallory": result}).write_json(results_path(course, AID))
    write_answers(course.autograded_dir / "mallory" / AID / "artifacts", {"step_size": hostile})
    report = write_report(course, AID).read_text(encoding="utf-8")
    assert "sin generar" in visible_text(report)  # no feedback page yet: said, no broken link
    page = write_feedback(course, AID)[0].read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_the_course_language_setting_switches_the_pages(course):
    AssignmentResult(AID, {"bob": bob()}).write_json(results_path(course, AID))
    course.language = "en"  # c.Course.language = "en" in course_config.py
    page = write_feedback(course, AID)[0].read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "Your submission could not be graded" in page
    assert "Class report" in write_report(course, AID).read_text(encoding="utf-8")


def test_pipeline_texts_are_data_rendered_in_the_readers_language():
    from autograder.results import Note, error_text, note_texts

    empty = Note("submission.empty").to_dict()
    assert error_text(empty, "the file is empty", "es") == "El archivo está vacío"
    assert error_text(empty, "the file is empty", "en") == "The file is empty"
    renamed = Note(
        "submission.no_notebook", {"notebook": "learning_rate.ipynb", "found": "lr.ipynb"}
    ).to_dict()
    assert error_text(renamed, None, "es") == (
        "No se entregó ningún cuaderno llamado `learning_rate.ipynb` (se encontró lr.ipynb: "
        "¿le cambiaste el nombre?)"
    )
    # a results file written before notes existed: its own text, as written
    assert error_text(None, "something new went wrong", "es") == "Something new went wrong"
    deleted = [Note("note.deleted", {"cell": "ans_x"}).to_dict()]
    assert note_texts(deleted, ["answer cell ans_x was deleted"], "es") == [
        "La celda de respuesta `ans_x` fue borrada; cuenta como no intentada"
    ]


def test_md_renders_code_and_bold_only_after_escaping():
    assert md("use `pg.reset(1.0)` **now** <b>") == (
        "use <code>pg.reset(1.0)</code> <strong>now</strong> &lt;b&gt;"
    )


def test_curve_labels_figure_shows_the_students_labels(rendered):
    page = rendered.page("ana")
    figure = section(page, "q-test_curve_labels")
    assert "Tus etiquetas sobre las curvas" in figure
    pngs = images(re.search(r'id="q-test_curve_labels".*?</article>', page, re.S).group(0))
    assert len(pngs) == 4 and all(png_size(p)[0] > 400 for p in pngs)  # one panel a curve
    assert ("lesson4_learning_rate", "test_curve_labels") in FIGURES
    # a student who labelled nothing gets no figure
    assert "<img" not in rendered.page("bob")


def test_learning_curves_beside_the_reference_with_diagnosis(rendered):
    page = rendered.page("eve")
    text = visible_text(page)
    assert "Tus curvas de aprendizaje" in text
    assert "solución de referencia" in text
    assert "60 épocas entrenadas; mejor época: 39" in text
    assert "El early stopping detuvo el entrenamiento en la época 60." in text
    assert "Sobreajuste a partir de la época 39" in text
    sizes = [png_size(p) for p in images(page)]
    assert len(sizes) == 6  # four labelled curves, then her training and the reference's
    assert all(w >= 600 for w, _ in sizes)

    text = visible_text(rendered.page("eve", "en"))
    assert "Your learning curves" in text and "Overfitting from epoch 39" in text
    assert "60 epochs trained; best epoch: 39" in text


def alts(page: str) -> list[str]:
    return [html.unescape(a) for a in re.findall(r'<img[^>]+alt="([^"]*)"', page)]


def test_plot_alt_texts_say_what_the_plot_shows(rendered):
    """Not the title again: the curves, which is lower, where training stopped, the numbers."""
    eve = alts(rendered.page("eve"))
    mine, reference = eve[4], eve[5]
    assert mine.startswith("Tu entrenamiento: 60 épocas. La pérdida de entrenamiento baja de ")
    assert "La de validación es mínima en la época 39 (0.105)" in mine
    assert "por encima de la de entrenamiento" in mine
    assert "La estrella verde marca la mejor época, la 39." in mine
    assert "se detuvo el entrenamiento: la época 60." in mine
    assert "Tu menor val_loss (0.105) es mayor que la de la solución de referencia (0.0954)." in (
        mine
    )
    assert reference.startswith("Solución de referencia: 70 épocas.")
    assert "la época 70." in reference and "Tu menor" not in reference
    english = alts(rendered.page("eve", "en"))[4]
    assert english.startswith("Your training: 60 epochs. The training loss falls from ")
    assert "The validation loss is lowest at epoch 39 (0.105)" in english

    # the labelled curves: what each curve does and the student's label, never the expected one
    # (ana labelled A "tasa_correcta", wrong: A is "tasa_baja"; D "tasa_baja", wrong)
    ana = alts(rendered.page("ana"))
    assert [a.split(".")[0] for a in ana] == ["Curva A", "Curva B", "Curva C", "Curva D"]
    assert ana[0].endswith("Tu etiqueta: «tasa_correcta», incorrecta.")
    assert ana[1].endswith("Tu etiqueta: «sobreajuste», correcta.")
    assert "tasa_baja" not in ana[0] and "tasa_correcta" not in ana[3]
    assert "La de validación es mínima en la época 33" in ana[1]
    for title in ("Tus etiquetas sobre las curvas", "Tus curvas de aprendizaje"):
        assert title not in eve + ana

    report = alts(rendered.report["es"].read_text(encoding="utf-8"))
    assert report == [
        # bob 0, ana 2, tim 2, eve 8
        "Histograma de las notas de 4 estudiantes, de 0 a 8 puntos: media 3.00, mediana 2. "
        "La nota más frecuente es 2 (2 estudiantes); 1 con la nota máxima y 1 con 0."
    ]


def test_every_plot_text_is_legible_on_a_phone():
    """Each figure is one panel ``PANEL_WIDTH`` inches wide at most whose smallest text is
    ``MIN_FONT_PT``: shown 340 CSS px wide (a 390 px phone), that text is 10 CSS px high."""
    from matplotlib.text import Text as MplText

    from autograder import plots
    from dlcourse.playground import learning_curves

    text = Text("es")
    run = read_trainings_from(overfit_history())
    ref = read_trainings_from(reference_history())
    train, valid = learning_curves()["B"]
    with plots._style():
        figures = [
            plots.training_panel_figure(run, "Tu entrenamiento", text, plots._y_limits([run])),
            plots.training_panel_figure(ref, "Solución de referencia", text, None),
            plots.label_panel_figure("B", train, valid, "sobreajuste", True, text, None),
            plots.score_histogram_figure([0, 3.5, 8, 8], 8, text),
        ]
    for fig in figures:
        fig.canvas.draw()
        width = fig.get_size_inches()[0]
        assert width <= 4.8
        for artist in fig.findobj(MplText):
            if artist.get_visible() and artist.get_text().strip():
                assert artist.get_fontsize() >= plots.MIN_FONT_PT, artist.get_text()
                shown = plots.MIN_FONT_PT / 72 * 340 / width  # CSS px on the phone
                assert shown >= 9.5
    # a page gets every panel as its own image, with its size, so a phone stacks them
    panels = plots.learning_curves_plots(run, ref, text)
    assert len(panels) == 2 and {p.width for p in panels} == {round(plots.PANEL_WIDTH * 100)}


def read_trainings_from(history: dict) -> TrainingCurves:
    from autograder.plots import _parse_training

    return _parse_training("history", history, history["early_stopping"])


def headings(page: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])\b", page)]


def test_headings_never_skip_a_level(rendered):
    """axe's heading-order: h1, then h2, h3... (the report's histogram title was an h4)."""
    pages = [rendered.report["es"].read_text(encoding="utf-8")] + [
        rendered.page(sid, language) for sid in rendered.results.students for language in LANGS
    ]
    for page in pages:
        levels = headings(page)
        assert levels[0] == 1 and levels.count(1) == 1, levels
        for before, after in zip(levels, levels[1:], strict=False):
            assert after <= before + 1, levels


def test_the_report_speaks_to_the_instructor(rendered):
    """The students' own messages are quoted as such (``<q class="said">``); every other text
    of the report, errors included, is said to the instructor."""
    student_words = {
        "es": r"\btu (respuesta|celda|cuaderno|profesor|entrega)|\bcorr[ií]gelo|desc[aá]rgalo|"
        r"vuelve a entregarlo|\btu profesor",
        "en": r"\byour (answer|cell|notebook|instructor|submission)|\bfix it\b|\bresubmit\.?$",
    }
    for language in LANGS:
        page = rendered.report[language].read_text(encoding="utf-8")
        own = visible_text(re.sub(r'<q class="said">.*?</q>', " ", page, flags=re.S))
        found = re.findall(student_words[language], own, re.I)
        assert not found, (language, found)
    errors = section(rendered.report["es"].read_text(encoding="utf-8"), "errors")
    assert "Se pidió al estudiante que lo descargue de nuevo desde Jupyter" in errors
    assert "La celda de respuesta ans_step_size del estudiante superó el tiempo límite" in errors
    checks = rendered.report["es"].read_text(encoding="utf-8")
    assert re.search(r'<q class="said">[^<]*te has desviado en un paso', checks)


def test_every_instructor_text_takes_the_students_message_parameters():
    """``report.instructor.<id>`` retells message ``<id>``: rendered with its parameters."""
    from autograder.report import INSTRUCTOR_TEXTS, for_instructor

    entries = messages.catalogue()
    retold = [k for k in entries if k.startswith(INSTRUCTOR_TEXTS)]
    assert len(retold) >= 10
    for key in retold:
        original = key.removeprefix(INSTRUCTOR_TEXTS)
        assert original in entries, key
        for language in LANGS:
            assert _fields(entries[key][language]) <= _fields(entries[original][language]), key
    assert for_instructor("ok", {}, "es", "as it was") == "as it was"
    assert for_instructor("answer_cell_error", {}, "es", "as it was") == "as it was"


def test_reference_is_graded_once_and_cached(course, monkeypatch):
    import autograder.core
    from autograder.feedback import reference_trainings

    calls = []

    def fake_grade(source, assignment, settings, *, student, workdir, launcher=None):
        calls.append(student)
        (Path(workdir) / "artifacts").mkdir(parents=True, exist_ok=True)
        (Path(workdir) / "artifacts" / "history.json").write_text(json.dumps(reference_history()))
        return eve()

    monkeypatch.setattr(autograder.core, "grade", fake_grade)
    first = reference_trainings(course, AID)
    second = reference_trainings(course, AID)
    assert calls == ["__reference__"]
    assert first["history"].best_epoch == 50 and second["history"].epochs == 70


# --- learning curves and diagnosis ----------------------------------------------------------


def test_read_trainings_converts_keras_epochs_to_one_based(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps(overfit_history(epochs=60, best=38)))
    curves = read_trainings(tmp_path)["history"]
    assert curves.epochs == 60 and curves.best_epoch == 39 and curves.stopped_epoch == 60
    assert curves.epochs_limit == 500 and curves.marked_stop_epoch == 60


def test_read_trainings_reads_the_keras_capture_layout(tmp_path):
    (tmp_path / "keras").mkdir()
    data = keras_capture(overfit_history(epochs=60, best=38))
    data["history"]["history"]["val_loss"][5] = None  # a non-finite loss is captured as null
    (tmp_path / "keras" / "training.json").write_text(json.dumps(data))
    curves = read_trainings(tmp_path)["history"]
    assert (curves.epochs, curves.best_epoch, curves.stopped_epoch) == (60, 39, 60)
    assert math.isnan(curves.val_loss[5]) and curves.monitor == "val_loss"
    # a callback that was not attached to the trained model says nothing about this run
    (tmp_path / "keras" / "training.json").write_text(
        json.dumps(keras_capture(overfit_history(), attached=False))
    )
    curves = read_trainings(tmp_path)["history"]
    assert curves.best_epoch is None and curves.stopped_epoch is None
    assert curves.marked_best_epoch == 39 and curves.marked_stop_epoch == 60  # from the data


def test_read_trainings_accepts_a_flat_history_and_a_separate_callback_file(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps({"loss": [3, 2, 1], "val_loss": [3, 2, 2]}))
    (tmp_path / "early_stopping.json").write_text(json.dumps({"best_epoch": 1, "stopped_epoch": 0}))
    curves = read_trainings(tmp_path)["history"]
    assert curves.best_epoch == 2 and curves.stopped_epoch is None  # 0: never stopped early
    assert curves.marked_stop_epoch is None


@pytest.mark.parametrize(
    "content", ['{"loss": "nope"}', "not json", '{"loss": [1, true]}', "[1, 2, 3]"]
)
def test_read_trainings_ignores_malformed_captures(tmp_path, content):
    (tmp_path / "history.json").write_text(content)
    assert read_trainings(tmp_path) == {}


def test_read_trainings_does_not_follow_symlinks(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"loss": [1.0, 0.5]}))
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "history.json").symlink_to(secret)
    assert read_trainings(tmp_path / "artifacts") == {}


def _panel(name: str) -> TrainingCurves:
    from dlcourse.playground import learning_curves

    train, valid = learning_curves()[name]
    return TrainingCurves("history", train, valid, epochs_limit=100)


def test_diagnosis_recognises_the_lessons_four_curve_shapes():
    # the panels students label in lesson 4.2: A too low, B overfitting, C too high, D right
    assert [d.id for d in diagnose(_panel("A"))] == ["underfitting_still_falling"]
    assert [d.id for d in diagnose(_panel("B"))] == ["overfitting"]
    assert [d.id for d in diagnose(_panel("C"))] == ["lr_too_high"]
    assert diagnose(_panel("D")) == []


def test_diagnosis_of_divergence_and_of_a_model_far_from_the_reference():
    diverged = TrainingCurves("history", [1.0, 3.0, float("nan"), float("nan")])
    assert diagnose(diverged)[0].id == "diverged" and diagnose(diverged)[0].params == {"epoch": 3}
    flat = [0.5 * math.exp(-0.3 * e) + 0.3 for e in range(40)]
    weak = TrainingCurves("history", flat, [v + 0.02 for v in flat])
    reference = TrainingCurves("history", [v / 3 for v in flat], [v / 3 + 0.01 for v in flat])
    assert [d.id for d in diagnose(weak, reference)] == ["underfitting_reference"]
    assert diagnose(weak) == []


# --- class report ---------------------------------------------------------------------------


def test_class_report(rendered):
    course, results, path = rendered.course, rendered.results, rendered.report["es"]
    assert path == report_path(course, AID) and path.is_file()
    assert course.feedback_dir not in path.parents  # nbgrader releases feedback/ to students
    page = path.read_text(encoding="utf-8")
    text = visible_text(page)
    assert "Informe de la clase: lesson4_learning_rate" in text
    (histogram,) = images(page)
    assert png_size(histogram)[0] > 300
    # checks: the most common mistakes first, with the messages behind them
    rows = re.findall(r'<code class="check-id">([^<]+)</code>', page)
    stats = check_stats(results, "es")
    assert rows == [s.check for s in stats]
    rates = [s.pass_rate for s in stats]
    assert rates == sorted(rates)
    assert rates[0] < rates[-1] and stats[0].counts["passed"] == 1
    checks = section(page, "checks")
    assert "te has desviado en un paso" in checks and "steps.off_by_one" in checks
    # students: relative links to each feedback page, which exist
    links = re.findall(r'<a class="feedback-link" href="([^"]+)"', page)
    assert len(links) == len(results.students)
    for link in links:
        assert not link.startswith(("/", "file:", "http"))
        assert (path.parent / link).resolve().is_file()
    # errors and timeouts
    errors = section(page, "errors")
    assert "bob" in errors and "no es un cuaderno de Jupyter válido" in errors
    assert "tim" in errors and "tiempo agotado" in errors and "límite de 300 s" in errors
    assert "ana" in errors and "cuaderno reparado" in errors
    # grading time per submission
    timing = section(page, "timing")
    assert "300.60" in timing and "Total 312.8 s" in timing
    for marker in HIDDEN_MARKERS:
        assert marker not in page


def test_class_report_in_english(rendered):
    text = visible_text(rendered.report["en"].read_text(encoding="utf-8"))
    assert "Class report: lesson4_learning_rate" in text
    assert "Checks: most common mistakes first" in text and "you are one step off" in text
    assert "Grading time per submission" in text
    assert "open" in text


def test_feedback_without_results_says_grade_first(course):
    from autograder.results import StageError

    for write in (write_feedback, write_report):
        with pytest.raises(StageError) as raised:
            write(course, AID)
        assert raised.value.note.id == "cli.not_graded"
        assert f"autograder grade {AID}" in raised.value.note.text("en")
        assert "califícala primero" in raised.value.note.text("es")


# --- strings --------------------------------------------------------------------------------


def _fields(text: str) -> set[str]:
    from jinja2 import Environment, meta

    return meta.find_undeclared_variables(Environment().parse(text))


def test_every_ui_string_exists_in_both_languages_with_the_same_fields():
    strings = ui_strings()
    assert len(strings) > 50
    for key, texts in strings.items():
        assert texts["es"].strip() and texts["en"].strip(), key
        assert _fields(texts["es"]) == _fields(texts["en"]), key


def test_every_string_the_code_uses_is_defined():
    strings = ui_strings()
    root = TEMPLATES.parent
    used = set()
    for path in [
        *TEMPLATES.glob("*.j2"),
        root / "feedback.py",
        root / "report.py",
        root / "plots.py",
    ]:
        used |= set(re.findall(r'\bt(?:ext)?\("([a-z_]+\.[a-z_.]+)"', path.read_text()))
    used |= {f"outcome.{o}" for o in ("passed", "failed", "not_attempted", "error")}
    used |= {f"cell.{s}" for s in ("full", "partial", "zero", "not_attempted")}
    used |= {
        f"diagnosis.{d}"
        for d in (
            "diverged",
            "lr_too_high",
            "overfitting",
            "underfitting_still_falling",
            "underfitting_reference",
        )
    }
    from autograder.report import CHECK_INCIDENTS, RUN_INCIDENTS

    used |= {
        "report.kind_submission",
        "report.kind_repaired",
        *CHECK_INCIDENTS.values(),
        *RUN_INCIDENTS.values(),
    }
    missing = sorted(used - set(strings))
    assert not missing, missing
    assert len(used) > 40


def test_text_rejects_unknown_language_and_key():
    with pytest.raises(ValueError):
        Text("fr")
    with pytest.raises(KeyError):
        Text("es")("no.such.key")


def test_question_titles_from_the_release_notebook(course):
    questions = questions_from_release(course.release_dir / AID / NOTEBOOK, list(POINTS))
    assert [q.number for q in questions] == list(range(1, 8))
    # "## Ejercicio 1" gives the number, and nothing to repeat as a title
    assert questions[0].name == "steps_lr_003" and questions[0].title is None
    assert questions[3].title == 'La tasa "justa" (Goldilocks)'


def test_graded_cells_without_an_answer_cell_take_the_heading_above_them(course):
    """Lesson 5 grades the model in two test cells (dropout, batch normalization) that follow
    one code task with no ``ans_`` cell: both are titled with that task's heading."""
    release = course.release_dir / "lesson5_dropout_batchnorm" / "dropout_batchnorm.ipynb"
    gids = ["test_dropout", "test_batchnorm", "test_history", "test_regularization_effect"]
    titles = {q.grade_id: q.title for q in questions_from_release(release, gids)}
    assert titles["test_dropout"] == titles["test_batchnorm"]
    assert titles["test_dropout"] == "el modelo"  # "Pregunta 1: el modelo (5 puntos)"
    assert titles["test_history"] == "entrenar"


def test_question_headings_never_repeat_the_number_or_the_points():
    """Seen on real pages: "Pregunta 1: Pregunta 1: …", and lesson 5's "Pregunta 2: batchnorm"
    under the notebook's "Pregunta 1: el modelo"."""
    from autograder.feedback import _heading_parts

    assert _heading_parts("Pregunta 1: el modelo (5 puntos)") == (1, "el modelo")
    assert _heading_parts("Question 3 - the callback (1 point)") == (3, "the callback")
    assert _heading_parts("Ejercicio 2") == (2, None)
    assert _heading_parts("El tamaño del paso") == (None, "El tamaño del paso")
    release = Path(__file__).resolve().parents[1] / "release"
    questions = questions_from_release(
        release / "lesson5_dropout_batchnorm" / "dropout_batchnorm.ipynb",
        ["test_dropout", "test_batchnorm", "test_history", "test_regularization_effect"],
    )
    assert [(q.number, q.title) for q in questions] == [
        (1, "el modelo"),
        (1, "el modelo"),
        (2, "entrenar"),
        (3, "¿qué hace el dropout?"),
    ]
