"""The gradient-descent playground of lesson 4.1 (after Google's ML Crash Course widget).

One published definition of the loss curve serves the student's playground and the hidden
checker, so the step counts the checker expects are the ones the student can observe.

The curve is a parabola ``L(w) = a (w - w*)^2 + L*``. One step of gradient descent moves
``w`` to ``w - lr * L'(w)`` with ``L'(w) = 2a (w - w*)``, so it multiplies the distance to the
minimum by ``(1 - 2 a lr)``. "Reached the minimum" means ``|w - w*| <= tolerance``.
The constants were chosen so that no step count sits near a rounding boundary: the distance
left after the deciding step is about half a step (in log scale) away from the tolerance.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

from dlcourse.catalogue import say


@dataclass(frozen=True)
class LossCurve:
    """A published 1-D loss curve, a start point and the "reached the minimum" rule."""

    curvature: float = 1.7  # a
    minimum_at: float = 2.0  # w*
    minimum_loss: float = 0.3  # L(w*)
    start: float = -1.0  # w0
    tolerance: float = 0.025  # reached when |w - w*| <= tolerance
    max_steps: int = 1000  # a run longer than this "never reaches" the minimum
    blow_up: float = 1e6  # |w - w*| beyond this: gradient descent diverged

    def loss(self, w: float) -> float:
        return self.curvature * (w - self.minimum_at) ** 2 + self.minimum_loss

    def gradient(self, w: float) -> float:
        return 2.0 * self.curvature * (w - self.minimum_at)

    def step(self, w: float, learning_rate: float) -> float:
        return w - learning_rate * self.gradient(w)

    def reached(self, w: float) -> bool:
        return abs(w - self.minimum_at) <= self.tolerance

    def steps_to_reach(self, learning_rate: float) -> int | None:
        """STEP presses until the minimum is reached from ``start``; None if it never is."""
        w = self.start
        for n in range(1, self.max_steps + 1):
            w = self.step(w, learning_rate)
            if not math.isfinite(w) or abs(w - self.minimum_at) > self.blow_up:
                return None
            if self.reached(w):
                return n
        return None

    def rule(self) -> str:
        return say(
            "playground.rule",
            curvature=self.curvature,
            minimum_at=self.minimum_at,
            minimum_loss=self.minimum_loss,
            start=self.start,
            tolerance=self.tolerance,
        )


CURVE = LossCurve()


@dataclass
class Playground:
    """Press STEP (``step()``) until ``reached`` is True; ``steps`` counts the presses.

    The playground is the one state: the widget views of ``show()`` hold none of their own.
    Every change (``step()``, ``reset()``, an assignment, a click, a rate typed in a box)
    goes to the playground, and every view is redrawn from it, so a view never lags behind.
    """

    learning_rate: float = 0.03
    curve: LossCurve = CURVE
    w: float = field(init=False)
    steps: int = field(init=False, default=0)
    reached_at: int | None = field(init=False, default=None)
    trail: list[float] = field(init=False)

    def __post_init__(self) -> None:
        # Plain attributes, not dataclass fields: they are not the state (not compared, not in
        # asdict()), only who shows it. The widget views, redrawn after every change:
        self._views: list[_View] = []
        # > 0 while step() or reset() runs: their assignments are one change, redrawn once.
        self._changing = 0
        self.reset()

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        # A plain assignment (``pg.learning_rate = 0.1``) is a change too. Before
        # __post_init__ has set ``_changing`` there is no view to redraw, hence the default.
        if not name.startswith("_") and not self.__dict__.get("_changing", 1):
            self._redraw()

    @contextmanager
    def _change(self):
        self._changing += 1
        try:
            yield
        finally:
            self._changing -= 1
        if not self._changing:
            self._redraw()

    def _redraw(self) -> None:
        self._views = [view for view in self._views if view.is_open()]
        if self._views:  # no matplotlib without a view: grading and plain step() stay light
            picture = _picture(self)  # drawn once, shown by every view
            for view in self._views:
                view.draw(picture)

    @property
    def reached(self) -> bool:
        return self.reached_at is not None

    def __repr__(self) -> str:
        return f"Playground(learning_rate={self.learning_rate}, steps={self.steps}, w={self.w:.4f})"

    def reset(self, learning_rate: float | None = None) -> None:
        """Back to the start point (optionally with a new learning rate)."""
        with self._change():
            if learning_rate is not None:
                self.learning_rate = float(learning_rate)
            self.w = self.curve.start
            self.steps = 0
            self.reached_at = None
            self.trail = [self.w]

    def step(self, verbose: bool = True) -> None:
        """One gradient-descent step: ``w <- w - learning_rate * L'(w)``."""
        with self._change():
            gradient = self.curve.gradient(self.w)
            self.w = self.curve.step(self.w, self.learning_rate)
            self.steps += 1
            self.trail.append(self.w)
            if self.reached_at is None and self.curve.reached(self.w):
                self.reached_at = self.steps
        if verbose:
            print(self.status(gradient))

    def status(self, gradient: float | None = None) -> str:
        return say(
            "playground.status",
            steps=self.steps,
            w=f"{self.w:.4f}",
            loss=f"{self.curve.loss(self.w):.4f}",
            gradient=None if gradient is None else f"{gradient:.4f}",
            reached_at=self.reached_at,
        )

    def plot(self, ax=None):
        """The curve with the trail of steps (matplotlib)."""
        import matplotlib.pyplot as plt
        import numpy as np

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        c = self.curve
        finite = [w for w in self.trail if abs(w - c.minimum_at) < 50]
        span = max([abs(c.start - c.minimum_at) * 1.2, *[abs(w - c.minimum_at) for w in finite]])
        grid = np.linspace(c.minimum_at - span, c.minimum_at + span, 400)
        ax.plot(grid, c.loss(grid), color="tab:blue", label=say("playground.loss_curve"))
        ax.plot(
            finite,
            [c.loss(w) for w in finite],
            "o-",
            color="tab:red",
            ms=4,
            lw=1,
            label=say("playground.steps"),
        )
        ax.axvspan(
            c.minimum_at - c.tolerance,
            c.minimum_at + c.tolerance,
            color="tab:green",
            alpha=0.3,
            label=say("playground.minimum_zone"),
        )
        ax.set_xlabel(say("playground.weight"))
        ax.set_ylabel(say("playground.loss"))
        ax.set_title(say("playground.title", learning_rate=self.learning_rate, steps=self.steps))
        ax.legend(loc="upper center", fontsize=8)
        return ax

    def show(self) -> None:
        """An interactive widget: learning-rate box, STEP and RESET buttons, counter and plot.

        It is a view of this playground: ``step()``, ``reset()`` and the clicks all change the
        same state, and every view shown (``show()`` may be called more than once) follows it.
        When widgets are not available, use ``step()`` and ``plot()`` instead: they do the same.
        While a notebook is being graded there is no one to click: the static plot is drawn
        instead (a headless kernel's widget messages can also stall nbclient for a whole cell
        timeout, seen with ipywidgets 8 and nbclient 0.11).
        """
        import os

        if os.environ.get("NBGRADER_EXECUTION"):
            print(self.status())
            self.plot()
            return
        try:
            import ipywidgets as widgets
            from IPython.display import display
        except ImportError:  # pragma: no cover - ipywidgets is a course dependency
            print(say("playground.no_widgets"))
            return
        view = _View(self, widgets)
        self._views.append(view)
        view.draw(_picture(self))
        display(view.box)


