"""What a captured ``History`` proves about the one ``fit`` that made it, for every lesson.

``history.history``, ``history.epoch`` and ``history.params`` live in the student's kernel and
can be edited by hand; so can the optimizer's step counter, but the three must agree with each
other for the record to be one ``fit``'s: every series holds one value per epoch, the epochs are
numbered in order, and the optimizer took ``epochs × steps`` gradient steps (every ``fit`` adds
that many; a second ``fit`` adds more, a padded history claims more than there were). Each
lesson's messages live in its own catalogue under ``<prefix>.series_lengths``,
``<prefix>.epoch_list``, ``<prefix>.iterations_fewer`` and ``<prefix>.iterations_more``, with
the parameters given here.
"""

from __future__ import annotations

import math
from typing import Any

from dlcourse.checking import Fail, short_summary


def whole(value: Any) -> int | None:
    """``value`` as an int when it is a finite whole number (never a bool), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        if math.isfinite(value) and float(value) == int(value):
            return int(value)
    except OverflowError:  # an int beyond float range, typed by hand
        return None
    return None


def first_epoch(epoch_list: Any) -> int:
    """The ``initial_epoch`` of the ``fit``: the first number of ``history.epoch`` (0 without one)."""
    first = whole(epoch_list[0]) if isinstance(epoch_list, list) and epoch_list else None
    return first if first is not None and first >= 0 else 0


def check_one_fit(
    values: dict[str, list],
    epoch_list: Any,
    *,
    iterations: Any,
    steps: Any,
    prefix: str,
) -> None:
    """Raise ``Fail`` when ``history`` cannot be the record of one ``fit`` of this model.

    ``values`` is ``history.history`` (its ``loss`` series counts the epochs), ``epoch_list``
    ``history.epoch`` (None when not captured), ``iterations`` the model's
    ``optimizer.iterations`` after training (None when unknown: nothing is claimed then) and
    ``steps`` ``history.params['steps']``.
    """
    n = len(values.get("loss") or [])
    for key, series in sorted(values.items()):
        if len(series) != n:
            raise Fail(
                f"{prefix}.series_lengths",
                key=short_summary(key, limit=80),
                found=len(series),
                n=n,
            )
    if isinstance(epoch_list, list):
        start = first_epoch(epoch_list)
        if [whole(e) for e in epoch_list] != list(range(start, start + n)):
            raise Fail(
                f"{prefix}.epoch_list",
                n_found=len(epoch_list),
                first=short_summary(epoch_list[0], limit=80) if epoch_list else "-",
                last=short_summary(epoch_list[-1], limit=80) if epoch_list else "-",
                n=n,
            )
    taken, per_epoch = whole(iterations), whole(steps)
    if taken is None or per_epoch is None or per_epoch <= 0:
        return
    expected = n * per_epoch
    params = {"iterations": taken, "epochs": n, "steps": per_epoch, "expected": expected}
    if taken < expected:
        raise Fail(f"{prefix}.iterations_fewer", **params)
    if taken > expected:
        raise Fail(f"{prefix}.iterations_more", **params)
