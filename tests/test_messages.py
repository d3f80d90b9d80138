"""Every message exists in Spanish and English, and every id a checker raises is defined."""

import re

import jinja2

from autograder.check import CHECKERS_DIR
from autograder.messages import catalogue


def test_every_message_has_both_languages():
    for message_id, texts in catalogue().items():
        assert texts["es"].strip() and texts["en"].strip(), message_id
        for key in ("es", "en", "hint_es", "hint_en"):
            if key in texts:
                jinja2.Environment().parse(texts[key])
        assert ("hint_es" in texts) == ("hint_en" in texts), message_id


def test_every_message_id_used_by_checkers_is_defined():
    used = set()
    for path in [*CHECKERS_DIR.glob("*.py")]:
        used |= set(re.findall(r'(?:Fail|ok)\(\s*"([a-z0-9_.]+)"', path.read_text()))
    assert used, "no message ids found"
    assert used <= set(catalogue()), sorted(used - set(catalogue()))


def test_every_message_renders_in_both_languages_with_its_parameters():
    """Every id of the one catalogue (checks, pipeline reasons, repair notes, LMS words) renders
    in Spanish and English when given each parameter its template names."""
    from jinja2 import meta

    from autograder.messages import LANGUAGES, render, render_hint

    env = jinja2.Environment()
    for message_id, texts in catalogue().items():
        names = set()
        for source in texts.values():
            names |= meta.find_undeclared_variables(env.parse(source))
        for value in ("x", 1.5):  # a text; a number, for templates that format numbers
            params = dict.fromkeys(names, value)
            try:
                for language in LANGUAGES:
                    assert render(message_id, params, language).strip(), (message_id, language)
                    render_hint(message_id, params, language)
                break
            except (TypeError, ValueError):
                continue
        else:
            raise AssertionError(f"{message_id} renders with neither texts nor numbers")


def test_no_stage_sends_english_sentences_to_be_parsed_back():
    """Reasons and repair notes travel as ids and parameters (``autograder.results.Note``):
    nothing in the package matches a message text with a regular expression."""
    from pathlib import Path

    import autograder

    root = Path(autograder.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "REASON_PATTERNS" not in text and "NOTE_PATTERNS" not in text, path
        assert "def localize(" not in text, path
