"""Read ``course_config.py``: nbgrader's settings and the course's own, from one file."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "course_config.py"
ENV_CONFIG = "COURSE_CONFIG"
ENV_STATE_DIR = "COURSE_STATE_DIR"


class ConfigError(RuntimeError):
    """The course configuration is missing or invalid."""


@dataclass(frozen=True)
class AssignmentSpec:
    """One assignment as configured: its id, notebook file and time limits."""

    id: str
    notebook: str
    timeout: float  # the whole notebook
    cell_timeout: float | None = None  # one cell; None: the course's (c.Execute.timeout)
    mode: str = "graded"  # "practice": the release carries an answer key (docs/student.md)


@dataclass
class Course:
    """Everything the package needs to know about the course, resolved to absolute paths.

    ``root`` holds ``source/`` and ``release/`` (the course repository). ``state_dir`` holds
    what grading produces (nbgrader's ``submitted/``, ``autograded/``, ``feedback/``, the
    gradebook, results and exports); it is ``root`` unless overridden (tests use a temporary one).
    """

    root: Path
    state_dir: Path
    course_id: str
    language: str
    data_home: str
    assignments: dict[str, AssignmentSpec]
    cell_timeout: float
    notebook_timeout: float
    thresholds: dict[str, Any]
    db_url_setting: str
    nbgrader_config: Config = field(repr=False)
    kernel_threads: int = 1
    workers: int = 0  # 0: one per core

    # nbgrader's layout, under the state directory (source and release live in the repo).
    @property
    def source_dir(self) -> Path:
        return self.root / "source"

    @property
    def release_dir(self) -> Path:
        return self.root / "release"

    @property
    def submitted_dir(self) -> Path:
        return self.state_dir / "submitted"

    @property
    def autograded_dir(self) -> Path:
        return self.state_dir / "autograded"

    @property
    def feedback_dir(self) -> Path:
        return self.state_dir / "feedback"

    @property
    def results_dir(self) -> Path:
        return self.state_dir / "results"

    @property
    def exports_dir(self) -> Path:
        return self.state_dir / "exports"

    @property
    def db_url(self) -> str:
        if self.db_url_setting:
            return self.db_url_setting
        return f"sqlite:///{self.state_dir / 'gradebook.db'}"

    def assignment(self, assignment_id: str) -> AssignmentSpec:
        try:
            return self.assignments[assignment_id]
        except KeyError:
            known = ", ".join(sorted(self.assignments)) or "none"
            raise ConfigError(
                f"Unknown assignment {assignment_id!r}; course_config.py defines: {known}."
            ) from None


def find_config_file(start: Path | None = None) -> Path:
    """``$COURSE_CONFIG``, else the nearest ``course_config.py`` from ``start`` upwards."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{ENV_CONFIG}={env} does not name a file.")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No {CONFIG_FILE} found in {here} or its parents. Run the command from the course "
        f"directory or set {ENV_CONFIG}=/path/to/{CONFIG_FILE}."
    )


def load_nbgrader_config(config_file: Path) -> Config:
    loader = PyFileConfigLoader(config_file.name, path=str(config_file.parent))
    return loader.load_config()


ASSIGNMENT_KEYS = ("notebook", "timeout", "cell_timeout", "mode")
MODES = ("graded", "practice")


def _assignment_spec(aid: str, spec: Any, notebook_timeout: float) -> AssignmentSpec:
    """One entry of ``c.Course.assignments``, strictly: unknown keys and modes are errors."""
    if not isinstance(spec, dict) or "notebook" not in spec:
        raise ConfigError(f'c.Course.assignments["{aid}"] must be a dict with a "notebook" key.')
    for key in spec:
        if key not in ASSIGNMENT_KEYS:
            near = difflib.get_close_matches(str(key), ASSIGNMENT_KEYS, n=1)
            hint = f' Did you mean "{near[0]}"?' if near else ""
            raise ConfigError(
                f'c.Course.assignments["{aid}"] has an unknown key "{key}".{hint} '
                f"Known keys: {', '.join(ASSIGNMENT_KEYS)}."
            )
    mode = str(spec.get("mode", "graded"))
    if mode not in MODES:
        raise ConfigError(f'c.Course.assignments["{aid}"]["mode"] must be "graded" or "practice".')
    return AssignmentSpec(
        id=aid,
        notebook=spec["notebook"],
        timeout=float(spec.get("timeout", notebook_timeout)),
        cell_timeout=float(spec["cell_timeout"]) if spec.get("cell_timeout") else None,
        mode=mode,
    )


def load_course(
    config_file: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> Course:
    """Load the course from ``course_config.py``.

    ``state_dir`` (or ``$COURSE_STATE_DIR``) moves the grading state (submitted notebooks,
    gradebook, feedback, exports) away from the course root, e.g. into a temporary folder.
    """
    path = Path(config_file).resolve() if config_file else find_config_file()
    cfg = load_nbgrader_config(path)
    root = path.parent
    course = cfg.get("Course", Config())
    state = state_dir or os.environ.get(ENV_STATE_DIR) or root
    notebook_timeout = float(course.get("notebook_timeout", 600))
    assignments = {
        aid: _assignment_spec(aid, spec, notebook_timeout)
        for aid, spec in dict(course.get("assignments", {})).items()
    }
    language = str(course.get("language", "es"))
    if language not in ("es", "en"):
        raise ConfigError(f"Course.language must be 'es' or 'en', not {language!r}.")
    cell_timeout = cfg.get("Execute", Config()).get("timeout", 120)
    return Course(
        root=root,
        state_dir=Path(state).resolve(),
        course_id=str(cfg.get("CourseDirectory", Config()).get("course_id", "course")),
        language=language,
        data_home=str(course.get("data_home", "")),
        assignments=assignments,
        cell_timeout=float(cell_timeout),
        notebook_timeout=notebook_timeout,
        thresholds=dict(course.get("thresholds", {})),
        db_url_setting=str(course.get("db_url", "")),
        nbgrader_config=cfg,
        kernel_threads=int(course.get("kernel_threads", 1)),
        workers=int(course.get("workers", 0)),
    )
