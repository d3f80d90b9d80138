"""Self-checks in the student's notebook: tell at once whether an answer matches the lesson.

``check = Checker("lesson4_early_stopping", globals())`` in the setup cell, then
``check("early_stopping")`` in a visible test cell, ``check.hint("early_stopping")`` for a
hint and ``check.all()`` before submitting. A check captures the answer into memory with the
capture the hidden test cell runs, then judges it with the public rules the hidden checker
uses (``dlcourse.assignments``), so the message ids and texts are the grader's own. Answers
that are themselves the secret get a format check only. A self-check never sets a grade, and
never shows a traceback: a failure is a short styled message in the course language with the
other language a click away.

The course language is ``$DLCOURSE_LANGUAGE`` (``es`` or ``en``; ``es`` by default) or the
``language`` argument. While a notebook is being graded the self-checks do nothing (the hidden
checkers decide); under ``nbgrader validate`` a failed check raises a short error, so that
validation reports it.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from typing import Any

from dlcourse import capture, practice
from dlcourse.artifacts import MemoryArtifacts
from dlcourse.assignments import ASSIGNMENTS, Question
from dlcourse.catalogue import LANGUAGES, course_language, student_catalogue
from dlcourse.checking import Fail, NotAttempted, Passed

ENV_VALIDATING = "NBGRADER_VALIDATING"  # set by ``nbgrader validate``


@dataclass(frozen=True)
class Outcome:
    """One check's verdict: ``passed``, ``failed``, ``not_attempted`` or ``error``."""

    status: str
    message_id: str
    params: dict[str, Any] = field(default_factory=dict)


class _Shown:
    """A verdict that shows itself: plain text in a terminal, a short styled box in Jupyter
    (course language, the other language a click away)."""

    language: str
    ok: bool

    def text(self, language: str | None = None) -> str:
        raise NotImplementedError

    def _html(self, language: str) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        other = _other(self.language)
        return _box(self.ok, self._html(self.language), self._html(other), other)


@dataclass(repr=False)
class Result(_Shown):
    """What a self-check of one question found; shows itself in the notebook."""

    question: str
    outcomes: list[Outcome]
    form_only: bool
    language: str

    @property
    def answered(self) -> bool:
        return not any(o.status == "not_attempted" for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "error")]

    @property
    def ok(self) -> bool:
        return self.answered and not self.failed

    def hints(self, language: str | None = None) -> list[str]:
        catalogue = student_catalogue()
        found = []
        for outcome in self.failed:
            text = catalogue.render_hint(
                outcome.message_id, outcome.params, language or self.language
            )
            if text and text not in found:
                found.append(text)
        return found

    def lines(self, language: str) -> tuple[str, list[tuple[str, str]]]:
        """The summary and one (mark, text) per outcome worth showing, in ``language``."""
        render = student_catalogue().render
        shown = [] if (self.ok and self.form_only) else self.outcomes
        marks = {"passed": "✓", "failed": "✗", "not_attempted": "…", "error": "!"}
        items: list[tuple[str, str]] = []
        for o in shown:
            item = (marks[o.status], render(o.message_id, o.params, language))
            if item not in items:  # two checks may say the same thing (e.g. "not compiled")
                items.append(item)
        if not self.answered:
            summary = ""
        elif self.failed:
            summary = render(
                "selfcheck.failed", {"failed": len(self.failed), "n": len(self.outcomes)}, language
            )
        elif self.form_only:
            summary = render(self.outcomes[0].message_id, self.outcomes[0].params, language)
        else:
            summary = render("selfcheck.passed", {"n": len(self.outcomes)}, language)
        return summary, items

    def text(self, language: str | None = None) -> str:
        language = language or self.language
        render = student_catalogue().render
        summary, items = self.lines(language)
        out = [
            ("✓ " if self.ok else "✗ ")
            + render("selfcheck.title", {"name": self.question}, language)
        ]
        out += [f"  {summary}"] if summary else []
        out += [f"  {mark} {text}" for mark, text in items]
        out += [f"  💡 {hint}" for hint in self.hints(language)]
        return "\n".join(out)

    def _html(self, language: str) -> str:
        render = student_catalogue().render
        summary, items = self.lines(language)
        title = render("selfcheck.title", {"name": self.question}, language)
        parts = [f"<strong>{'✓' if self.ok else '✗'} {_inline(title)}</strong>"]
        if summary:
            parts.append(f"<div>{_inline(summary)}</div>")
        if items:
            lis = "".join(
                f"<li><span aria-hidden='true'>{m}</span> {_inline(t)}</li>" for m, t in items
            )
            parts.append(f"<ul style='margin:.3em 0 0 0;padding-left:1.2em'>{lis}</ul>")
        for hint in self.hints(language):
            label = render("selfcheck.hint", {}, language)
            parts.append(f"<details><summary>💡 {label}</summary>{_inline(hint)}</details>")
        return "".join(parts)


