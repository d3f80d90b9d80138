"""Figures for the feedback and the class report: learning curves, a score histogram and the
student's labels on the lesson's learning curves.

Every figure is drawn with matplotlib's object API (``Figure`` + Agg canvas, no ``pyplot``, no
global backend switch) and returned as a ``data:image/png;base64,...`` URI, so an HTML page that
embeds it is one self-contained file, readable offline.

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

COLORS = {"loss": "#1f77b4", "val_loss": "#ff7f0e", "best": "#2ca02c", "stop": "#d62728"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_data_uri(fig) -> str:
    """The figure as an inline PNG (``data:image/png;base64,...``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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


def _draw_run(
    ax,
    curves: TrainingCurves,
    title: str,
    text: Callable[..., str],
    ylim: tuple[float, float] | None,
) -> None:
    epochs = list(range(1, curves.epochs + 1))
    nan = float("nan")
    ax.plot(
        epochs,
        [v if math.isfinite(v) else nan for v in curves.loss],
        color=COLORS["loss"],
        lw=1.6,
        label=text("plot.loss"),
    )
    if curves.val_loss:
        ax.plot(
            epochs,
            [v if math.isfinite(v) else nan for v in curves.val_loss],
            color=COLORS["val_loss"],
            lw=1.6,
            label=text("plot.val_loss"),
        )
    best = curves.marked_best_epoch
    if best is not None:
        ax.axvline(
            best, color=COLORS["best"], ls=":", lw=1.5, label=text("plot.best_epoch", epoch=best)
        )
        series = curves.val_loss or curves.loss
        if math.isfinite(series[best - 1]):
            ax.plot(
                [best],
                [series[best - 1]],
                marker="*",
                ms=13,
                color=COLORS["best"],
                markeredgecolor="white",
                zorder=5,
            )
    stop = curves.marked_stop_epoch
    if stop is not None:
        ax.axvline(
            stop, color=COLORS["stop"], ls="--", lw=1.5, label=text("plot.stopped", epoch=stop)
        )
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(text("plot.epoch"))
    ax.set_ylabel(text("plot.loss_axis"))
    ax.grid(alpha=0.3)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlim(0, max(curves.epochs, 2) * 1.03 + 1)  # the stop line is not the frame
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def learning_curves_png(
    student: TrainingCurves, reference: TrainingCurves | None, text: Callable[..., str]
) -> str:
    """The student's loss and val_loss beside the reference solution's, same y scale."""
    runs = [student] + ([reference] if reference else [])
    fig = _figure(10.5 if reference else 6.2, 3.9)
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    ylim = _y_limits(runs)
    _draw_run(axes[0], student, text("plot.yours"), text, ylim)
    if reference:
        _draw_run(axes[1], reference, text("plot.reference"), text, ylim)
    return png_data_uri(fig)


def score_histogram_png(scores: Sequence[float], max_score: float, text: Callable[..., str]) -> str:
    """How many students got each score (bins of half a point up to 20 points)."""
    import numpy as np

    top = max(max_score, max(scores, default=0.0), 1.0)
    width = 0.5 if top <= 20 else top / 40
    centers = np.arange(0.0, top + width / 2, width)  # one bar per possible score, centred on it
    edges = np.append(centers - width / 2, centers[-1] + width / 2)
    counts, _ = np.histogram(np.clip(scores, 0, top), bins=edges)
    fig = _figure(7.0, 3.0)
    ax = fig.subplots()
    ax.bar(centers, counts, width=width * 0.85, align="center", color="#4c72b0")
    if len(scores):
        mean = float(np.mean(scores))
        ax.axvline(
            mean, color="#d62728", ls="--", lw=1.5, label=text("plot.mean", value=f"{mean:.2f}")
        )
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel(text("plot.score_axis", max=f"{max_score:g}"))
    ax.set_ylabel(text("plot.students_axis"))
    ax.set_xlim(edges[0], edges[-1])
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)
    return png_data_uri(fig)


def labelled_panels_png(
    curves: dict[str, tuple[list[float], list[float]]],
    labels: dict[str, tuple[str, bool | None]],
    text: Callable[..., str],
) -> str:
    """The lesson's published learning curves, each titled with the student's label and
    whether it was right (never the expected label)."""
    panels = list(curves)
    fig = _figure(9.0, 5.2)
    axes = fig.subplots(2, (len(panels) + 1) // 2, sharex=True, sharey=True, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        train, valid = curves[panel]
        ax.plot(range(1, len(train) + 1), train, color=COLORS["loss"], label=text("plot.loss"))
        ax.plot(
            range(1, len(valid) + 1), valid, color=COLORS["val_loss"], label=text("plot.val_loss")
        )
        label, right = labels.get(panel, ("—", None))
        mark = {True: "✓", False: "✗", None: ""}[right]
        color = {True: "#1a7f37", False: "#cf222e", None: "#57606a"}[right]
        ax.set_title(
            text("plot.panel", panel=panel, label=label) + f"  {mark}", fontsize=10, color=color
        )
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel(text("plot.epoch"))
    for ax in axes[:, 0]:
        ax.set_ylabel(text("plot.loss_axis"))
    axes.flat[0].legend(fontsize=8)
    return png_data_uri(fig)