class _View:
    """One widget view of a playground. Its controls only send changes to the playground; what
    they show is redrawn from it (``draw``), so two views, or a view and ``pg.step()``, agree."""

    def __init__(self, playground: Playground, widgets) -> None:
        self.playground = playground
        self.rate = widgets.FloatText(
            value=playground.learning_rate,
            description="Learning rate",
            style={"description_width": "initial"},
        )
        step_button = widgets.Button(description="STEP", button_style="primary")
        reset_button = widgets.Button(description="RESET")
        self.counter = widgets.Label()
        self.plot = widgets.Output()
        self.box = widgets.VBox(
            [widgets.HBox([self.rate, step_button, reset_button]), self.counter, self.plot]
        )
        self.drawing = False
        # A new rate restarts the playground right away (not at the next click), so that every
        # view shows it and the next STEP is step 1 at that rate.
        self.rate.observe(self._on_rate, names="value")
        step_button.on_click(lambda _: playground.step(verbose=False))
        reset_button.on_click(lambda _: playground.reset(self.rate.value))

    def _on_rate(self, change) -> None:
        # draw() writing the playground's rate into the box is not the student typing one
        if not self.drawing and change["new"] != self.playground.learning_rate:
            self.playground.reset(change["new"])

    def is_open(self) -> bool:
        """False once the widget was closed: it is no longer drawn (nor kept alive)."""
        return self.box.comm is not None

    def draw(self, picture: dict) -> None:
        self.drawing = True
        try:
            self.rate.value = self.playground.learning_rate
            self.counter.value = self.playground.status()
            # Assigned rather than captured (``with output:`` and plt.show()): the same whether
            # a cell, a click or a test changed the state, and plt.show() would also pull in
            # any other open figure of the student's.
            self.plot.outputs = (picture,)
        finally:
            self.drawing = False


