"""One published curve serves the playground and the checker; no answer sits on a boundary."""

import math

import pytest

from dlcourse.playground import CURVE, Playground, learning_curves


def test_published_step_counts():
    assert CURVE.steps_to_reach(0.03) == 45
    assert CURVE.steps_to_reach(0.1) == 12
    assert CURVE.steps_to_reach(1.0) is None  # diverges
    assert CURVE.steps_to_reach(1 / (2 * CURVE.curvature)) == 1


@pytest.mark.parametrize("lr", [0.03, 0.1])
def test_no_count_sits_near_a_rounding_boundary(lr):
    """The exact (real-valued) number of steps is far from an integer, so rounding of the
    tolerance or float error cannot change the answer."""
    ratio = CURVE.tolerance / abs(CURVE.start - CURVE.minimum_at)
    exact = math.log(ratio) / math.log(abs(1 - 2 * CURVE.curvature * lr))
    assert 0.3 < exact - math.floor(exact) < 0.7


def test_playground_counts_presses_like_the_checker():
    pg = Playground(learning_rate=0.1)
    while not pg.reached:
        pg.step(verbose=False)
    assert pg.steps == pg.reached_at == CURVE.steps_to_reach(0.1)
    assert len(pg.trail) == pg.steps + 1
    pg.reset(0.03)
    assert pg.steps == 0 and pg.w == CURVE.start and not pg.reached


def test_step_prints_status(capsys):
    pg = Playground(learning_rate=1 / (2 * CURVE.curvature))
    pg.step()
    assert "mínimo alcanzado" in capsys.readouterr().out


def test_widget_builds_without_a_frontend():
    pytest.importorskip("ipywidgets")
    Playground().show()  # displays nothing outside Jupyter, must not raise


def test_learning_curves_are_deterministic():
    assert learning_curves() == learning_curves()
    assert set(learning_curves()) == {"A", "B", "C", "D"}


def test_show_draws_a_static_plot_while_grading(monkeypatch, capsys):
    """Under the grader there is no one to click: no widget traffic, the plot and the status."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    Playground().show()
    assert "Paso 0" in capsys.readouterr().out


# --- one state, every widget view redrawn when it changes ------------------------------------
# Real ipywidgets in-process: without a front end their comms are dummies, ``Button.click()``
# runs the click handlers and assigning ``FloatText.value`` is what typing in the box does.


class View:
    """The controls of one widget view that ``show()`` displayed, found by type."""

    def __init__(self, box):
        import ipywidgets as widgets

        found, todo = [], [box]
        while todo:
            widget = todo.pop(0)
            found.append(widget)
            todo.extend(getattr(widget, "children", ()))
        (self.rate,) = [w for w in found if isinstance(w, widgets.FloatText)]
        (self.counter,) = [w for w in found if isinstance(w, widgets.Label)]
        (self.plot,) = [w for w in found if isinstance(w, widgets.Output)]
        buttons = {w.description: w for w in found if isinstance(w, widgets.Button)}
        self.step, self.reset = buttons["STEP"], buttons["RESET"]
        self.box = box

    @property
    def shown(self) -> str:
        """The counter's step number as the student reads it: "Paso 3: ..." -> "Paso 3"."""
        return self.counter.value.split(":")[0]

    def plot_text(self) -> str:
        """What the plot stands for (its text/plain alternative)."""
        (output,) = self.plot.outputs
        assert output["data"]["image/png"]
        return output["data"]["text/plain"]


@pytest.fixture
def show(monkeypatch):
    """``show(pg)``: ``pg.show()`` as in a notebook, returning the view it displayed."""
    pytest.importorskip("ipywidgets")
    import IPython.display

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    displayed = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **_: displayed.extend(objs))

    def _show(pg: Playground) -> View:
        before = len(displayed)
        pg.show()
        (box,) = displayed[before:]
        return View(box)

    return _show


def test_the_widget_counts_the_steps_taken_in_code_and_by_clicks(show):
    """Run All runs ``pg.show()`` then ``pg.step()``: the widget says Paso 1, the click Paso 2."""
    pg = Playground(learning_rate=0.03)
    view = show(pg)
    assert view.shown == "Paso 0"
    pg.step(verbose=False)
    assert view.shown == "Paso 1" and view.counter.value == pg.status()
    for expected in (2, 3, 4):
        view.step.click()
        assert pg.steps == expected and view.shown == f"Paso {expected}"
    assert view.counter.value == pg.status()
    assert "Paso 4" in view.plot_text()


def test_reset_in_code_shows_the_new_rate_and_the_next_click_keeps_it(show):
    pg = Playground(learning_rate=0.03)
    view = show(pg)
    view.step.click()
    pg.reset(0.1)
    assert view.rate.value == 0.1 and view.shown == "Paso 0"
    view.step.click()
    assert pg.learning_rate == 0.1 and pg.steps == 1 and view.shown == "Paso 1"
    assert pg.w == pytest.approx(CURVE.step(CURVE.start, 0.1))


def test_a_rate_typed_in_the_box_restarts_the_playground(show):
    pg = Playground(learning_rate=0.03)
    view = show(pg)
    view.step.click()
    view.rate.value = 0.1  # what the front end sends when the student types 0.1
    assert pg.learning_rate == 0.1 and pg.steps == 0 and view.shown == "Paso 0"
    while not pg.reached:
        view.step.click()
    assert view.shown == f"Paso {CURVE.steps_to_reach(0.1)}"
    assert "mínimo alcanzado" in view.counter.value
    view.reset.click()
    assert pg.learning_rate == 0.1 and pg.steps == 0 and view.shown == "Paso 0"


def test_every_view_shows_the_same_playground(show):
    pg = Playground(learning_rate=0.03)
    first = show(pg)
    pg.step(verbose=False)
    second = show(pg)  # shown later: starts at the current step, not at the start
    assert first.shown == second.shown == "Paso 1"
    first.step.click()
    second.step.click()
    pg.step(verbose=False)
    for view in (first, second):
        assert view.shown == "Paso 4" and view.rate.value == 0.03
        assert view.plot_text() == first.plot_text()
    second.rate.value = 0.1
    assert first.rate.value == 0.1 and first.shown == second.shown == "Paso 0"
    first.reset.click()
    pg.learning_rate = 0.05  # a plain assignment changes the state too
    assert second.rate.value == 0.05


def test_a_closed_view_is_no_longer_drawn(show):
    pg = Playground()
    gone, kept = show(pg), show(pg)
    gone.box.close()
    pg.step(verbose=False)
    assert kept.shown == "Paso 1" and gone.shown == "Paso 0"


def test_no_widget_while_grading(monkeypatch, capsys, show):
    """Under the grader ``show()`` displays no widget, and ``step()`` still prints."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    pg = Playground()
    with pytest.raises(ValueError):
        show(pg)  # nothing was displayed
    pg.step()
    assert "Paso 1" in capsys.readouterr().out
