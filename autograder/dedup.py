"""Identical submissions executed once.

Many students hand in the given code unchanged, or the same answers. What runs is decided by
the rebuild alone (``execute.rebuild``: the locked cells come from the course, only the answer
cells' sources come from the submission; outputs, metadata and execution counts are dropped),
and grading is deterministic (fixed seeds, op determinism, fixed kernel threads). So two
submissions whose rebuilt notebooks are the same, for the same assignment version and settings,
get the same scores and messages: the batch executes one of them (the *leader*) and gives each
other one (a *follower*) the leader's cells under its own identity, with its own notes, digest,
work folder (a copy of the leader's artifacts, so ``regrade`` and the feedback plots work for
it) and gradebook row.

Only a run that completed is shared: a timeout or a dead kernel depends on the machine's load,
so the followers of such a leader are executed themselves. ``c.Course.deduplicate = False``
turns all of this off.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat

from autograder.core import Assignment, GradingSettings
from autograder.execute import SubmissionError, read_submission, rebuild
from autograder.results import Note, StudentResult
from autograder.untrusted import remove_tree
from dlcourse import layout

SHARED_TIMING = "shared_execution"  # in a follower's timing: 1.0 (it was not executed itself)


@dataclass(frozen=True)
class Execution:
    """What a submission would execute: its key and the rebuild's notes for this student."""

    key: str
    problems: tuple[Note, ...]


def execution_of(path: str, assignment: Assignment, settings: GradingSettings) -> Execution | None:
    """The key of what ``path`` would execute, or None when it cannot be read (its own job
    then says why). Reading is bounded as in the core (``read_submission``)."""
    try:
        submitted = read_submission(path)
    except SubmissionError:
        return None
    rebuilt = rebuild(
        submitted,
        nbformat.reads(assignment.source_json, as_version=4),
        nbformat.reads(assignment.release_json, as_version=4),
    )
    cells = [(c.get("cell_type"), c.get("source", "")) for c in rebuilt.notebook.cells]
    identity = {
        "assignment": assignment.id,
        "version": hashlib.sha256(
            (assignment.source_json + assignment.release_json).encode("utf-8")
        ).hexdigest(),
        "settings": [
            settings.language,
            settings.data_home,
            sorted(settings.kernel_env().items()),
            json.dumps(settings.thresholds, sort_keys=True, default=str),
        ],
        "cells": cells,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return Execution(key, tuple(rebuilt.problems))


def shareable(result: StudentResult) -> bool:
    """Only a completed execution is the same on any machine (not a timeout, a dead kernel)."""
    return result.status == "graded"


def follow(
    leader: StudentResult,
    leader_workdir: Path,
    student: str,
    workdir: Path,
    problems: tuple[Note, ...],
    digest: str | None,
) -> StudentResult:
    """The leader's grade for ``student``: the same cells, score and status; the student's own
    rebuild notes (the batch adds collect's), digest and work folder."""
    from autograder.core import add_notes

    remove_tree(workdir)
    shutil.copytree(
        leader_workdir,
        workdir,
        symlinks=True,
        ignore=shutil.ignore_patterns(layout.TIMESTAMP_FILE),
    )
    result = replace(
        leader,
        student=student,
        cells=dict(leader.cells),
        problems=[],
        notes=[],
        lateness={},
        submission_sha256=digest,
        timing={SHARED_TIMING: 1.0},
    )
    add_notes(result, problems)
    return result
