"""Read ``course_config.py``: nbgrader's settings and the course's own, from one file.

The course's own settings (``c.Course.*``) follow one typed schema, declared below as
dataclasses (every key, its type and its default; ``docs/settings.md`` lists them). It is
validated once, in ``load_course``: an unknown or misspelt key at any level, or a value of the
wrong type, is a ``ConfigError`` that says where it is and what was meant. The stages read the
typed objects (``Course.lms``, ``Course.thresholds``...), never the raw dicts.
"""

from __future__ import annotations

import difflib
import os
import types
import warnings
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue, PyFileConfigLoader

from autograder.results import InvalidSetting, StageError

CONFIG_FILE = "course_config.py"
ENV_CONFIG = "COURSE_CONFIG"
ENV_STATE_DIR = "COURSE_STATE_DIR"


class ConfigError(StageError):
    """The course configuration is missing or invalid: a catalogue message
    (``autograder/messages/config.toml``) with its parameters, shown in the reader's language;
    ``str()`` is the English text."""


# --- the validator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Keyed:
    """Marks a setting given per assignment (``Annotated[T, PER_ASSIGNMENT]``)."""

    scalar: bool  # one value for every assignment is accepted too
    star: bool = True  # "*" stands for every assignment not named


PER_ASSIGNMENT = _Keyed(scalar=True)  # a value, or {assignment id | "*": value}
BY_ASSIGNMENT = _Keyed(scalar=False)  # {assignment id | "*": value}
ASSIGNMENT_IDS = _Keyed(scalar=False, star=False)  # {assignment id: value}


def nearest(key: object, known) -> str | None:
    """The valid key closest to ``key`` (difflib), or None when none is close."""
    near = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return near[0] if near else None


def unknown_key(where: str, key: object, known, what: str = "key") -> ConfigError:
    """``what`` is key, assignment, threshold or column role (the catalogue words them)."""
    known = sorted(str(k) for k in known)
    return ConfigError(
        "config.unknown_key",
        where=where,
        key=str(key),
        what=what,
        near=nearest(key, known),
        known=known,
    )


@dataclass
class _Scope:
    """What validation needs beyond the value: the course's assignment ids (None: unknown)."""

    assignments: tuple[str, ...] | None = None


# types in Python's notation, the same in every language ("float | {assignment_id: float}")
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", type(None): "None"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        keyed = next((m for m in meta if isinstance(m, _Keyed)), None)
        if keyed is None:
            return _describe(base)
        by = f"{{assignment_id: {_describe(base)}}}"
        return f"{_describe(base)} | {by}" if keyed.scalar else by
    if origin in (Union, types.UnionType):
        return " | ".join(_describe(a) for a in get_args(tp))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin is dict:
        key, value = get_args(tp)
        return f"dict[{_describe(key)}, {_describe(value)}]"
    if origin in (list, tuple):
        return f"list[{_describe(get_args(tp)[0])}]"
    if is_dataclass(tp):
        return "dict"
    if tp is Any:
        return "Any"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _wrong_type(where: str, tp: Any, value: Any) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ConfigError(
        "config.wrong_type",
        where=where,
        expected=_describe(tp),
        got=type(value).__name__,
        shown=shown,
    )