def _picture(playground: Playground) -> dict:
    """The playground's plot as a display_data output (PNG, the status as its text)."""
    import base64
    import io

    from matplotlib.figure import Figure

    # A Figure outside pyplot: the inline backend does not show it a second time at the end
    # of the cell, and it is not left open.
    figure = Figure(figsize=(6, 3.5))
    playground.plot(figure.subplots())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "text/plain": playground.status(),
        },
        "metadata": {},
    }


# --- learning curves to label (lesson 4.2, "interpreting the learning curves") ---------------

PANELS = ("A", "B", "C", "D")
CURVE_LABELS = ("tasa_alta", "tasa_baja", "tasa_correcta", "sobreajuste")

# Each panel is drawn from the same family of curves with different parameters:
# (initial loss, decay per epoch, floor, oscillation, validation gap growth after epoch k)
_PANEL_PARAMS = {
    "A": (1.0, 0.012, 0.05, 0.00, 0.0, 0),
    "B": (1.0, 0.080, 0.10, 0.00, 0.006, 18),
    "C": (1.0, 0.200, 0.55, 0.25, 0.0, 0),
    "D": (1.0, 0.090, 0.12, 0.00, 0.0, 0),
}


def learning_curves(epochs: int = 100) -> dict[str, tuple[list[float], list[float]]]:
    """Deterministic (train loss, validation loss) curves for each panel."""
    import numpy as np

    curves = {}
    t = np.arange(epochs)
    for panel, (start, decay, floor, wobble, gap, after) in _PANEL_PARAMS.items():
        train = floor + (start - floor) * np.exp(-decay * t) + wobble * np.abs(np.sin(1.7 * t))
        valid = train * 1.05 + 0.02
        if gap:
            valid = valid + gap * np.clip(t - after, 0, None) + 0.0
            train = train - 0.0006 * np.clip(t - after, 0, None)
        curves[panel] = (train.round(5).tolist(), valid.round(5).tolist())
    return curves


def plot_learning_curves(epochs: int = 100):
    """Four panels of learning curves, A to D, to be labelled by the student."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey=True)
    for ax, (panel, (train, valid)) in zip(axes.flat, learning_curves(epochs).items(), strict=True):
        ax.plot(train, label=say("curves.train"))
        ax.plot(valid, label=say("curves.valid"))
        ax.set_title(say("curves.panel", panel=panel))
        ax.set_xlabel(say("curves.epoch"))
        ax.set_ylabel(say("playground.loss"))
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
