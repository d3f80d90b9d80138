"""Format checks: whether an answer has the right *form* (defined, right type, allowed letters).

They serve the questions whose expected value is itself the answer (step counts, letters,
labels, the diagnosis): in graded mode the student's notebook checks only the form, and the
hidden checkers decide whether the answer is right. Each check takes the value, returns
``Passed`` or raises ``Fail`` with a message id of the catalogue (``form.*``), never a
traceback of ours. ``dlcourse.selfcheck`` runs them and shows the verdict.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from dlcourse.checking import Fail, Passed, describe_found


def is_number(value: Any) -> bool:
    """A finite real number (bool is not a number here; NaN and infinity are not answers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(value: Any, name: str, *, minimum: int = 0) -> Passed:
    """A whole number (``5`` or ``5.0``) not below ``minimum``."""
    if not is_number(value):
        raise Fail("form.integer", name=name, found=describe_found(value))
    if float(value) != int(value):
        raise Fail("form.whole", name=name, found=describe_found(value))
    if value < minimum:
        raise Fail("form.minimum", name=name, minimum=minimum)
    return Passed("form.ok", name=name)


def number(value: Any, name: str, *, positive: bool = True) -> Passed:
    """A real number (positive if asked)."""
    if not is_number(value):
        raise Fail("form.number", name=name, found=describe_found(value))
    if positive and not value > 0:
        raise Fail("form.positive", name=name, found=describe_found(value))
    return Passed("form.ok", name=name)


def _options(letters: Iterable[str]) -> str:
    return ", ".join(f'"{letter}"' for letter in letters)


def letter(value: Any, name: str, *, options: str) -> Passed:
    """One of the letters in ``options``, as a string (``"b"``)."""
    found = value.strip().lower().rstrip(")").strip() if isinstance(value, str) else ""
    if len(found) != 1 or found not in options:
        raise Fail("form.letter", name=name, options=_options(options), found=describe_found(value))
    return Passed("form.ok", name=name)


def labels(value: Any, name: str, *, keys: Iterable[str], labels: Iterable[str]) -> Passed:
    """A dict with exactly ``keys``, each mapped to one of ``labels``."""
    keys, labels = list(keys), list(labels)
    if not isinstance(value, dict):
        raise Fail("form.dict", name=name, found=describe_found(value))
    missing = [k for k in keys if k not in value]
    if missing:
        raise Fail("form.missing_keys", name=name, keys=", ".join(map(str, missing)))
    unknown = [
        v for v in value.values() if not isinstance(v, str) or v.strip().lower() not in labels
    ]
    if unknown:
        raise Fail(
            "form.unknown_labels",
            name=name,
            found=", ".join(describe_found(v) for v in unknown[:4]),
            labels=", ".join(labels),
        )
    return Passed("form.ok", name=name)


def diagnosis(
    value: Any,
    name: str,
    *,
    label_keys: Iterable[str],
    labels: Iterable[str],
    set_keys: Iterable[str],
    letters: str,
) -> Passed:
    """A dict: each of ``label_keys`` maps to one of ``labels``, each of ``set_keys`` to letters."""
    label_keys, set_keys, labels = list(label_keys), list(set_keys), list(labels)
    if not isinstance(value, dict):
        raise Fail("form.dict", name=name, found=describe_found(value))
    missing = [k for k in (*label_keys, *set_keys) if k not in value]
    if missing:
        raise Fail("form.missing_keys", name=name, keys=", ".join(missing))
    for key in label_keys:
        item = value[key]
        if not isinstance(item, str) or item.strip().lower() not in labels:
            raise Fail(
                "form.diagnosis_label",
                name=name,
                key=key,
                labels=", ".join(labels),
                found=describe_found(item),
            )
    for key in set_keys:
        item = value[key]
        items = [c for c in item if c.isalpha()] if isinstance(item, str) else item
        if (
            not isinstance(items, (set, frozenset, list, tuple))
            or not items
            or not all(isinstance(i, str) and i.strip().lower() in letters for i in items)
        ):
            raise Fail(
                "form.diagnosis_letters",
                name=name,
                key=key,
                letters=_options(letters),
                found=describe_found(item),
            )
    return Passed("form.ok", name=name)
