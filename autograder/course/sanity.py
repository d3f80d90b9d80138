"""Visible sanity tests: friendly format checks that students run in their notebook.

They only check the *form* of an answer (defined, right type, allowed letters); whether it is
right is decided by the hidden checkers at grading time. Every message is in Spanish with the
English beside it. Frames are hidden from IPython tracebacks so the student sees the message,
not our code.
"""

from __future__ import annotations

import math
import numbers


class SanityCheckFailed(AssertionError):
    """An answer does not have the expected form yet."""


def _fail(es: str, en: str) -> None:
    __tracebackhide__ = True
    raise SanityCheckFailed(f"✗ {es}\n  (EN: {en})")


def _ok(name: str) -> None:
    print(
        f"✓ {name}: el formato es correcto; la respuesta se califica al entregar. "
        f"(EN: the format is right; the answer is graded on submission.)"
    )


def _get(name: str, namespace: dict):
    __tracebackhide__ = True
    if name not in namespace:
        _fail(
            f"Aún no has definido `{name}`: escribe tu respuesta en la celda de arriba y ejecútala.",
            f"`{name}` is not defined yet: write your answer in the cell above and run it.",
        )
    value = namespace[name]
    if value is Ellipsis:
        _fail(
            f"`{name}` todavía es `...`: sustitúyelo por tu respuesta.",
            f"`{name}` is still `...`: replace it with your answer.",
        )
    return value


def _is_number(value) -> bool:
    """A finite real number (bool is not a number here; NaN and infinity are not answers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_integer(name: str, namespace: dict, minimum: int = 0) -> None:
    """``name`` holds a whole number (``5`` or ``5.0``) not below ``minimum``."""
    __tracebackhide__ = True
    value = _get(name, namespace)
    if not _is_number(value):
        _fail(
            f"`{name}` debe ser un número entero (por ejemplo 7), no {value!r}.",
            f"`{name}` must be a whole number (e.g. 7), not {value!r}.",
        )
    if float(value) != int(value):
        _fail(
            f"`{name}` debe ser un número entero: los pasos se cuentan de uno en uno.",
            f"`{name}` must be a whole number: steps are counted one by one.",
        )
    if value < minimum:
        _fail(f"`{name}` no puede ser menor que {minimum}.", f"`{name}` cannot be below {minimum}.")
    _ok(name)


def check_number(name: str, namespace: dict, positive: bool = True) -> None:
    """``name`` holds a real number (positive if asked)."""
    __tracebackhide__ = True
    value = _get(name, namespace)
    if not _is_number(value):
        _fail(
            f"`{name}` debe ser un número (por ejemplo 0.5), no {value!r}.",
            f"`{name}` must be a number (e.g. 0.5), not {value!r}.",
        )
    if positive and not value > 0:
        _fail(f"`{name}` debe ser un número positivo.", f"`{name}` must be a positive number.")
    _ok(name)


def check_letter(name: str, namespace: dict, options: str) -> None:
    """``name`` holds one of the letters in ``options`` (as a string, e.g. ``"b"``)."""
    __tracebackhide__ = True
    value = _get(name, namespace)
    letter = value.strip().lower().rstrip(")").strip() if isinstance(value, str) else ""
    if len(letter) != 1 or letter not in options:
        allowed = ", ".join(f'"{o}"' for o in options)
        _fail(
            f"`{name}` debe ser una de las letras {allowed}, como texto entre comillas.",
            f"`{name}` must be one of the letters {allowed}, as a quoted string.",
        )
    _ok(name)


def check_labels(name: str, namespace: dict, keys, labels) -> None:
    """``name`` is a dict with exactly ``keys``, each mapped to one of ``labels``."""
    __tracebackhide__ = True
    value = _get(name, namespace)
    if not isinstance(value, dict):
        _fail(
            f"`{name}` debe ser un diccionario como {{'A': 'tasa_baja', ...}}.",
            f"`{name}` must be a dict such as {{'A': 'tasa_baja', ...}}.",
        )
    missing = [k for k in keys if k not in value]
    if missing:
        _fail(f"A `{name}` le faltan las claves {missing}.", f"`{name}` lacks the keys {missing}.")
    unknown = [
        v for v in value.values() if not isinstance(v, str) or v.strip().lower() not in labels
    ]
    if unknown:
        _fail(
            f"`{name}` usa etiquetas desconocidas {unknown}; usa solo {list(labels)}.",
            f"`{name}` uses unknown labels {unknown}; use only {list(labels)}.",
        )
    _ok(name)