@dataclass(repr=False)
class Summary(_Shown):
    """``check.all()``: every question's state, the unanswered ones named first."""

    results: dict[str, Result]
    language: str

    @property
    def unanswered(self) -> list[str]:
        return [name for name, r in self.results.items() if not r.answered]

    def _lines(self, language: str) -> tuple[str, str, list[tuple[str, str]]]:
        render = student_catalogue().render
        total, missing = len(self.results), self.unanswered
        title = render(
            "selfcheck.summary_title", {"answered": total - len(missing), "total": total}, language
        )
        if missing:
            names = ", ".join(f"`{n}`" for n in missing)
            status = render("selfcheck.unanswered", {"names": names}, language)
        else:
            status = render("selfcheck.all_answered", {}, language)
        items = []
        for name, result in self.results.items():
            if not result.answered:
                items.append(("…", render("selfcheck.line_unanswered", {"name": name}, language)))
            elif result.failed:
                params = {"name": name, "failed": len(result.failed)}
                items.append(("✗", render("selfcheck.line_failed", params, language)))
            else:
                items.append(("✓", render("selfcheck.line_ok", {"name": name}, language)))
        return title, status, items

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    def text(self, language: str | None = None) -> str:
        title, status, items = self._lines(language or self.language)
        return "\n".join([title, f"  {status}", *[f"  {m} {t}" for m, t in items]])

    def _html(self, language: str) -> str:
        title, status, items = self._lines(language)
        lis = "".join(
            f"<li><span aria-hidden='true'>{m}</span> {_inline(t)}</li>" for m, t in items
        )
        return (
            f"<strong>{_inline(title)}</strong><div>{_inline(status)}</div>"
            f"<ul style='margin:.3em 0 0 0;padding-left:1.2em'>{lis}</ul>"
        )


class SelfCheckFailed(AssertionError):
    """Raised only under ``nbgrader validate``; IPython shows its short text, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


class Checker:
    """The self-checks of one assignment, bound to the notebook's namespace."""

    def __init__(self, assignment: str, namespace: dict, *, language: str | None = None):
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"unknown assignment {assignment!r}; known: {sorted(ASSIGNMENTS)}")
        self.assignment = ASSIGNMENTS[assignment]
        self.namespace = namespace
        self.language = _language(language)
        self.last: dict[str, Result] = {}

    @property
    def questions(self) -> list[str]:
        return list(self.assignment.questions)

    def __call__(self, question: str) -> Result | None:
        """Check one question now and show the verdict (nothing while graded)."""
        if capture.artifacts_dir() is not None:
            print(student_catalogue().render("selfcheck.graded", {}, self.language))
            return None
        return _shown(self.result(question))

    def result(self, question: str) -> Result:
        """The verdict of one question, without the grading and validation rules of ``()``."""
        spec = self.assignment.questions.get(question)
        if spec is None:
            names = ", ".join(f"`{n}`" for n in self.questions)
            outcome = Outcome(
                "error", "selfcheck.unknown_question", {"name": question, "names": names}
            )
            return Result(question, [outcome], False, self.language)
        outcomes = _run(spec, self.namespace)
        if spec.practice and outcomes and outcomes[0].status == "passed":
            outcomes += _practice(question, spec, self.namespace[spec.answer])
        form_only = spec.form is not None and len(outcomes) == 1
        result = Result(question, outcomes, form_only, self.language)
        self.last[question] = result
        return result

    def all(self) -> Summary | None:
        """Every question's check, and which questions are still unanswered."""
        if capture.artifacts_dir() is not None:
            return None
        return _shown(Summary({q: self.result(q) for q in self.questions}, self.language))

    def hint(self, question: str) -> str:
        """The hints for the checks of ``question`` that failed last time (printed)."""
        result = self.last.get(question) or self.result(question)
        hints = result.hints()
        text = "\n".join(f"💡 {h}" for h in hints) or student_catalogue().render(
            "selfcheck.no_hint", {"name": question}, self.language
        )
        print(text)
        return text


