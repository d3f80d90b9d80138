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


def test_every_stage_and_lms_error_id_is_defined():
    """What a stage or an LMS command says when it cannot go on is a catalogue id with
    parameters (``StageError``, ``LmsError``), never an English sentence in the code."""
    from pathlib import Path

    import autograder

    used = set()
    sentences = []
    for path in Path(autograder.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(
            re.findall(r'(?:StageError|LmsError|LmsSettingsError)\(\s*"([a-z0-9_.]+)"', text)
        )
        sentences += [
            f"{path.name}: {m}"
            for m in re.findall(r'raise Lms\w*Error\(\s*f?"([^"]*[A-Z ][^"]*)"', text)
        ]
    assert {"lms.collect.no_archive", "lms.roster.problems", "cli.nothing_exported"} <= used
    assert used <= set(catalogue()), sorted(used - set(catalogue()))
    assert not sentences, sentences


def test_a_roster_problem_list_renders_in_both_languages():
    from autograder.lms.common import LmsError
    from autograder.lms.roster import Person, Roster

    people = [Person("ana", email="a@x.org"), Person("ana", email="A@x.org"), Person("b c")]
    try:
        Roster(people, "roster.csv")
    except LmsError as exc:
        english, spanish, shown = exc.note.text("en"), exc.note.text("es"), str(exc)
    else:
        raise AssertionError("an invalid roster was accepted")
    assert "student id 'ana' appears twice" in english
    assert "email 'a@x.org' is given to both ana and ana" in english
    assert "student id 'b c' is not valid" in english
    assert "el id de estudiante 'ana' aparece dos veces" in spanish
    assert english == shown and english.count("\n  - ") == 3
