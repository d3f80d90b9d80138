"""Fixtures of the hidden checkers: the submission being graded, as plain data."""

from __future__ import annotations

import pytest

from autograder.checkers.support import Answers, Verdict


def _context(request):
    from autograder.check import CONTEXT_KEY

    return request.config.stash[CONTEXT_KEY]


@pytest.fixture
def context(request):
    """The ``CheckContext``: artifacts folder, course configuration, language."""
    return _context(request)


@pytest.fixture
def artifacts(context):
    return context.artifacts


@pytest.fixture
def answers(context):
    return Answers(context.artifacts)


@pytest.fixture
def thresholds(context):
    return context.thresholds


@pytest.fixture
def verdict(request):
    from autograder.check import VERDICT_KEY

    found = Verdict()
    request.node.stash[VERDICT_KEY] = found
    return found
