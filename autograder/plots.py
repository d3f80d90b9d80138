"""Figures for the feedback and the class report: learning curves, a score histogram and the
student's labels on the lesson's learning curves.

Every figure is one panel drawn with matplotlib's object API (``Figure`` + Agg canvas, no
``pyplot``, no global backend switch) and returned as a ``Plot``: a ``data:image/png;base64,...``
URI, so an HTML page that embeds it is one self-contained file, readable offline, with an alt
text that says what the panel shows (from the catalogue, generated from the data).

Training curves come from the artifacts a Keras hidden test cell captured. ``read_trainings`` is
the one place that knows their file names and layout (see its docstring); everything else uses
the ``TrainingCurves`` it returns.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.capture import ArtifactError, Artifacts
from dlcourse import layout

MAX_EPOCHS = 20_000  # longer histories are cut (an artifact is untrusted data)

# --- training curves ------------------------------------------------------------------------


@dataclass
class TrainingCurves:
    """One training run as the feedback shows it. Epochs are 1-based, as a person counts them."""

    name: str  # the answer it belongs to (``history``: the question ``test_history``)
    loss: list[float]
    val_loss: list[float] | None = None
    best_epoch: int | None = None  # epoch whose weights were kept (early stopping), 1-based
    stopped_epoch: int | None = None  # last epoch run when early stopping ended training
    epochs_limit: int | None = None  # ``epochs=`` given to fit
    monitor: str = "val_loss"

    @property
    def epochs(self) -> int:
        return len(self.loss)

    @property
    def lowest_val_epoch(self) -> int | None:
        """1-based epoch of the lowest finite validation loss."""
        if not self.val_loss:
            return None
        finite = [(v, i) for i, v in enumerate(self.val_loss) if math.isfinite(v)]
        return min(finite)[1] + 1 if finite else None

    @property
    def marked_best_epoch(self) -> int | None:
        """The best epoch to draw: the callback's when captured, else the lowest val_loss."""
        if self.best_epoch is not None and 1 <= self.best_epoch <= self.epochs:
            return self.best_epoch
        return self.lowest_val_epoch

    @property
    def marked_stop_epoch(self) -> int | None:
        """Where early stopping ended training (None when it ran every epoch)."""
        if self.stopped_epoch is not None and 1 <= self.stopped_epoch <= self.epochs:
            return self.stopped_epoch
        if self.epochs_limit and 0 < self.epochs < self.epochs_limit:
            return self.epochs
        return None


# Where training runs are captured. ``dlcourse.keras_capture.capture_training`` writes
# ``keras/<prefix>training.json`` (one per ``fit``; see ``_from_keras_capture``). The simpler
# layouts below are also read (the first existing file wins for each answer name).
KERAS_TRAINING_GLOB = layout.KERAS_TRAINING_GLOB
TRAINING_FILES: dict[str, tuple[str, ...]] = {
    "history": layout.HISTORY_FILES,
}
EARLY_STOPPING_FILES = layout.EARLY_STOPPING_FILES


def read_trainings(artifacts_dir: str | Path) -> dict[str, TrainingCurves]:
    """Every training run captured in ``artifacts_dir``, by answer name (``{}`` when none).

    1. ``keras/*training.json`` as written by ``keras_capture.capture_training``::

         {"history_name": "history",
          "history": {"is_history": true, "history": {"loss": [...], "val_loss": [...]},
                      "params": {"epochs": 500, "steps": 5}},
          "callback": {"settings": {"monitor": "val_loss", ...},
                       "state": {"best_epoch": 41, "stopped_epoch": 61,
                                 "attached_to_model": true}},
          "other_early_stopping": [...]}      # EarlyStoppings created inside fit(...)

       Non-finite losses are ``null``. The callback's state counts only when the callback was
       attached to the trained model (else Keras's defaults, 0, would mark epoch 1).
    2. ``history.json``: ``{"history": {"loss": [...], "val_loss": [...]}, "params": {...},
       "early_stopping": {"best_epoch": ..., "stopped_epoch": ...}}`` or the two lists at top
       level, the early-stopping state possibly in ``early_stopping.json``.

    Keras keeps ``best_epoch`` and ``stopped_epoch`` 0-based and ``stopped_epoch == 0`` means
    "never stopped early"; a capture storing 1-based values says ``"one_based": true``.
    Unreadable or malformed files are skipped: a broken capture never breaks the feedback.
    """
    artifacts = Artifacts(artifacts_dir)
    runs: dict[str, TrainingCurves] = {}
    keras_dir = artifacts.folder / layout.KERAS_DIR
    if keras_dir.is_dir() and not keras_dir.is_symlink():
        for path in sorted(keras_dir.glob(KERAS_TRAINING_GLOB))[:20]:
            curves = _from_keras_capture(_read_json(artifacts, layout.keras_json(path.stem)))
            if curves is not None:
                runs.setdefault(curves.name, curves)
    for name, candidates in TRAINING_FILES.items():
        if name in runs:
            continue
        for relative in candidates:
            data = _read_json(artifacts, relative)
            if data is None:
                continue
            curves = _parse_training(name, data, _early_stopping(artifacts, data))
            if curves is not None:
                runs[name] = curves
                break
    return runs


