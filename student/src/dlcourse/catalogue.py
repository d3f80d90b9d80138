"""The message catalogue: every text a person reads, in Spanish and English, keyed by id.

A verdict carries a message id and parameters (``dlcourse.checking``); the texts are jinja2
templates in TOML files (``es``/``en``, optionally ``hint_es``/``hint_en``). The student
distribution ships the public messages (``dlcourse/messages/*.toml``); the grader adds its own
folder (hidden checks, feedback, reports) with ``Catalogue.from_folders``. An id defined twice
is an error, so the two halves can never disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

if sys.version_info >= (3, 11):  # noqa: UP036 - the student wheel supports 3.10
    import tomllib
else:  # Python 3.10 (Gradescope's Ubuntu 22.04, older laptops): the same parser, packaged
    import tomli as tomllib

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "es"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def _flatten(table: dict, prefix: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """``[steps.correct]`` is a nested table in TOML; ids are the dotted paths to the texts."""
    for key, value in table.items():
        if isinstance(value, dict) and "es" in value and "en" in value:
            yield prefix + key, value
        elif isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")


@lru_cache(maxsize=1024)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


class Catalogue:
    """Message ids and their texts; renders a verdict in a language."""

    def __init__(self, entries: dict[str, dict[str, str]]):
        self.entries = entries

    @classmethod
    def from_folders(cls, *folders: Traversable) -> Catalogue:
        merged: dict[str, dict[str, str]] = {}
        for folder in folders:
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if not entry.name.endswith(".toml"):
                    continue
                table = tomllib.loads(entry.read_text(encoding="utf-8"))
                for message_id, texts in _flatten(table):
                    if message_id in merged:
                        raise ValueError(f"message id {message_id!r} is defined twice ({entry})")
                    merged[message_id] = texts
        return cls(merged)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.entries

    def render(self, message_id: str, params: dict[str, Any] | None = None, language: str = "es"):
        """The text of ``message_id`` in ``language`` with ``params`` filled in."""
        entry = self.entries.get(message_id)
        if entry is None:
            raise KeyError(f"Unknown message id {message_id!r}; add it to a catalogue file.")
        return _template(entry[language]).render(**self._params(params, language))

    def _params(self, params: dict[str, Any] | None, language: str) -> dict[str, Any]:
        """A parameter that is itself a message (``{"id": ..., "params": {...}}``, e.g. why a
        cell never ran) is rendered in the same language: a sentence never quotes another
        language's reason."""
        out = {}
        for key, value in (params or {}).items():
            if (
                isinstance(value, dict)
                and isinstance(value.get("id"), str)
                and value["id"] in self.entries
                and set(value) <= {"id", "params"}
            ):
                value = self.render(value["id"], value.get("params") or {}, language)
            out[key] = value
        return out

    def render_hint(
        self, message_id: str, params: dict[str, Any] | None = None, language: str = "es"
    ) -> str | None:
        source = self.entries.get(message_id, {}).get(f"hint_{language}")
        return _template(source).render(**self._params(params, language)) if source else None

    def render_all(self, message_id: str, params: dict[str, Any] | None = None) -> dict[str, str]:
        """The message in every language: ``{"es": ..., "en": ...}``."""
        return {lang: self.render(message_id, params, lang) for lang in LANGUAGES}


ENV_LANGUAGE = "DLCOURSE_LANGUAGE"


def course_language(language: str | None = None) -> str:
    """``language``, else ``$DLCOURSE_LANGUAGE``, else Spanish (an unknown one: Spanish)."""
    import os

    chosen = (language or os.environ.get(ENV_LANGUAGE) or DEFAULT_LANGUAGE).strip().lower()
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def say(message_id: str, language: str | None = None, **params: Any) -> str:
    """A public message in the course language (the student side's words: playground...)."""
    return student_catalogue().render(message_id, params, course_language(language))


def messages_folder() -> Traversable:
    """The student distribution's catalogue files."""
    return resources.files("dlcourse") / "messages"


@lru_cache(maxsize=1)
def student_catalogue() -> Catalogue:
    """The public messages: what a self-check in the student's notebook can say."""
    return Catalogue.from_folders(messages_folder())
