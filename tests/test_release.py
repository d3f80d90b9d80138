"""release/ is generated from source/ by nbgrader, is in sync, and leaks nothing."""

import shutil

import nbformat
import pytest

from autograder.release import generate_release, leaked_lines
from tests.conftest import ROOT


def assignments(course):
    return sorted(course.assignments)


def comparable(nb):
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in nb.cells]


def test_committed_release_equals_regenerated(course, tmp_path):
    work = tmp_path / "course"
    shutil.copytree(ROOT / "source", work / "source")
    for aid in assignments(course):
        spec = course.assignment(aid)
        folder = generate_release(course, aid, root=work)
        fresh = nbformat.read(folder / spec.notebook, as_version=4)
        committed = nbformat.read(course.release_dir / aid / spec.notebook, as_version=4)
        assert comparable(fresh) == comparable(committed), (
            f"release/{aid} is stale: run `autograder release {aid}` and commit it"
        )


def test_release_holds_no_solution_or_hidden_test(course):
    for aid in assignments(course):
        spec = course.assignment(aid)
        source = nbformat.read(course.source_dir / aid / spec.notebook, as_version=4)
        release = nbformat.read(course.release_dir / aid / spec.notebook, as_version=4)
        assert leaked_lines(source, release) == []
        text = (course.release_dir / aid / spec.notebook).read_text()
        for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "capture.answers("):
            assert marker not in text
        assert sorted(p.name for p in (course.release_dir / aid).iterdir()) == [spec.notebook]


def test_leak_detector_catches_a_leak(course):
    aid = "lesson4_learning_rate"
    spec = course.assignment(aid)
    source = nbformat.read(course.source_dir / aid / spec.notebook, as_version=4)
    release = nbformat.read(course.release_dir / aid / spec.notebook, as_version=4)
    release.cells[-1].source += '\ncapture.answers(globals(), "steps_lr_003")'
    assert leaked_lines(source, release)


@pytest.mark.parametrize("aid", ["lesson4_learning_rate"])
def test_answer_cells_are_stubs_in_spanish(course, aid):
    spec = course.assignment(aid)
    release = nbformat.read(course.release_dir / aid / spec.notebook, as_version=4)
    stubs = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert stubs and all("# TU CÓDIGO AQUÍ" in c.source for c in stubs)