def _from_keras_capture(data: Any) -> TrainingCurves | None:
    if not isinstance(data, dict):
        return None
    history = data.get("history")
    if not isinstance(history, dict) or not history.get("is_history"):
        return None
    name = data.get("history_name")
    name = name[:60] if isinstance(name, str) and name else "history"
    early: dict = {}
    for callback in [data.get("callback"), *(data.get("other_early_stopping") or [])[:5]]:
        state = callback.get("state") if isinstance(callback, dict) else None
        if isinstance(state, dict) and state.get("attached_to_model") is True:
            settings = (
                callback.get("settings") if isinstance(callback.get("settings"), dict) else {}
            )
            early = {**state, "monitor": settings.get("monitor")}
            break
    return _parse_training(name, history, early)


def _read_json(artifacts: Artifacts, relative: str) -> Any:
    try:
        return artifacts.read_json(relative)
    except (FileNotFoundError, ArtifactError, OSError):
        return None


def _early_stopping(artifacts: Artifacts, data: dict) -> dict:
    for source in (
        data if isinstance(data, dict) else {},
        *(_read_json(artifacts, f) for f in EARLY_STOPPING_FILES),
    ):
        if not isinstance(source, dict):
            continue
        for key in ("early_stopping", "callback"):
            if isinstance(source.get(key), dict):
                return source[key]
        if "best_epoch" in source or "stopped_epoch" in source:
            return source
    return {}


MAX_PLOTTED = 1e100


def _floats(values: Any) -> list[float] | None:
    if not isinstance(values, list) or not values:
        return None
    out = []
    for v in values[:MAX_EPOCHS]:
        if isinstance(v, bool):
            return None
        if v is None:  # how the Keras capture writes a non-finite loss
            out.append(float("nan"))
        elif isinstance(v, (int, float)):
            # a loss past ±1e100 is off any chart, and ±1e308 overflows the axis arithmetic
            out.append(float(v) if abs(v) <= MAX_PLOTTED else float("nan"))
        elif isinstance(v, str) and v.strip().lower() in (
            "nan",
            "inf",
            "-inf",
            "infinity",
            "-infinity",
        ):
            out.append(float(v))
        else:
            return None
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _parse_training(name: str, data: Any, early: dict) -> TrainingCurves | None:
    if not isinstance(data, dict):
        return None
    history = data.get("history") if isinstance(data.get("history"), dict) else data
    loss = _floats(history.get("loss"))
    if loss is None:
        return None
    val_loss = _floats(history.get("val_loss"))
    if val_loss is not None and len(val_loss) != len(loss):
        val_loss = val_loss[: len(loss)] if len(val_loss) > len(loss) else None
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    shift = 0 if early.get("one_based") else 1
    best = _int(early.get("best_epoch"))
    stopped = _int(early.get("stopped_epoch"))
    monitor = early.get("monitor") if isinstance(early.get("monitor"), str) else "val_loss"
    return TrainingCurves(
        name=name,
        loss=loss,
        val_loss=val_loss,
        best_epoch=None if best is None or best < 0 else best + shift,
        # Keras: stopped_epoch stays 0 when training ran to the end
        stopped_epoch=None if not stopped or stopped < 0 else stopped + shift,
        epochs_limit=_int(params.get("epochs")),
        monitor=monitor[:40],
    )


