"""Practice mode: the release carries what a self-check needs to check hidden answers.

In the default (graded) mode the student's notebook checks only the form of answers that are
themselves the secret (step counts, letters, labels, the diagnosis). An instructor who sets an
assignment to ``"mode": "practice"`` in ``course_config.py`` gets, at ``autograder release``, a
``practice.json`` beside the release notebook: for each such answer, salted SHA-256 digests of
every accepted spelling. The self-check then says "right" or "not yet" at once.

This is **not** secrecy: an answer with a handful of possible values (a letter, a label) is
recovered from its digest by trying each value. Practice mode is for ungraded practice; a
class graded on these answers must stay in graded mode (docs/student.md says so plainly).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from pathlib import Path
from typing import Any

FILENAME = "practice.json"
MAX_BYTES = 100_000
WHOLE = ""  # the key of an answer that is one value (not a dict of items)


def digest(salt: str, question: str, key: str, canonical: str) -> str:
    return hashlib.sha256(f"{salt}\0{question}\0{key}\0{canonical}".encode()).hexdigest()


def canonical_items(kind: str, value: Any) -> dict[str, str] | None:
    """The student's answer as ``{key: canonical text}``, or None when its form is wrong.

    ``integer``: ``"7"``; ``letter``: ``"c"``; ``labels``: one lower-case label per key;
    ``diagnosis``: labels, and letter sets as sorted letters (``"abe"``)."""
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if not math.isfinite(value) or float(value) != int(value):
            return None
        return {WHOLE: str(int(value))}
    if kind == "letter":
        if isinstance(value, (set, frozenset)) and len(value) == 1:
            (value,) = value
        letter = value.strip().lower().rstrip(")").strip() if isinstance(value, str) else ""
        return {WHOLE: letter} if len(letter) == 1 else None
    if kind in ("labels", "diagnosis") and isinstance(value, dict):
        items = {}
        for key, item in value.items():
            if isinstance(item, str) and not (kind == "diagnosis" and str(key).startswith("remed")):
                items[str(key).strip()] = item.strip().lower()
            elif isinstance(item, (set, frozenset, list, tuple, str)):
                letters = [c for c in item if isinstance(c, str)]
                items[str(key).strip()] = "".join(sorted({c.strip().lower() for c in letters}))
        return items
    return None


def write(folder: Path, answer_key: dict[str, dict[str, Any]], salt: str) -> Path:
    """Write ``practice.json`` from an answer key ``{question: {"kind", "accepted": {key:
    [canonical texts]}}}`` (the grader builds it from the hidden checkers)."""
    questions = {
        question: {
            "kind": spec["kind"],
            "keys": {
                key: sorted(digest(salt, question, key, text) for text in accepted)
                for key, accepted in spec["accepted"].items()
            },
        }
        for question, spec in answer_key.items()
    }
    path = Path(folder) / FILENAME
    path.write_text(json.dumps({"salt": salt, "questions": questions}, indent=1) + "\n")
    return path


def load(folder: Path | None = None) -> dict[str, Any] | None:
    """The practice file beside the notebook (the kernel's working folder), or None."""
    path = Path(folder or ".") / FILENAME
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("questions"), dict)
    return data if ok and isinstance(data.get("salt"), str) else None


def judge(practice: dict[str, Any], question: str, value: Any) -> list[tuple[str, bool]] | None:
    """``[(key, right?)]`` for each item of ``question`` the practice file covers; None when it
    does not cover the question."""
    spec = practice["questions"].get(question)
    if not isinstance(spec, dict) or not isinstance(spec.get("keys"), dict):
        return None
    items = canonical_items(str(spec.get("kind")), value) or {}
    out = []
    for key, digests in spec["keys"].items():
        found = items.get(key)
        right = found is not None and digest(practice["salt"], question, key, found) in digests
        out.append((key, right))
    return out
