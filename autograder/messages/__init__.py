"""Messages are data: a checker outcome carries a message id and parameters; the texts live in
the ``*.toml`` files of this folder (``common.toml`` plus one per assignment; Spanish and English
side by side) and are rendered with jinja2."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

import jinja2

LANGUAGES = ("es", "en")
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        for message_id, texts in _flatten(tomllib.loads(entry.read_text(encoding="utf-8"))):
            if message_id in merged:
                raise ValueError(f"message id {message_id!r} is defined twice ({entry.name})")
            merged[message_id] = texts
    return merged


def _flatten(table: dict, prefix: str = ""):
    """``[steps.correct]`` is a nested table in TOML; ids are the dotted paths to the texts."""
    for key, value in table.items():
        if isinstance(value, dict) and "es" in value and "en" in value:
            yield prefix + key, value
        elif isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")


@lru_cache(maxsize=512)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(message_id: str, params: dict | None = None, language: str = "es") -> str:
    """The text of ``message_id`` in ``language`` with ``params`` filled in."""
    entry = catalogue().get(message_id)
    if entry is None:
        raise KeyError(
            f"Unknown message id {message_id!r}; add it to a catalogue file in autograder/messages/."
        )
    return _template(entry[language]).render(**(params or {}))


def render_hint(message_id: str, params: dict | None = None, language: str = "es") -> str | None:
    entry = catalogue().get(message_id, {})
    source = entry.get(f"hint_{language}")
    return _template(source).render(**(params or {})) if source else None


def render_all(message_id: str, params: dict | None = None) -> dict[str, str]:
    """The message in every language: ``{"es": ..., "en": ...}``."""
    return {lang: render(message_id, params, lang) for lang in LANGUAGES}