# --- diagnosis ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """What the curves show; ``id`` names a UI string (``diagnosis.<id>``) with ``params``."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)


# Thresholds of the diagnosis (relative changes). They are deliberately coarse: the diagnosis
# is advice in the feedback, never part of a grade.
ROUGHNESS_TOO_HIGH = 0.10  # median |epoch-to-epoch change| / median loss, second half of training
CLIMB_TOO_HIGH = 0.25  # final training loss this far above its minimum: steps overshoot
OVERFIT_RISE = 0.10  # validation loss ends this far above its minimum ...
OVERFIT_MIN_EPOCHS = 3  # ... at least this many epochs after it
STILL_FALLING = 0.05  # training loss fell this much over the last tenth of the epochs
REFERENCE_FACTOR = 1.3  # both losses this many times the reference's: underfitting


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def diagnose(curves: TrainingCurves, reference: TrainingCurves | None = None) -> list[Diagnosis]:
    """Overfitting, underfitting or a learning rate too high, when the curves show it."""
    loss = curves.loss
    if len(loss) < 3:
        return []
    finite = _finite(loss)
    if len(finite) < len(loss) or not finite:
        first_bad = next(i for i, v in enumerate(loss) if not math.isfinite(v)) + 1
        return [Diagnosis("diverged", {"epoch": first_bad})]

    found: list[Diagnosis] = []
    half = loss[len(loss) // 2 :]
    level = _median(half)
    roughness = (
        _median([abs(b - a) for a, b in zip(half, half[1:], strict=False)]) / level
        if level > 0 and len(half) > 2
        else 0.0
    )
    lowest = min(loss)
    climbed = lowest > 0 and loss[-1] > lowest * (1 + CLIMB_TOO_HIGH)
    if roughness > ROUGHNESS_TOO_HIGH or climbed:
        found.append(Diagnosis("lr_too_high", {"percent": round(100 * roughness)}))

    val = curves.val_loss
    best = curves.lowest_val_epoch if val else None
    if val and best is not None:
        val_min = val[best - 1]
        tail = _finite(val[-3:]) or [val_min]
        rise = (sum(tail) / len(tail) - val_min) / val_min if val_min > 0 else 0.0
        train_kept_falling = loss[-1] < loss[best - 1]
        if (
            rise > OVERFIT_RISE
            and curves.epochs - best >= OVERFIT_MIN_EPOCHS
            and train_kept_falling
        ):
            found.append(Diagnosis("overfitting", {"epoch": best, "percent": round(100 * rise)}))

    if not any(d.id == "lr_too_high" for d in found):
        k = max(3, len(loss) // 10)
        if len(loss) > k:
            fall = (loss[-k - 1] - loss[-1]) / loss[-1] if loss[-1] > 0 else 0.0
            val_fell = not val or (best is not None and best >= len(val) - k)
            if fall > STILL_FALLING and val_fell:
                found.append(
                    Diagnosis(
                        "underfitting_still_falling", {"percent": round(100 * fall), "epochs": k}
                    )
                )
        if reference is not None and not any(d.id.startswith("underfitting") for d in found):
            mine = min(_finite(val) if val else finite)
            ref_values = (
                _finite(reference.val_loss)
                if reference.val_loss and val
                else _finite(reference.loss)
            )
            if ref_values and min(ref_values) > 0:
                ref_best = min(ref_values)
                ref_train = min(_finite(reference.loss) or [ref_best])
                if mine > REFERENCE_FACTOR * ref_best and lowest > REFERENCE_FACTOR * ref_train:
                    found.append(
                        Diagnosis(
                            "underfitting_reference",
                            {"mine": f"{mine:.4g}", "reference": f"{ref_best:.4g}"},
                        )
                    )
    return found


# --- drawing --------------------------------------------------------------------------------
#
# Every figure is one panel, sized for a phone: a page lays panels out side by side on a wide
# screen and stacks them on a narrow one (``templates/_base.html.j2``), so no plot ever has to
# shrink below legibility. A panel is ``PANEL_WIDTH`` inches wide and its smallest text is
# ``MIN_FONT_PT``: shown at 340 CSS px (a 390 px phone) that text is still 10 CSS px high.

COLORS = {"loss": "#1f77b4", "val_loss": "#ff7f0e", "best": "#2ca02c", "stop": "#d62728"}
DPI = 160  # pixels per inch of the PNGs: sharp on a phone's 2-3x screen
CSS_PX_PER_INCH = 100  # the size a page gives a figure (img width/height), before max-width
MIN_FONT_PT = 10.0
PANEL_WIDTH = 4.6  # inches
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
}


@dataclass(frozen=True)
class Plot:
    """One drawn panel: the PNG as a ``data:`` URI, what it shows in words (its ``alt``, from
    the catalogue, generated from the data) and its size on the page in CSS pixels."""

    uri: str
    alt: str
    width: int
    height: int


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)  # artists read their font sizes when they are created