def _shown(verdict):
    """The verdict as the cell's result. Under ``nbgrader validate`` a failure raises (so that
    validation reports it) and a success is printed: validate would try to read a returned
    value as a partial-credit number."""
    if not os.environ.get(ENV_VALIDATING):
        return verdict
    if not verdict.ok:
        raise SelfCheckFailed(verdict.text())
    print(verdict.text())
    return None


def _run(spec: Question, namespace: dict) -> list[Outcome]:
    missing = [n for n in spec.variables if n not in namespace or namespace[n] is Ellipsis]
    if spec.answer in missing:
        return [Outcome("not_attempted", "not_attempted", {"name": spec.answer})]
    if spec.form is not None:
        return [_outcome(lambda: spec.form(namespace[spec.answer], spec.answer))]
    store = MemoryArtifacts()
    try:
        with capture.recording(store):
            spec.capture(namespace)
        submission = spec.submission(store, None, data=_course_arrays)
    except Exception as exc:  # noqa: BLE001 - a self-check never shows our traceback
        return [Outcome("error", "selfcheck.internal_error", {"error": _error(exc)})]
    return [_outcome(lambda rule=rule: rule(submission)) for rule in spec.rules]


def _practice(question: str, spec: Question, value: Any) -> list[Outcome]:
    """Practice mode only: whether each item is right, from the release's ``practice.json``."""
    data = practice.load()
    verdicts = practice.judge(data, question, value) if data else None
    outcomes = []
    for key, right in verdicts or []:
        params = {"name": spec.answer, "item": f"['{key}']" if key else ""}
        if right:
            outcomes.append(Outcome("passed", "practice.right", params))
        else:
            outcomes.append(Outcome("failed", "practice.wrong", params))
    return outcomes


def _outcome(check) -> Outcome:
    try:
        passed: Passed = check()
    except Fail as exc:
        return Outcome("failed", exc.message_id, dict(exc.params))
    except NotAttempted as exc:
        return Outcome("not_attempted", "not_attempted", dict(exc.params))
    except Exception as exc:  # noqa: BLE001 - never a traceback of ours in the notebook
        return Outcome("error", "selfcheck.internal_error", {"error": _error(exc)})
    return Outcome("passed", passed.message_id, dict(passed.params))


def _course_arrays():
    from dlcourse.data import course_arrays

    return course_arrays()


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _language(language: str | None) -> str:
    return course_language(language)


def _other(language: str) -> str:
    return next(lang for lang in LANGUAGES if lang != language)


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    """Message text as HTML: escaped, with `code` and **bold** spans."""
    escaped = _CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))
    return _BOLD.sub(r"<strong>\1</strong>", escaped)


def _box(ok: bool, body: str, other_body: str, other: str) -> str:
    colour = "#1a7f37" if ok else "#b35900"
    label = student_catalogue().render("selfcheck.other_language", {}, _other(other))
    return (
        f"<div role='status' style='border-left:4px solid {colour};padding:.4em .8em;"
        f"margin:.3em 0;background:rgba(127,127,127,.08);max-width:60em'>{body}"
        f"<details lang='{other}' style='margin-top:.4em;opacity:.85'>"
        f"<summary>{label}</summary>{other_body}</details></div>"
    )
