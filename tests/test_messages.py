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