def png_data_uri(fig) -> str:
    """The figure as an inline PNG (``data:image/png;base64,...``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot(fig, alt: str) -> Plot:
    width, height = fig.get_size_inches()
    return Plot(
        png_data_uri(fig), alt, round(width * CSS_PX_PER_INCH), round(height * CSS_PX_PER_INCH)
    )


def _y_limits(curves: list[TrainingCurves]) -> tuple[float, float] | None:
    values = []
    for c in curves:
        values += _finite(c.loss) + (_finite(c.val_loss) if c.val_loss else [])
    if not values:
        return None
    values.sort()
    low, top = values[0], values[-1]
    typical = values[int(0.9 * (len(values) - 1))]
    if top - low > 10 * max(typical - low, 1e-12):
        # a few wild epochs (a diverging run) must not flatten the rest of the curve
        top = values[int(0.98 * (len(values) - 1))]
    pad = (top - low) * 0.06 or abs(top) * 0.1 or 1.0
    limits = (low - pad, top + pad)
    return limits if all(math.isfinite(v) for v in limits) and limits[0] < limits[1] else None


def _legend_below(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)


def training_panel_figure(
    curves: TrainingCurves,
    title: str,
    text: Callable[..., str],
    ylim: tuple[float, float] | None,
    xmax: int | None = None,
):
    """One training run: loss and val_loss per epoch, the best epoch and the stop."""
    fig = _figure(PANEL_WIDTH, 3.9)
    ax = fig.subplots()
    epochs = list(range(1, curves.epochs + 1))
    nan = float("nan")
    ax.plot(
        epochs,
        [v if math.isfinite(v) else nan for v in curves.loss],
        color=COLORS["loss"],
        lw=1.8,
        label=text("plot.loss"),
    )
    if curves.val_loss:
        ax.plot(
            epochs,
            [v if math.isfinite(v) else nan for v in curves.val_loss],
            color=COLORS["val_loss"],
            lw=1.8,
            label=text("plot.val_loss"),
        )
    best = curves.marked_best_epoch
    if best is not None:
        ax.axvline(
            best, color=COLORS["best"], ls=":", lw=1.6, label=text("plot.best_epoch", epoch=best)
        )
        series = curves.val_loss or curves.loss
        if math.isfinite(series[best - 1]):
            ax.plot(
                [best],
                [series[best - 1]],
                marker="*",
                ms=14,
                color=COLORS["best"],
                markeredgecolor="white",
                zorder=5,
            )
    stop = curves.marked_stop_epoch
    if stop is not None:
        ax.axvline(
            stop, color=COLORS["stop"], ls="--", lw=1.6, label=text("plot.stopped", epoch=stop)
        )
    ax.set_title(title)
    ax.set_xlabel(text("plot.epoch"))
    ax.set_ylabel(text("plot.loss_axis"))
    ax.grid(alpha=0.3)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlim(0, max(xmax or curves.epochs, 2) * 1.03 + 1)  # the stop line is not the frame
    _legend_below(fig, ax)
    return fig


def learning_curves_plots(
    student: TrainingCurves, reference: TrainingCurves | None, text: Callable[..., str]
) -> list[Plot]:
    """The student's loss and val_loss and, as a second panel, the reference solution's, on
    the same scales (a wide page shows them side by side, a phone one above the other)."""
    runs = [student] + ([reference] if reference else [])
    ylim = _y_limits(runs)
    xmax = max(r.epochs for r in runs)
    plots = []
    with _style():
        for run, title in zip(runs, ("plot.yours", "plot.reference"), strict=False):
            fig = training_panel_figure(run, text(title), text, ylim, xmax)
            alt = training_alt(run, text(title), text)
            if run is student and reference is not None:
                alt += " " + comparison_alt(student, reference, text)
            plots.append(_plot(fig, alt))
    return plots


def score_histogram_figure(scores: Sequence[float], max_score: float, text: Callable[..., str]):
    """How many students got each score (bins of half a point up to 20 points)."""
    import numpy as np

    centers, counts, edges = _histogram(scores, max_score)
    width = edges[1] - edges[0]
    fig = _figure(4.8, 3.0)
    ax = fig.subplots()
    ax.bar(centers, counts, width=width * 0.85, align="center", color="#4c72b0")
    if len(scores):
        mean = float(np.mean(scores))
        ax.axvline(
            mean, color="#d62728", ls="--", lw=1.6, label=text("plot.mean", value=f"{mean:.2f}")
        )
        ax.legend(loc="upper left")
    ax.set_xlabel(text("plot.score_axis", max=f"{max_score:g}"))
    ax.set_ylabel(text("plot.students_axis"))
    ax.set_xlim(edges[0], edges[-1])
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _histogram(scores: Sequence[float], max_score: float):
    import numpy as np

    top = max(max_score, max(scores, default=0.0), 1.0)
    width = 0.5 if top <= 20 else top / 40
    centers = np.arange(0.0, top + width / 2, width)  # one bar per possible score, centred on it
    edges = np.append(centers - width / 2, centers[-1] + width / 2)
    counts, _ = np.histogram(np.clip(scores, 0, top), bins=edges)
    return centers, counts, edges


def score_histogram(scores: Sequence[float], max_score: float, text: Callable[..., str]) -> Plot:
    """The class's score histogram, with an alt text saying what it shows."""
    with _style():
        return _plot(
            score_histogram_figure(scores, max_score, text),
            histogram_alt(scores, max_score, text),
        )