def _accepts_mapping(tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is Annotated:
        return _accepts_mapping(get_args(tp)[0])
    return is_dataclass(tp) or origin is dict or tp is dict


def _convert(tp: Any, value: Any, where: str, scope: _Scope) -> Any:
    if isinstance(value, LazyConfigValue):  # c.Course.x["k"] = v without c.Course.x = {...}
        value = value.get_value({})
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *meta = get_args(tp)
        keyed = next((m for m in meta if isinstance(m, _Keyed)), None)
        if keyed is None:
            return _convert(base, value, where, scope)
        return _by_assignment(base, keyed, value, where, scope)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        if isinstance(value, Mapping):  # a dict can only mean the one option taking dicts
            for option in options:
                if _accepts_mapping(option):
                    return _convert(option, value, where, scope)
        for option in options:
            if option is type(None) or _accepts_mapping(option):
                continue
            try:
                return _convert(option, value, where, scope)
            except ConfigError:
                continue
        raise _wrong_type(where, tp, value)
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in get_args(tp)):
            raise _wrong_type(where, tp, value)
        return value
    if is_dataclass(tp):
        return build(tp, value, where, scope)
    if tp is bool:
        if not isinstance(value, bool):
            raise _wrong_type(where, tp, value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(where, tp, value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(where, tp, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _wrong_type(where, tp, value)
        return value
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _wrong_type(where, tp, value)
        item = get_args(tp)[0]
        items = [_convert(item, v, f"{where}[{i}]", scope) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _wrong_type(where, tp, value)
        key_type, value_type = get_args(tp)
        out = {}
        for k, v in value.items():
            _convert(key_type, k, f"a key of {where}", scope)
            out[k] = _convert(value_type, v, f'{where}["{k}"]', scope)
        return out
    raise TypeError(f"the settings schema has an unsupported type {tp!r} at {where}")


def _by_assignment(base: Any, keyed: _Keyed, value: Any, where: str, scope: _Scope) -> Any:
    """A per-assignment setting: ``{assignment id: value}`` (kept as a dict), or, when the
    setting allows it, one value for every assignment (kept as it is)."""
    if keyed.scalar and not isinstance(value, Mapping):
        return _convert(base, value, where, scope)
    if not isinstance(value, Mapping):
        raise _wrong_type(where, Annotated[base, keyed], value)
    known = set(scope.assignments) if scope.assignments is not None else None
    out = {}
    for aid, item in value.items():
        if known is not None and aid not in known and not (keyed.star and aid == "*"):
            raise unknown_key(where, aid, known | ({"*"} if keyed.star else set()), "assignment")
        out[aid] = _convert(base, item, f'{where}["{aid}"]', scope)
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def build(cls: type, value: Any, where: str, scope: _Scope | None = None) -> Any:
    """``cls`` (a schema dataclass) from ``value`` (a dict): every key known, every value of
    its field's type. A field with ``metadata["parse"]`` is parsed by that function."""
    scope = scope or _Scope()
    if isinstance(value, LazyConfigValue):
        value = value.get_value({})
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _wrong_type(where, cls, value)
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    hints = _HINTS[cls]
    known = {f.name: f for f in fields(cls) if f.init}
    refused = getattr(cls, "REFUSED_KEYS", {})
    args = {}
    for key, item in value.items():
        if key in refused:
            raise ConfigError(refused[key], where=where)
        if key not in known:
            raise unknown_key(where, key, known)
        here = f"{where}.{key}" if getattr(cls, "ATTRIBUTES", False) else f'{where}["{key}"]'
        parse = known[key].metadata.get("parse")
        args[key] = parse(item, here, scope) if parse else _convert(hints[key], item, here, scope)
    missing = [
        f.name
        for f in known.values()
        if f.name not in args and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ConfigError("config.missing_key", where=where, key=missing[0])
    try:
        return cls(**args)
    except InvalidSetting as exc:
        raise ConfigError(exc.message_id, **{"where": where, **exc.params}) from None
    except (ValueError, TypeError) as exc:  # a schema class's own check: shown as it is
        raise ConfigError("config.invalid_value", where=where, detail=str(exc)) from None


# --- the schema: c.Course.* -------------------------------------------------------------------
# One dataclass per section; a field's comment is its documentation (docs/settings.md lists them).

Language = Literal["es", "en"]
Mode = Literal["graded", "practice"]
Visibility = Literal["hidden", "after_due_date", "after_published", "visible"]
LTI_SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
# how a platform member is matched to a course student (autograder.lms.lti_nrps.MATCHES)
LtiRosterMatch = Literal["email", "email_local", "lis_person_sourcedid"]


@dataclass(frozen=True)
class AssignmentSettings:
    """One entry of ``c.Course.assignments`` (``{assignment id: {...}}``)."""

    notebook: str  # the released notebook's file name (required)
    timeout: float | None = None  # s for the whole notebook; None: c.Course.notebook_timeout
    cell_timeout: float | None = None  # s for one cell; None (or 0): c.Execute.timeout
    mode: Mode = "graded"  # "practice": the release carries an answer key (docs/student.md)


@dataclass(frozen=True)
class CanvasAssignmentSettings:
    """``c.Course.lms["canvas"]["assignments"][assignment id]`` (or just its id)."""

    id: int | str  # the number in the assignment's address (/courses/N/assignments/<id>)
    name: str = ""  # the assignment's name in Canvas; "": the assignment id
    points: float | None = None  # Canvas's points possible; None: the notebook's maximum

    def __post_init__(self):
        text = str(self.id).strip()
        if not text.isdigit():
            raise InvalidSetting("config.canvas_id_not_number", value=repr(self.id))
        object.__setattr__(self, "id", text)


@dataclass(frozen=True)
class CanvasSettings:
    """``c.Course.lms["canvas"]``."""

    # {assignment id: {"id": 123, "name": ..., "points": ...} or just 123}
    assignments: Annotated[CanvasAssignmentSettings | int | str, ASSIGNMENT_IDS] = field(
        default_factory=dict
    )

    def __post_init__(self):
        object.__setattr__(
            self,
            "assignments",
            {
                aid: v if isinstance(v, CanvasAssignmentSettings) else CanvasAssignmentSettings(v)
                for aid, v in self.assignments.items()
            },
        )


# the columns of Moodle's grading worksheet the exporter knows (autograder.lms.moodle names
# each role's titles in Moodle's languages; a test holds the two lists together)
MOODLE_COLUMN_ROLES = (
    "identifier",
    "fullname",
    "email",
    "grade",
    "max_grade",
    "can_change",
    "feedback",
)


def _moodle_columns(value: Any, where: str, scope: _Scope) -> dict[str, str]:
    columns = _convert(dict[str, str], value, where, scope) if value is not None else {}
    for role in columns:
        if role not in MOODLE_COLUMN_ROLES:
            raise unknown_key(where, role, MOODLE_COLUMN_ROLES, "column role")
    return columns


@dataclass(frozen=True)
class MoodleSettings:
    """``c.Course.lms["moodle"]``."""

    # the grading worksheet downloaded from Moodle (a path, or {assignment id: path})
    worksheets: Annotated[str | None, PER_ASSIGNMENT] = None
    feedback: bool = True  # fill the worksheet's feedback column
    # {role: column title} when the worksheet's titles are not recognized (roles: identifier,
    # fullname, email, grade, max_grade, can_change, feedback)
    columns: dict[str, str] = field(default_factory=dict, metadata={"parse": _moodle_columns})


@dataclass(frozen=True)
class LtiSettings:
    """``c.Course.lms["lti"]``: LTI 1.3 Advantage: AGS line items and score passback
    (``autograder.lms.lti``), the NRPS roster (``autograder.lms.lti_nrps``).

    ``client_id`` and ``token_url`` are needed when the platform is contacted, not to load the
    course. The private key is never here: ``key_file``, ``$AUTOGRADER_LTI_KEY_FILE`` or
    ``$AUTOGRADER_LTI_PRIVATE_KEY``."""

    client_id: str | int = ""  # the tool's client id at the platform
    token_url: str = ""  # the platform's OAuth 2 token URL
    issuer: str = ""  # the platform's issuer (iss)
    audience: str = ""  # aud of the client assertion; "": the token URL
    key_id: str = ""  # kid of the tool's key (as registered with the platform)
    key_file: str = ""  # path of the tool's private key (PEM; relative: to the course)
    line_items: Annotated[str, ASSIGNMENT_IDS] = field(default_factory=dict)  # {id: URL}
    user_ids: str = ""  # CSV student_id,lti_user_id (relative: to the course)
    # AGS line items container (the launch's AGS claim "lineitems"): line items are found by
    # resourceId (the assignment id) or label, else created; an entry of line_items wins
    lineitems_url: str = ""
    # {assignment id: label} of the line items found or created; default: the release
    # notebook's title
    labels: Annotated[str, ASSIGNMENT_IDS] = field(default_factory=dict)
    tag: str = "autograder"  # tag of the line items the tool creates ("": none)
    create_line_items: bool = True  # create an assignment's line item when none is found
    # NRPS context membership (the launch's namesroleservice claim "context_memberships_url")
    memberships_url: str = ""
    roster_match: LtiRosterMatch = "email"  # member -> student: e-mail, e-mail local part, SIS id
    max_response_mb: float = 16.0  # largest answer read from the platform
    scope: str = LTI_SCORE_SCOPE  # OAuth scope asked for
    timeout: float = 30.0  # s per HTTP request
    max_attempts: int = 4  # tries per request (connection errors, 429, 5xx)
    backoff: float = 1.0  # s before the first retry, doubled at each retry
    assertion_lifetime: int = 300  # s the signed client assertion is valid
    comment: bool = True  # send the feedback text as the score's comment
    activity_progress: Literal["Initialized", "Started", "InProgress", "Submitted", "Completed"] = (
        "Completed"
    )
    grading_progress: Literal["FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"] = (
        "FullyGraded"
    )

    # key -> the catalogue message refusing it
    REFUSED_KEYS: ClassVar[dict[str, str]] = {"private_key": "config.refused.lti_private_key"}

    def __post_init__(self):
        object.__setattr__(self, "client_id", str(self.client_id))
        if not self.max_response_mb > 0:
            raise InvalidSetting(
                "config.not_positive", key="max_response_mb", value=repr(self.max_response_mb)
            )


@dataclass(frozen=True)
class GradescopeSection:
    """``c.Course.lms["gradescope"]`` (``autograder.lms.gradescope.GradescopeSettings`` is one
    assignment's view of it). Every key: one value, or ``{assignment id | "*": value}``."""

    visibility: Annotated[Visibility, PER_ASSIGNMENT] = "visible"  # of the tests and the score
    stdout_visibility: Annotated[Visibility, PER_ASSIGNMENT] = "hidden"  # of the grader's output
    # {assignment id: {graded cell: visibility}}
    test_visibility: Annotated[dict[str, Visibility], BY_ASSIGNMENT] = field(default_factory=dict)
    time_limit: Annotated[float, PER_ASSIGNMENT] = 600.0  # Gradescope's autograder timeout, s
    margin: Annotated[float, PER_ASSIGNMENT] = 60.0  # s kept for start-up, checks and results
    run_as: Annotated[str, PER_ASSIGNMENT] = "student"  # the kernel's user; "": root
    # the container's resources set in Gradescope (Autograder Settings), Gradescope's defaults;
    # the bundle is checked against the reference solution's measured figures (docs/lms.md)
    memory_mb: Annotated[int, PER_ASSIGNMENT] = 768  # memory limit, MB
    cpus: Annotated[float, PER_ASSIGNMENT] = 0.5  # virtual CPUs


@dataclass(frozen=True)
class LmsSettings:
    """``c.Course.lms`` (docs/lms.md). Every section is optional until its feature is used."""

    roster: str | list[str] | None = None  # roster CSV path(s), relative to the course
    canvas: CanvasSettings = field(default_factory=CanvasSettings)
    moodle: MoodleSettings = field(default_factory=MoodleSettings)
    lti: LtiSettings = field(default_factory=LtiSettings)
    gradescope: GradescopeSection = field(default_factory=GradescopeSection)


# --- thresholds: per assignment, declared once ------------------------------------------------


def _public(module: str, name: str) -> Any:
    """A tolerance the student distribution's public checks also use: its default is declared
    there (``dlcourse.rules.<module>.DEFAULTS``), the student package cannot import this one."""

    def default() -> float:
        import importlib

        return float(importlib.import_module(f"dlcourse.rules.{module}").DEFAULTS[name])

    return field(default_factory=default, metadata={"public": f"dlcourse.rules.{module}"})


def _ordered(low: float, high: float, names: str) -> None:
    if not low < high:
        raise InvalidSetting(
            "config.min_not_below_max", names=names, low=f"{low:g}", high=f"{high:g}"
        )


@dataclass(frozen=True)
class LearningRateThresholds:
    """``c.Course.thresholds["lesson4_learning_rate"]``."""

    answer_rtol: float = 1e-6  # relative tolerance of real-valued answers (the step size)


@dataclass(frozen=True)
class EarlyStoppingThresholds:
    """``c.Course.thresholds["lesson4_early_stopping"]`` (docs/calibration.md)."""

    # validation MAE of the trained model, re-computed on the course's validation split
    es_val_mae_max: float = 0.0875
    es_val_mae_min: float = 0.06  # below it the result is implausible
    # a history matches the model when the re-computed val_loss is within atol + rtol*|v|
    es_history_atol: float = _public("lesson4_early_stopping", "es_history_atol")
    es_history_rtol: float = _public("lesson4_early_stopping", "es_history_rtol")
    # scaled split values are compared with this absolute tolerance (float32 round-off)
    es_scale_atol: float = _public("lesson4_early_stopping", "es_scale_atol")

    def __post_init__(self):
        _ordered(self.es_val_mae_min, self.es_val_mae_max, "es_val_mae_min/max")


@dataclass(frozen=True)
class DropoutBatchnormThresholds:
    """``c.Course.thresholds["lesson5_dropout_batchnorm"]`` (docs/calibration_lesson5.md)."""

    # validation MAE in inference mode, re-computed on the course's validation split
    db_val_mae_max: float = 0.145
    db_val_mae_min: float = 0.05  # below it the result is implausible
    # the last val_loss matches the re-computed loss within atol + rtol*|v|
    db_history_atol: float = _public("lesson5_dropout_batchnorm", "db_history_atol")
    db_history_rtol: float = _public("lesson5_dropout_batchnorm", "db_history_rtol")

    def __post_init__(self):
        _ordered(self.db_val_mae_min, self.db_val_mae_max, "db_val_mae_min/max")


# assignment id -> its thresholds (an assignment without an entry has none)
THRESHOLDS: dict[str, type] = {
    "lesson4_learning_rate": LearningRateThresholds,
    "lesson4_early_stopping": EarlyStoppingThresholds,
    "lesson5_dropout_batchnorm": DropoutBatchnormThresholds,
}


def threshold_defaults(assignment_id: str) -> dict[str, float]:
    """The declared thresholds of ``assignment_id`` and their defaults (the checkers' DEFAULTS)."""
    cls = THRESHOLDS.get(assignment_id)
    return asdict(cls()) if cls else {}


def assignment_thresholds(
    assignment_id: str, values: Mapping[str, Any] | None = None, where: str | None = None
) -> dict[str, float]:
    """Every threshold of ``assignment_id``: its defaults overridden by ``values``, either that
    assignment's ``{name: value}`` or the course's ``{assignment id: {name: value}}``
    (``Course.thresholds``). An unknown name is a ``ConfigError`` naming the nearest one."""
    where = where or f'c.Course.thresholds["{assignment_id}"]'
    values = dict(values or {})
    nested = [isinstance(v, Mapping) for v in values.values()]
    if any(nested):
        if not all(nested):
            raise ConfigError("config.thresholds_mixed", where=where)
        values = dict(values.get(assignment_id, {}))
    cls = THRESHOLDS.get(assignment_id)
    if cls is None:
        if values:
            raise ConfigError(
                "config.no_thresholds",
                where=where,
                assignment=assignment_id,
                known=sorted(THRESHOLDS),
            )
        return {}
    fields_ = {f.name for f in fields(cls)}
    for name in values:
        if name not in fields_:
            raise unknown_key(where, name, fields_, "threshold")
    return asdict(build(cls, values, where))


def _course_thresholds(value: Any, where: str, scope: _Scope) -> dict[str, dict[str, float]]:
    """``c.Course.thresholds``: ``{assignment id: {name: value}}``, or (deprecated) one flat
    ``{name: value}`` whose names each go to the assignments that declare them."""
    if isinstance(value, LazyConfigValue):
        value = value.get_value({})
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise _wrong_type(where, dict[str, dict[str, float]], value)
    aids = scope.assignments or ()
    if value and not any(isinstance(v, Mapping) for v in value.values()):
        warnings.warn(
            "c.Course.thresholds as one flat {name: value} is deprecated: give "
            "{assignment id: {name: value}} (docs/settings.md).",
            DeprecationWarning,
            stacklevel=2,
        )
        declared = {name: aid for aid in aids for name in threshold_defaults(aid)}
        for name in value:
            if name not in declared:
                raise unknown_key(where, name, declared, "threshold")
        value = {
            aid: {n: v for n, v in value.items() if n in threshold_defaults(aid)} for aid in aids
        }
    for aid, given in value.items():
        if aid not in aids:
            raise unknown_key(where, aid, aids, "assignment")
        if not isinstance(given, Mapping):
            raise _wrong_type(f'{where}["{aid}"]', dict[str, float], given)
    return {
        aid: assignment_thresholds(aid, value.get(aid, {}), f'{where}["{aid}"]') for aid in aids
    }


def _sandbox(value: Any, where: str, scope: _Scope) -> Any:
    from autograder.sandbox import SandboxSettings

    return build(SandboxSettings, value, where, scope)


@dataclass(frozen=True)
class CourseSettings:
    """``c.Course``: the course package's settings (nbgrader's own live in their sections)."""

    ATTRIBUTES: ClassVar[bool] = True  # its keys are written c.Course.<key>

    language: Language = "es"  # of student messages and feedback
    data_home: str = ""  # where the course data is cached; "": $COURSE_DATA_HOME or user cache
    assignments: dict[str, AssignmentSettings] = field(default_factory=dict)
    notebook_timeout: float = 600.0  # s for a whole notebook when the assignment gives none
    # {assignment id: {threshold: value}} (THRESHOLDS declares the names and defaults)
    thresholds: dict[str, dict[str, float]] = field(
        default_factory=dict, metadata={"parse": _course_thresholds}
    )
    workers: int = 0  # grading processes; 0: one per core
    kernel_threads: int = 1  # threads of each student kernel
    deduplicate: bool = True  # identical submissions executed once (autograder.dedup)
    # the next notebook's kernel started while one runs (autograder.prestart); "auto": when a
    # core is free for it. Off by default: see docs/scale.md (a fork bomb beside a warm kernel)
    prestart_kernels: Literal["auto", "always", "never"] = "never"
    db_url: str = ""  # the gradebook; "": nbgrader's SQLite file in the state directory
    # the sandbox around student kernels: autograder.sandbox.SandboxSettings (docs/sandbox.md)
    sandbox: Any = field(default=None, metadata={"parse": _sandbox})
    lms: LmsSettings = field(default_factory=LmsSettings)


def course_settings(section: Mapping[str, Any]) -> CourseSettings:
    """``c.Course`` validated against the schema (``ConfigError`` on any unknown key or type)."""
    raw = section.get("assignments", {})
    if isinstance(raw, LazyConfigValue):
        raw = raw.get_value({})
    aids = tuple(raw) if isinstance(raw, Mapping) else ()
    return build(CourseSettings, dict(section), "c.Course", _Scope(aids))


def lms_from_mapping(value: Any, assignments: tuple[str, ...] | None = None) -> LmsSettings:
    """``c.Course.lms`` validated against the schema."""
    return build(LmsSettings, value, "c.Course.lms", _Scope(assignments))


# --- the course ----------------------------------------------------------------------------------


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
    ``thresholds`` is ``{assignment id: {name: value}}``, every declared threshold resolved.
    """

    root: Path
    state_dir: Path
    course_id: str
    language: str
    data_home: str
    assignments: dict[str, AssignmentSpec]
    cell_timeout: float
    notebook_timeout: float
    thresholds: dict[str, dict[str, float]]
    db_url_setting: str
    nbgrader_config: Config = field(repr=False)
    kernel_threads: int = 1
    deduplicate: bool = True
    workers: int = 0  # 0: one per core
    prestart_kernels: str = "never"

    @property
    def lms(self) -> LmsSettings:
        """``c.Course.lms``, typed. Validated from the configuration each time it is read, so a
        change made to ``nbgrader_config.Course.lms`` after loading is validated too."""
        section = self.nbgrader_config.get("Course", None)
        raw = section.get("lms", {}) if section is not None else {}
        return lms_from_mapping(raw, tuple(self.assignments))

    @property
    def sandbox(self):
        """``c.Course.sandbox`` as ``autograder.sandbox.SandboxSettings`` (CPU limit derived)."""
        from autograder.sandbox import SandboxSettings

        return SandboxSettings.from_course(self)

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
    def kernels_dir(self) -> Path:
        """Prestarted kernels' own folders, renamed into ``autograded/`` once used."""
        return self.state_dir / ".kernels"

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
            raise unknown_key(
                "c.Course.assignments", assignment_id, self.assignments, "assignment"
            ) from None


def find_config_file(start: Path | None = None) -> Path:
    """``$COURSE_CONFIG``, else the nearest ``course_config.py`` from ``start`` upwards."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_file():
            raise ConfigError("config.env_not_file", variable=ENV_CONFIG, value=env)
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError("config.not_found", file=CONFIG_FILE, folder=str(here), variable=ENV_CONFIG)


def load_nbgrader_config(config_file: Path) -> Config:
    loader = PyFileConfigLoader(config_file.name, path=str(config_file.parent))
    return loader.load_config()


def load_course(
    config_file: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> Course:
    """Load the course from ``course_config.py``, validating ``c.Course`` against the schema.

    ``state_dir`` (or ``$COURSE_STATE_DIR``) moves the grading state (submitted notebooks,
    gradebook, feedback, exports) away from the course root, e.g. into a temporary folder.
    """
    path = Path(config_file).resolve() if config_file else find_config_file()
    cfg = load_nbgrader_config(path)
    root = path.parent
    settings = course_settings(cfg.get("Course", Config()))
    state = state_dir or os.environ.get(ENV_STATE_DIR) or root
    cell_timeout = _convert(
        float, cfg.get("Execute", Config()).get("timeout", 120), "c.Execute.timeout", _Scope()
    )
    assignments = {
        aid: AssignmentSpec(
            id=aid,
            notebook=spec.notebook,
            timeout=spec.timeout if spec.timeout is not None else settings.notebook_timeout,
            cell_timeout=spec.cell_timeout or None,
            mode=spec.mode,
        )
        for aid, spec in settings.assignments.items()
    }
    return Course(
        root=root,
        state_dir=Path(state).resolve(),
        course_id=str(cfg.get("CourseDirectory", Config()).get("course_id", "course")),
        language=settings.language,
        data_home=settings.data_home,
        assignments=assignments,
        cell_timeout=cell_timeout,
        notebook_timeout=settings.notebook_timeout,
        thresholds=settings.thresholds,
        db_url_setting=settings.db_url,
        nbgrader_config=cfg,
        kernel_threads=settings.kernel_threads,
        deduplicate=settings.deduplicate,
        workers=settings.workers,
        prestart_kernels=settings.prestart_kernels,
    )
