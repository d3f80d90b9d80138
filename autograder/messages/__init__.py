"""The grader's message catalogue: the student distribution's public messages plus the files of
this folder (hidden checks, submission errors, feedback). See ``dlcourse.catalogue``."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from dlcourse.catalogue import LANGUAGES, Catalogue, messages_folder

__all__ = ["LANGUAGES", "catalogue", "render", "render_all", "render_hint"]


@lru_cache(maxsize=1)
def _catalogue() -> Catalogue:
    return Catalogue.from_folders(messages_folder(), resources.files(__package__))


def catalogue() -> dict[str, dict[str, str]]:
    """Every message id and its texts."""
    return _catalogue().entries


def render(message_id: str, params: dict | None = None, language: str = "es") -> str:
    return _catalogue().render(message_id, params, language)


def render_hint(message_id: str, params: dict | None = None, language: str = "es") -> str | None:
    return _catalogue().render_hint(message_id, params, language)


def render_all(message_id: str, params: dict | None = None) -> dict[str, str]:
    return _catalogue().render_all(message_id, params)