def label_panel_figure(
    panel: str,
    train: list[float],
    valid: list[float],
    label: str,
    right: bool | None,
    text: Callable[..., str],
    ylim: tuple[float, float] | None,
):
    """One of the lesson's published curves, titled with the student's label and whether it
    was right (never the expected label)."""
    fig = _figure(PANEL_WIDTH, 3.5)
    ax = fig.subplots()
    ax.plot(range(1, len(train) + 1), train, color=COLORS["loss"], lw=1.8, label=text("plot.loss"))
    ax.plot(
        range(1, len(valid) + 1),
        valid,
        color=COLORS["val_loss"],
        lw=1.8,
        label=text("plot.val_loss"),
    )
    mark = {True: "✓", False: "✗", None: ""}[right]
    color = {True: "#1a7f37", False: "#cf222e", None: "#57606a"}[right]
    ax.set_title(text("plot.panel", panel=panel, label=label) + f"  {mark}", color=color)
    ax.set_xlabel(text("plot.epoch"))
    ax.set_ylabel(text("plot.loss_axis"))
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return fig


def labelled_panels(
    curves: dict[str, tuple[list[float], list[float]]],
    labels: dict[str, tuple[str, bool | None]],
    text: Callable[..., str],
) -> list[Plot]:
    """The lesson's published learning curves, one panel each, on the same scale."""
    ylim = _y_limits([TrainingCurves(p, list(t), list(v)) for p, (t, v) in curves.items()])
    plots = []
    with _style():
        for panel, (train, valid) in curves.items():
            label, right = labels.get(panel, ("—", None))
            fig = label_panel_figure(panel, train, valid, label, right, text, ylim)
            plots.append(_plot(fig, panel_alt(panel, train, valid, label, right, text)))
    return plots


# --- what a plot shows, in words (its alt text) ----------------------------------------------


