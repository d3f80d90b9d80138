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
