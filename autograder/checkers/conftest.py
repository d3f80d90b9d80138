"""Fixtures of the hidden checkers: the submission being graded, as plain data."""

from __future__ import annotations

import pytest

from autograder.checkers.support import Answers, Verdict


@pytest.fixture
def context():
    """The ``CheckContext`` of the submission being checked (artifacts, thresholds, language,
    data home).

    ``autograder.check`` parametrizes this fixture with one context per submission; it is
    only reachable through that runner."""
    raise RuntimeError("checkers run through autograder.check.run_checks, not plain pytest")


@pytest.fixture
def artifacts(context):
    return context.artifacts


@pytest.fixture
def answers(context):
    return Answers(context.artifacts)


@pytest.fixture
def thresholds(context):
    """The assignment's thresholds, every declared one resolved (``autograder.config``)."""
    return context.thresholds


@pytest.fixture
def data_home(context):
    """The folder holding the course data: the context's, never the cwd's or environment's."""
    return context.data_home


@pytest.fixture
def verdict(request):
    from autograder.check import VERDICT_KEY

    found = Verdict()
    request.node.stash[VERDICT_KEY] = found
    return found