def _num(value: float) -> str:
    return f"{value:.3g}"


def _loss_sentence(loss: Sequence[float], text: Callable[..., str]) -> str | None:
    finite = _finite(loss)
    if len(finite) < 2:
        return None
    first, last = finite[0], finite[-1]
    trend = text("plot.falls") if last <= first else text("plot.rises")
    return text("plot.alt_loss", trend=trend, first=_num(first), last=_num(last))


def _val_sentence(
    loss: Sequence[float], val: Sequence[float] | None, text: Callable[..., str]
) -> str | None:
    if not val:
        return None
    finite = [(v, i) for i, v in enumerate(val) if math.isfinite(v)]
    if not finite:
        return None
    low, at = min(finite)
    last, last_at = finite[-1]
    train = loss[last_at] if last_at < len(loss) else float("nan")
    where = text("plot.above") if not math.isfinite(train) or last >= train else text("plot.below")
    return text("plot.alt_val", best=at + 1, low=_num(low), last=_num(last), where=where)


def training_alt(curves: TrainingCurves, who: str, text: Callable[..., str]) -> str:
    """``Tu entrenamiento: 60 épocas. La pérdida de entrenamiento baja de 1.02 a 0.101. ...``"""
    parts = [text("plot.alt_training", who=who, epochs=curves.epochs)]
    bad = next((i for i, v in enumerate(curves.loss) if not math.isfinite(v)), None)
    if bad is not None:
        parts.append(text("plot.alt_diverged", epoch=bad + 1))
    parts += [_loss_sentence(curves.loss, text), _val_sentence(curves.loss, curves.val_loss, text)]
    if curves.marked_best_epoch is not None:
        parts.append(text("plot.alt_best", epoch=curves.marked_best_epoch))
    if curves.marked_stop_epoch is not None:
        parts.append(text("plot.alt_stop", epoch=curves.marked_stop_epoch))
    return " ".join(p for p in parts if p)


def comparison_alt(student: TrainingCurves, reference: TrainingCurves, text: Callable) -> str:
    """How the student's lowest loss compares with the reference solution's."""
    metric = "val_loss" if student.val_loss and reference.val_loss else "loss"
    mine = _finite(student.val_loss if metric == "val_loss" else student.loss)
    ref = _finite(reference.val_loss if metric == "val_loss" else reference.loss)
    if not mine or not ref:
        return ""
    a, b = min(mine), min(ref)
    relation = "plot.equal" if _num(a) == _num(b) else "plot.higher" if a > b else "plot.lower"
    return text(
        "plot.alt_compare", metric=metric, mine=_num(a), reference=_num(b), relation=text(relation)
    )


def panel_alt(
    panel: str,
    train: Sequence[float],
    valid: Sequence[float],
    label: str,
    right: bool | None,
    text: Callable[..., str],
) -> str:
    """``Curva B. La pérdida de entrenamiento baja de 1 a 0.0517. ... Tu etiqueta: ...``"""
    verdict = {True: "plot.alt_label_right", False: "plot.alt_label_wrong", None: "plot.alt_label"}
    parts = [
        text("plot.alt_panel", panel=panel),
        _loss_sentence(train, text),
        _val_sentence(train, valid, text),
        text(verdict[right], label=label) if label != "—" else text("plot.alt_label_none"),
    ]
    return " ".join(p for p in parts if p)


def histogram_alt(scores: Sequence[float], max_score: float, text: Callable[..., str]) -> str:
    """The class in numbers: how many, mean, median, the most frequent score, full and zero."""
    import statistics

    if not scores:
        return text("plot.alt_histogram_empty")
    centers, counts, _ = _histogram(scores, max_score)
    mode = max(range(len(counts)), key=lambda i: (counts[i], -i))
    return text(
        "plot.alt_histogram",
        n=len(scores),
        max=f"{max_score:g}",
        mean=f"{statistics.fmean(scores):.2f}",
        median=f"{statistics.median(scores):g}",
        mode=f"{centers[mode]:g}",
        mode_count=int(counts[mode]),
        full=sum(1 for s in scores if max_score and s >= max_score - 1e-9),
        zero=sum(1 for s in scores if s <= 0),
    )
