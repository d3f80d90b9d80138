"""LTI 1.3 AGS score passback against a platform that the tests start on 127.0.0.1: real HTTP,
the client assertion verified against the tool's public key set, every Score body validated
against the specification."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import jwt
import pytest

from autograder.export import EXPORTERS
from autograder.lms import lti, lti_nrps
from autograder.lms.common import LmsError
from autograder.messages import catalogue
from autograder.results import Note, render_note
from tests.conftest import make_course
from tests.test_lms_export import AID, graded_state, student_result

CLIENT_ID = "10000000000042"
KID = "course-2026"

# The Score service's body (1EdTech LTI AGS 2.0, "Score publish service").
SCORE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["userId", "activityProgress", "gradingProgress", "timestamp"],
    "properties": {
        "userId": {"type": "string", "minLength": 1},
        "scoreGiven": {"type": "number", "minimum": 0},
        "scoreMaximum": {"type": "number", "exclusiveMinimum": 0},
        "comment": {"type": "string"},
        "timestamp": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+(Z|[+-]\d{2}:\d{2})$",
        },
        "activityProgress": {
            "enum": ["Initialized", "Started", "InProgress", "Submitted", "Completed"]
        },
        "gradingProgress": {
            "enum": ["FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"]
        },
    },
    "dependentRequired": {"scoreGiven": ["scoreMaximum"]},
    "additionalProperties": False,
}


KNOWN_SCOPES = {lti.SCORE_SCOPE, lti.LINEITEM_SCOPE, lti.NRPS_SCOPE}
COURSE_API = "/api/lti/courses/1"

# A line item as the AGS line item service takes it (POST body).
LINE_ITEM_SCHEMA = {
    "type": "object",
    "required": ["scoreMaximum", "label"],
    "properties": {
        "scoreMaximum": {"type": "number", "exclusiveMinimum": 0},
        "label": {"type": "string", "minLength": 1},
        "resourceId": {"type": "string"},
        "tag": {"type": "string"},
        "resourceLinkId": {"type": "string"},
    },
}


class Platform:
    """A small LTI Advantage platform: an OAuth 2 token endpoint (client assertions verified
    against the tool's key set, scopes granted per token), the line items container (GET in
    pages, POST), the line items' score endpoints and the NRPS context membership (in pages).
    """

    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.tokens: dict[str, tuple[float, set[str]]] = {}  # token -> (expiry, scopes)
        self.jtis: set[str] = set()
        self.scores: list[tuple[str, dict]] = []  # (path with query, body)
        self.errors: list[str] = []
        self.token_requests = 0
        self.score_requests = 0
        self.expires_in = 3600  # how long tokens are valid
        self.announced_expires_in: int | None = None  # what the token response says
        self.fail_next: list[tuple[int, dict]] = []  # scripted answers for the score endpoint
        self.revoke_after_scores: int | None = None
        self.allowed_scopes = set(KNOWN_SCOPES)  # what the tool may be granted
        self.granted: list[set[str]] = []  # the scopes of each token given
        # line items and memberships
        self.line_items: list[dict] = []
        self.members: list[dict] = []
        self.page_size = 2
        self.service_requests: list[tuple[str, str, str]] = []  # (method, path+query, Accept)
        # scripted answers of the line items / memberships services: (status, bytes, type)
        self.service_fail: list[tuple[int, bytes, str]] = []
        self.next_link: str | None = None  # replaces the next page link of page 1
        self.lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, headers, payload):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                if data[:1] != b"~":  # "~...": no length given, the body ends when the
                    self.send_header("Content-Length", str(len(data)))  # connection closes
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's naming
                with platform.lock:
                    answer = platform.service("GET", self.path, self.headers, b"")
                self._answer(*answer)

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with platform.lock:
                    if self.path == "/login/oauth2/token":
                        answer = platform.token(self.headers, body)
                    elif urlsplit(self.path).path.endswith("/scores"):
                        answer = platform.score(self.path, self.headers, body)
                    else:
                        answer = platform.service("POST", self.path, self.headers, body)
                self._answer(*answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def token_url(self) -> str:
        return f"{self.url}/login/oauth2/token"

    @property
    def lineitems_url(self) -> str:
        return f"{self.url}{COURSE_API}/line_items"

    @property
    def memberships_url(self) -> str:
        return f"{self.url}{COURSE_API}/names_and_roles"

    def line_item(self, n: int, query: str = "") -> str:
        return f"{self.url}{COURSE_API}/line_items/{n}{query}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, headers, body: bytes):
        self.token_requests += 1
        if headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return 400, {}, {"error": "invalid_request"}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != lti.ASSERTION_TYPE
        ):
            return 400, {}, {"error": "unsupported_grant_type"}
        asked = set(form.get("scope", "").split())
        granted = asked & self.allowed_scopes
        if not asked <= KNOWN_SCOPES or not granted:
            return 400, {}, {"error": "invalid_scope"}
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            keys = {k["kid"]: k for k in self.jwks["keys"]}
            key = jwt.PyJWK(keys[header["kid"]]).key
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=CLIENT_ID,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except (jwt.PyJWTError, KeyError) as exc:
            return 401, {}, {"error": "invalid_client", "error_description": str(exc)}
        if claims["sub"] != CLIENT_ID or claims["jti"] in self.jtis:
            return 401, {}, {"error": "invalid_client", "error_description": "sub or replay"}
        self.jtis.add(claims["jti"])
        token = secrets.token_urlsafe(16)
        self.tokens[token] = (time.time() + self.expires_in, granted)
        self.granted.append(granted)
        announced = (
            self.expires_in if self.announced_expires_in is None else self.announced_expires_in
        )
        return (
            200,
            {},
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": announced,
                "scope": " ".join(sorted(granted)),
            },
        )

    def authorized(self, headers, scope: str) -> bool:
        auth = headers.get("Authorization", "")
        expiry, scopes = self.tokens.get(auth.removeprefix("Bearer "), (0, set()))
        return auth.startswith("Bearer ") and expiry > time.time() and scope in scopes

    UNAUTHORIZED = (
        401,
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        {"error": "invalid_token"},
    )

    def score(self, path: str, headers, body: bytes):
        self.score_requests += 1
        if not self.authorized(headers, lti.SCORE_SCOPE):
            return self.UNAUTHORIZED
        if headers.get("Content-Type") != lti.SCORE_MEDIA_TYPE:
            self.errors.append(f"content type {headers.get('Content-Type')}")
            return 415, {}, {"error": "unsupported media type"}
        if self.fail_next:
            status, extra = self.fail_next.pop(0)
            return status, extra, {"error": "try again"}
        try:
            score = json.loads(body)
            jsonschema.validate(score, SCORE_SCHEMA, cls=jsonschema.Draft202012Validator)
        except (ValueError, jsonschema.ValidationError) as exc:
            self.errors.append(str(exc)[:300])
            return 400, {}, {"error": "invalid score"}
        item = urlsplit(path).path.removesuffix("/scores")
        known = {urlsplit(i["id"]).path for i in self.line_items}
        if self.line_items and item not in known:
            return 404, {}, {"error": "no such line item"}
        self.scores.append((path, score))
        if self.revoke_after_scores is not None and len(self.scores) >= self.revoke_after_scores:
            self.tokens.clear()  # every token expires now
            self.revoke_after_scores = None
        return 200, {}, {}

    def service(self, method: str, target: str, headers, body: bytes):
        path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
        self.service_requests.append((method, target, headers.get("Accept", "")))
        if path == f"{COURSE_API}/names_and_roles" and method == "GET":
            scope, media = lti.NRPS_SCOPE, lti_nrps.NRPS_MEDIA_TYPE
        elif path == f"{COURSE_API}/line_items":
            scope = lti.LINEITEM_SCOPE
            media = lti.LINEITEMS_MEDIA_TYPE if method == "GET" else lti.LINEITEM_MEDIA_TYPE
        else:
            return 404, {}, {"error": "not found"}
        if not self.authorized(headers, scope):
            return self.UNAUTHORIZED
        if self.service_fail:
            status, data, kind = self.service_fail.pop(0)
            return status, {"Content-Type": kind}, data
        if headers.get("Accept") != media:
            self.errors.append(f"accept {headers.get('Accept')}")
            return 406, {}, {"error": "not acceptable"}
        if method == "POST":
            if headers.get("Content-Type") != lti.LINEITEM_MEDIA_TYPE:
                self.errors.append(f"content type {headers.get('Content-Type')}")
                return 415, {}, {"error": "unsupported media type"}
            item = json.loads(body)
            try:
                jsonschema.validate(item, LINE_ITEM_SCHEMA)
            except jsonschema.ValidationError as exc:
                self.errors.append(str(exc)[:300])
                return 400, {}, {"error": "invalid line item"}
            item["id"] = self.line_item(100 + len(self.line_items))
            self.line_items.append(item)
            return 201, {"Content-Type": lti.LINEITEM_MEDIA_TYPE}, item
        every = self.members if scope == lti.NRPS_SCOPE else self.line_items
        page = int(query.get("page", ["1"])[0])
        chunk = every[(page - 1) * self.page_size : page * self.page_size]
        extra = {"Content-Type": media}
        if page * self.page_size < len(every):
            link = f"{self.url}{path}?page={page + 1}"
            if page == 1 and self.next_link is not None:
                link = self.next_link
            extra["Link"] = f'<{link}>; rel="next", <{self.url}{path}?page=1>; rel="first"'
        if scope == lti.NRPS_SCOPE:
            payload = {
                "id": self.memberships_url,
                "context": {"id": "c1", "label": "DL", "title": "Deep learning"},
                "members": chunk,
            }
            return 200, extra, payload
        return 200, extra, chunk


@pytest.fixture(scope="module")
def tool_key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "lti_key.pem"
    lti.generate_key(path, KID)
    return path


@pytest.fixture
def platform(tool_key):
    platform = Platform(lti.public_jwks(tool_key.read_bytes(), KID))
    yield platform
    platform.close()


USERS = "student_id,lti_user_id\nana,5f0e3c2a-aaaa\nben,5f0e3c2a-bbbb\ncarla,5f0e3c2a-cccc\n"


@pytest.fixture(scope="module")
def graded_template(tmp_path_factory) -> Path:
    """The graded state every test starts from, recorded once (nbgrader's gradebook writes are
    most of a test's time) and copied into each test's own folder."""
    state = tmp_path_factory.mktemp("lti-template") / "state"
    course = make_course(state)
    graded_state(
        course.state_dir,
        [
            student_result(course, "ana"),
            student_result(course, "ben", {"test_steps_lr_003": 0, "test_curve_labels": 1}),
            student_result(course, "carla", None, "error", Note("submission.empty")),
        ],
        course,
    )
    return state


@pytest.fixture
def course(tmp_path, platform, tool_key, graded_template):
    shutil.copytree(graded_template, tmp_path / "state")
    course = make_course(tmp_path / "state")
    (tmp_path / "lti_users.csv").write_text(USERS)
    course.nbgrader_config.Course.lms = {
        "lti": {
            "issuer": "https://platform.example",
            "client_id": CLIENT_ID,
            "token_url": platform.token_url,
            "key_id": KID,
            "key_file": str(tool_key),
            "line_items": {AID: platform.line_item(7)},
            "user_ids": str(tmp_path / "lti_users.csv"),
            "backoff": 0.0,
        }
    }
    return course


def export(course, tmp_path, **options) -> dict:
    path = EXPORTERS["lti"](course, AID, out=tmp_path / "report.json", **options)
    return json.loads(Path(path).read_text())


def test_scores_reach_the_line_item(course, platform, tmp_path):
    report = export(course, tmp_path)
    assert report["summary"] == {"students": 3, "accepted": 3, "failed": 0}
    assert platform.errors == [] and platform.token_requests == 1
    sent = {body["userId"]: (path, body) for path, body in platform.scores}
    assert set(sent) == {"5f0e3c2a-aaaa", "5f0e3c2a-bbbb", "5f0e3c2a-cccc"}
    path, ben = sent["5f0e3c2a-bbbb"]
    assert path == "/api/lti/courses/1/line_items/7/scores"
    assert (ben["scoreGiven"], ben["scoreMaximum"]) == (6.0, 8.0)
    assert ben["activityProgress"] == "Completed" and ben["gradingProgress"] == "FullyGraded"
    assert ben["comment"].startswith("Total: 6/8\n✗ test_steps_lr_003: 0/1")
    assert "el archivo está vacío" in sent["5f0e3c2a-cccc"][1]["comment"].lower()
    outcome = next(o for o in report["outcomes"] if o["student"] == "ben")
    assert (
        outcome["body"] == ben and outcome["accepted"] and outcome["attempts"][0]["status"] == 200
    )


def test_line_item_with_a_query_string(course, platform, tmp_path):
    course.nbgrader_config.Course.lms["lti"]["line_items"][AID] = platform.line_item(
        9, "/lineitem?type_id=2"
    )
    export(course, tmp_path)
    assert {p for p, _ in platform.scores} == {
        "/api/lti/courses/1/line_items/9/lineitem/scores?type_id=2"
    }


def test_transient_errors_are_retried(course, platform, tmp_path):
    platform.fail_next = [(503, {}), (502, {}), (429, {"Retry-After": "0"})]
    sleeps: list[float] = []
    report = export(course, tmp_path, sleep=sleeps.append)
    assert report["summary"]["accepted"] == 3
    assert len(platform.scores) == 3 and platform.score_requests == 6
    first = report["outcomes"][0]["attempts"]
    assert [a["status"] for a in first] == [503, 502, 429, 200]
    assert sleeps == [0.0, 0.0, 0.0]


def test_retries_give_up_and_say_so(course, platform, tmp_path):
    platform.fail_next = [(500, {})] * 4
    with pytest.raises(lti.LtiPassbackError, match="1 of 3 scores were not accepted") as info:
        export(course, tmp_path, sleep=lambda s: None)
    assert "HTTP 500" in str(info.value) and str(tmp_path / "report.json") in str(info.value)
    report = json.loads((tmp_path / "report.json").read_text())
    failed = [o for o in report["outcomes"] if not o["accepted"]]
    assert len(failed) == 1 and len(failed[0]["attempts"]) == 4
    assert len(platform.scores) == 2  # the others went through


def test_expired_token_is_renewed(course, platform, tmp_path):
    platform.revoke_after_scores = 1
    report = export(course, tmp_path)
    assert report["summary"]["accepted"] == 3
    assert platform.token_requests == 2 and len(platform.scores) == 3
    second = report["outcomes"][1]["attempts"]
    assert [a["status"] for a in second] == [401, 200]


def test_short_lived_tokens_are_renewed_before_use(course, platform, tmp_path):
    platform.announced_expires_in = 5  # too close to expiry to be used for another request
    report = export(course, tmp_path)
    assert report["summary"]["accepted"] == 3 and platform.token_requests == 3
    assert platform.score_requests == 3  # never sent with a token known to be expired


def test_wrong_key_is_refused_and_nothing_is_sent(course, platform, tmp_path):
    other = tmp_path / "other.pem"
    lti.generate_key(other, KID)  # same key id, different key: not what the platform knows
    course.nbgrader_config.Course.lms["lti"]["key_file"] = str(other)
    with pytest.raises(lti.LtiPassbackError, match="3 of 3") as info:
        export(course, tmp_path)
    assert "refused the token request (HTTP 401" in str(info.value)
    assert platform.scores == [] and platform.token_requests == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert "invalid_client" in report["fatal"]
    assert all(o["error"].startswith("not sent") for o in report["outcomes"])
    # beside the English texts, the notes: shown in the instructor's language
    assert report["fatal_note"]["id"] == "lms.lti.platform.token_refused"
    assert render_note(report["fatal_note"], "en") == report["fatal"]
    assert "rechazó la petición de token" in render_note(report["fatal_note"], "es")
    assert {o["note"]["id"] for o in report["outcomes"]} == {"lms.lti.outcome.not_sent"}
    _, spanish = both(info.value)
    assert spanish.startswith("3 de 3 calificaciones no se aceptaron (no enviada: la plataforma")


def test_expired_client_assertion_is_refused(course, platform, tmp_path):
    skewed = lambda: time.time() - 3600  # noqa: E731 - the tool's clock is an hour behind
    with pytest.raises(lti.LtiPassbackError, match="refused the token request"):
        export(course, tmp_path, clock=skewed)
    assert platform.scores == []


def test_student_without_lti_id_is_reported(course, platform, tmp_path):
    (Path(course.nbgrader_config.Course.lms["lti"]["user_ids"])).write_text(
        "student_id,lti_user_id\nana,5f0e3c2a-aaaa\nben,5f0e3c2a-bbbb\n"
    )
    with pytest.raises(lti.LtiPassbackError, match="no LTI user id"):
        export(course, tmp_path)
    assert len(platform.scores) == 2


def test_platform_down(course, platform, tmp_path):
    platform.close()
    with pytest.raises(lti.LtiPassbackError, match="no access token"):
        export(course, tmp_path, sleep=lambda s: None)


def test_dry_run_sends_nothing(course, platform, tmp_path):
    report = export(course, tmp_path, dry_run=True)
    assert platform.token_requests == 0 and platform.scores == []
    for outcome in report["outcomes"]:
        jsonschema.validate(outcome["body"], SCORE_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_key_from_environment_and_key_hygiene(course, platform, tmp_path, tool_key, monkeypatch):
    course.nbgrader_config.Course.lms["lti"]["key_file"] = ""
    with pytest.raises(LmsError, match="No LTI private key"):
        export(course, tmp_path)
    monkeypatch.setenv(lti.ENV_KEY, tool_key.read_text())
    assert export(course, tmp_path)["summary"]["accepted"] == 3
    monkeypatch.delenv(lti.ENV_KEY)
    loose = tmp_path / "loose.pem"
    loose.write_bytes(tool_key.read_bytes())
    loose.chmod(0o644)
    monkeypatch.setenv(lti.ENV_KEY_FILE, str(loose))
    report = export(course, tmp_path)
    assert any("chmod 600" in w for w in report["warnings"])
    assert [n["id"] for n in report["warning_notes"]] == ["lms.lti.key_readable"]
    assert "otros usuarios pueden leer" in render_note(report["warning_notes"][0], "es")
    course.nbgrader_config.Course.lms["lti"]["private_key"] = "-----BEGIN..."
    with pytest.raises(LmsError, match="Do not put the LTI private key"):
        export(course, tmp_path)


def test_jwks_and_assertion_claims(tool_key):
    jwks = lti.public_jwks(tool_key.read_bytes(), KID)
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == KID and "d" not in key  # public only
    settings = lti.LtiSettings(client_id=CLIENT_ID, token_url="https://p/token", key_id=KID)
    client = lti.AgsClient(settings, tool_key.read_bytes())
    try:
        assertion = client.client_assertion()
    finally:
        client.close()
    assert jwt.get_unverified_header(assertion)["kid"] == KID
    claims = jwt.decode(
        assertion, jwt.PyJWK(key).key, algorithms=["RS256"], audience="https://p/token"
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert 0 < claims["exp"] - claims["iat"] <= 300 and claims["jti"]
    assert (
        lti.scores_url("https://m/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1")
        == "https://m/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1"
    )


# --- LTI Advantage: the NRPS roster -----------------------------------------------------------

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def member(user_id, name, email=None, roles=(LEARNER,), status="Active", **extra) -> dict:
    entry = {"user_id": user_id, "name": name, "status": status, "roles": list(roles), **extra}
    if email is not None:
        entry["email"] = email
    return entry


MEMBERS = [
    member("u-ana", "Ana García", "ana@uni.es", lis_person_sourcedid="S-ana"),
    member("u-prof", "Profesora", "prof@uni.es", roles=(INSTRUCTOR,)),
    member("u-ben", "Ben Ruiz", "BEN@Uni.es", lis_person_sourcedid="S-ben"),  # case differs
    member("u-carla", "Carla Díaz", "carla@uni.es", status="Inactive"),  # dropped the course
    member("u-zoe", "Zoe Stranger", "zoe@elsewhere.org"),  # not in the course's roster
    member("u-dan", "Dan Private"),  # the platform does not share the e-mail
]

ROSTER = (
    "student_id,name,email\n"
    "ana,Ana García,ana@uni.es\nben,Ben Ruiz,ben@uni.es\ncarla,Carla Díaz,carla@uni.es\n"
    "dora,Dora Sin Cuenta,dora@uni.es\n"
)


@pytest.fixture
def nrps_course(course, platform, tmp_path):
    """The course with a roster of e-mails, no LTI ids yet, and the platform's membership."""
    (tmp_path / "lti_users.csv").unlink()
    (tmp_path / "roster.csv").write_text(ROSTER)
    lms = course.nbgrader_config.Course.lms
    lms["roster"] = str(tmp_path / "roster.csv")
    lms["lti"]["memberships_url"] = platform.memberships_url
    platform.members = list(MEMBERS)  # 3 pages of 2
    return course


def ids(notes) -> list[str]:
    return [n["id"] for n in notes]


def test_membership_becomes_the_roster_the_export_reads(nrps_course, platform, tmp_path):
    sync, report_path = lti_nrps.lti_roster(nrps_course, report_out=tmp_path / "roster.json")
    nrps = [r for r in platform.service_requests if "names_and_roles" in r[1]]
    assert [r[1].rsplit("/", 1)[-1] for r in nrps] == [
        "names_and_roles",
        "names_and_roles?page=2",
        "names_and_roles?page=3",
    ]
    assert {r[2] for r in nrps} == {lti_nrps.NRPS_MEDIA_TYPE} and platform.errors == []
    assert platform.granted == [{lti.NRPS_SCOPE}]
    assert (sync.members, sync.learners) == (6, 4)
    assert sync.dropped == {"inactive": 1, "not_learner": 1}
    assert {(m.student, m.lti_user_id, m.change) for m in sync.matches} == {
        ("ana", "u-ana", "added"),
        ("ben", "u-ben", "added"),
    }
    assert sorted(ids(sync.unmatched_members)) == [
        "lms.lti_member_no_key",
        "lms.lti_member_unmatched",
    ]
    unmatched = {n["params"]["user_id"]: n for n in sync.unmatched_members}
    assert unmatched["u-zoe"]["params"]["key"] == "zoe@elsewhere.org"
    assert [n["params"]["student"] for n in sync.unmatched_students] == ["carla", "dora"]
    text = sync.summary("es")
    assert "4 estudiantes activos" in text and "Dan Private" in text and "dora" in text
    assert "zoe@elsewhere.org" in sync.summary("en")
    assert json.loads(report_path.read_text())["summary"]["matched"] == 2

    written = (tmp_path / "lti_users.csv").read_text().splitlines()
    assert written == ["student_id,lti_user_id", "ana,u-ana", "ben,u-ben"]
    # the export now finds ana's and ben's ids; carla (inactive) has none and is reported
    with pytest.raises(lti.LtiPassbackError, match="1 of 3.*no LTI user id"):
        export(nrps_course, tmp_path)
    assert {b["userId"] for _, b in platform.scores} == {"u-ana", "u-ben"}


def test_other_matches_and_no_roster(nrps_course, platform, tmp_path):
    lms = nrps_course.nbgrader_config.Course.lms
    del lms["roster"]  # the students are those of the results file: ana, ben, carla
    sync = lti_nrps.sync_roster(nrps_course, match="email_local", dry_run=True)
    assert {m.student for m in sync.matches} == {"ana", "ben"}
    assert not sync.written and not (tmp_path / "lti_users.csv").exists()
    assert [n["params"]["student"] for n in sync.unmatched_students] == ["carla"]
    (tmp_path / "roster.csv").write_text("student_id,sis_user_id\nana,S-ana\nben,S-ben\n")
    lms["roster"] = str(tmp_path / "roster.csv")
    lms["lti"]["roster_match"] = "lis_person_sourcedid"
    sync = lti_nrps.sync_roster(nrps_course)
    assert {m.student for m in sync.matches} == {"ana", "ben"}
    assert ids(sync.unmatched_members).count("lms.lti_member_no_key") == 2  # zoe, dan


def test_known_ids_conflicts_and_ambiguity(nrps_course, platform, tmp_path):
    users = tmp_path / "lti_users.csv"
    # dan was matched by hand before; ana has a stale id
    users.write_text("student_id,lti_user_id,note\nana,u-old,keep me\nben,,\nfeli,u-dan,\n")
    platform.members.append(member("u-ben2", "Ben Again", "ben@uni.es"))  # a second "ben"
    sync = lti_nrps.sync_roster(nrps_course)
    got = {m.student: (m.lti_user_id, m.how, m.change) for m in sync.matches}
    assert got == {"ana": ("u-ana", "email", "kept"), "feli": ("u-dan", "known", "unchanged")}
    assert "lms.lti_user_id_conflict" in ids(sync.problems)
    contested = [n for n in sync.unmatched_members if n["id"] == "lms.lti_member_contested"]
    assert {n["params"]["user_id"] for n in contested} == {"u-ben", "u-ben2"}
    assert users.read_text().splitlines()[1:] == ["ana,u-old,keep me", "ben,,", "feli,u-dan,"]
    sync = lti_nrps.sync_roster(nrps_course, overwrite=True)
    assert {m.student: m.change for m in sync.matches}["ana"] == "replaced"
    assert users.read_text().splitlines()[1] == "ana,u-ana,keep me"


def test_membership_pages_must_stay_on_the_platform(nrps_course, platform):
    platform.next_link = "http://evil.example/names_and_roles?page=2"
    with pytest.raises(lti.LtiServiceError, match="another site"):
        lti_nrps.sync_roster(nrps_course)
    platform.next_link = platform.memberships_url  # page 1 again: a loop
    with pytest.raises(lti.LtiServiceError, match="loops back"):
        lti_nrps.sync_roster(nrps_course)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([(401, b'{"error": "unauthorized"}', "application/json")] * 2, "HTTP 401"),
        ([(500, b"boom", "text/plain")] * 4, "HTTP 500 \\(boom\\)"),
        ([(200, b'{"members": [', lti_nrps.NRPS_MEDIA_TYPE)], "is not JSON"),
        ([(200, b'["a list"]', lti_nrps.NRPS_MEDIA_TYPE)], "not a membership container"),
        ([(200, b'{"members": []}' + b" " * 2_000_000, "application/json")], "larger than 1 MB"),
        ([(200, b"~" + b" " * 2_000_000, "application/json")], "larger than 1 MB"),  # unsaid
    ],
)
def test_membership_errors_name_their_cause(nrps_course, platform, answers, message, tmp_path):
    nrps_course.nbgrader_config.Course.lms["lti"]["max_response_mb"] = 1
    platform.service_fail = list(answers)
    with pytest.raises(lti.LtiServiceError, match=message) as info:
        lti_nrps.sync_roster(nrps_course, sleep=lambda s: None)
    assert "reading the context membership" in str(info.value)
    assert platform.memberships_url.split("?")[0] in str(info.value)
    assert not (tmp_path / "lti_users.csv").exists()


def test_membership_scope_refused(nrps_course, platform):
    platform.allowed_scopes = {lti.SCORE_SCOPE}
    with pytest.raises(LmsError, match="invalid_scope.*contextmembership.readonly"):
        lti_nrps.sync_roster(nrps_course)
    nrps_course.nbgrader_config.Course.lms["lti"]["memberships_url"] = ""
    with pytest.raises(LmsError, match="memberships_url"):
        lti_nrps.sync_roster(nrps_course)


# --- LTI Advantage: AGS line items ------------------------------------------------------------

TITLE = "Lección 4: la tasa de aprendizaje (learning rate)"


@pytest.fixture
def auto_course(course, platform):
    """The course with the line items service instead of a configured line item."""
    settings = course.nbgrader_config.Course.lms["lti"]
    settings["line_items"] = {}
    settings["lineitems_url"] = platform.lineitems_url
    return course


def other_items(platform) -> list[dict]:
    return [
        {"id": platform.line_item(1), "label": "Quiz 1", "scoreMaximum": 10, "resourceId": "q1"},
        {"id": platform.line_item(2), "label": TITLE, "scoreMaximum": 8, "resourceId": "other"},
        {"id": platform.line_item(3), "label": "Quiz 3", "scoreMaximum": 10},
    ]


def test_existing_line_item_found_by_resource_id(auto_course, platform, tmp_path):
    platform.line_items = [
        *other_items(platform),
        {"id": platform.line_item(4), "label": "L4", "scoreMaximum": 10, "resourceId": AID},
    ]  # on the second page
    report = export(auto_course, tmp_path)
    assert report["summary"]["accepted"] == 3 and platform.errors == []
    assert report["line_item"] == platform.line_item(4)
    assert report["line_item_source"] == "resource_id"
    assert {p for p, _ in platform.scores} == {f"{COURSE_API}/line_items/4/scores"}
    gets = [r for r in platform.service_requests if r[0] == "GET"]
    assert len(gets) == 2 and {r[2] for r in gets} == {lti.LINEITEMS_MEDIA_TYPE}
    assert not [r for r in platform.service_requests if r[0] == "POST"]
    assert platform.token_requests == 1  # one token for the line items and the scores
    assert platform.granted == [{lti.LINEITEM_SCOPE, lti.SCORE_SCOPE}]
    assert ids(report["notes"]) == ["lms.lti_line_item_by_resource_id", "lms.lti_line_item_maximum"]


def test_line_item_found_by_label(auto_course, platform, tmp_path):
    platform.line_items = [
        *other_items(platform),  # item 2 has the title but belongs to another resource
        {"id": platform.line_item(5), "label": f"  {TITLE.upper()} ", "scoreMaximum": 8},
    ]
    report = export(auto_course, tmp_path)
    assert report["line_item"] == platform.line_item(5) and report["line_item_source"] == "label"
    assert ids(report["notes"]) == ["lms.lti_line_item_by_label"]


def test_missing_line_item_is_created_once(auto_course, platform, tmp_path):
    platform.line_items = other_items(platform)[:1]
    report = export(auto_course, tmp_path)
    created = platform.line_items[-1]
    assert {k: v for k, v in created.items() if k != "id"} == {
        "scoreMaximum": 8.0,
        "label": TITLE,
        "resourceId": AID,
        "tag": "autograder",
    }
    assert report["line_item"] == created["id"] and report["line_item_source"] == "created"
    assert {p for p, _ in platform.scores} == {urlsplit(created["id"]).path + "/scores"}
    assert report["summary"]["accepted"] == 3
    again = export(auto_course, tmp_path)  # the next export finds it
    assert again["line_item_source"] == "resource_id" and len(platform.line_items) == 2


def test_configured_line_item_wins(auto_course, platform, tmp_path):
    auto_course.nbgrader_config.Course.lms["lti"]["line_items"] = {AID: platform.line_item(7)}
    report = export(auto_course, tmp_path)
    assert report["line_item_source"] == "configured" and platform.service_requests == []
    assert platform.granted == [{lti.SCORE_SCOPE}]


def test_every_graded_assignment_is_exported_with_the_service(auto_course, platform, tmp_path):
    path = EXPORTERS["lti"](auto_course, None, out=tmp_path / "report.json")
    assert json.loads(Path(path).read_text())["line_item_source"] == "created"


def test_several_candidates_are_an_error_not_a_guess(auto_course, platform, tmp_path):
    platform.line_items = [
        {"id": platform.line_item(8), "label": "a", "scoreMaximum": 8, "resourceId": AID},
        {"id": platform.line_item(9), "label": "b", "scoreMaximum": 8, "resourceId": AID},
    ]
    with pytest.raises(lti.LtiPassbackError, match="2 line items have resourceId"):
        export(auto_course, tmp_path)
    assert platform.scores == []


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([(401, b"{}", "application/json")] * 2, "listing the line items: .*HTTP 401"),
        ([(503, b"down", "text/plain")] * 4, "HTTP 503 \\(down\\)"),
        ([(200, b"<html>", "text/html")], "is not JSON \\(text/html"),
        ([(200, b'{"id": "x"}', lti.LINEITEMS_MEDIA_TYPE)], "not a line item container"),
        ([(200, b"[]", "application/json"), (500, b"no", "text/plain")], "creating.*HTTP 500"),
    ],
)
def test_line_item_errors_name_their_cause(auto_course, platform, tmp_path, answers, message):
    platform.service_fail = list(answers)
    with pytest.raises(lti.LtiPassbackError, match=message):
        export(auto_course, tmp_path, sleep=lambda s: None)
    assert platform.scores == []
    if answers[-1][0] == 500:  # a POST that failed on the server is not repeated blindly
        assert [r[0] for r in platform.service_requests] == ["GET", "POST"]


def test_line_item_scope_refused(auto_course, platform, tmp_path):
    platform.allowed_scopes = {lti.SCORE_SCOPE}  # the platform grants fewer scopes
    with pytest.raises(lti.LtiPassbackError, match="did not grant the scope .*lineitem"):
        export(auto_course, tmp_path)
    auto_course.nbgrader_config.Course.lms["lti"]["lineitems_url"] = ""
    with pytest.raises(lti.LtiPassbackError, match="lineitems_url"):
        export(auto_course, tmp_path)


def test_line_items_on_another_site_are_refused(auto_course, platform, tmp_path):
    platform.line_items = [
        {"id": "http://evil.example/li/1", "label": "x", "scoreMaximum": 8, "resourceId": AID}
    ]
    with pytest.raises(lti.LtiPassbackError, match="another site"):
        export(auto_course, tmp_path)


def test_dry_run_with_the_line_items_service_contacts_nothing(auto_course, platform, tmp_path):
    report = export(auto_course, tmp_path, dry_run=True)
    assert platform.token_requests == 0 and platform.service_requests == []
    assert all("looked up in lineitems_url" in o["error"] for o in report["outcomes"])
    assert all(
        o["note"] == Note("lms.lti.outcome.dry_run", {"lookup": True}).to_dict()
        for o in report["outcomes"]
    )


def test_names_from_the_platform_reach_the_terminal_escaped(nrps_course, platform, tmp_path):
    platform.members = [member("u-eve", "Eve\x1b[2J\u202e", "eve@x.org")]
    (tmp_path / "lti_users.csv").write_text("student_id;lti_user_id\nana;u-ana\n")  # ; read
    sync = lti_nrps.sync_roster(nrps_course)
    text = sync.summary("en")
    assert "\x1b" not in text and "\\x1b[2J" in text and "\\u202e" in text
    assert (tmp_path / "lti_users.csv").read_text().splitlines() == [
        "student_id,lti_user_id",
        "ana,u-ana",
    ]
    platform.members = [member("=cmd|' /C calc'!A0", "Mallory", "ana@uni.es")]
    sync = lti_nrps.sync_roster(nrps_course)
    assert ids(sync.problems) == ["lms.lti_user_id_unusable"] and sync.matches == []


def test_the_new_settings_are_strict(course):
    lms = course.nbgrader_config.Course.lms
    lms["lti"]["roster_match"] = "mail"
    with pytest.raises(LmsError, match="roster_match.*'email'.*'email_local'"):
        lti.lti_settings(course)
    lms["lti"]["roster_match"] = "email_local"
    lms["lti"]["labels"] = {"lesson4_learning_rte": "x"}
    with pytest.raises(LmsError, match='Did you mean "lesson4_learning_rate"'):
        lti.lti_settings(course)
    lms["lti"]["labels"] = {AID: "Lección 4"}
    lms["lti"]["lineitem_url"] = "https://p/li"
    with pytest.raises(LmsError, match='Did you mean "lineitems_url"'):
        lti.lti_settings(course)


def test_an_id_from_the_roster_is_corrected_there(nrps_course, platform, tmp_path):
    (tmp_path / "roster.csv").write_text(
        ROSTER.replace("ana@uni.es", "ana@uni.es,u-rost", 1).replace(
            "name,email", "name,email,lti_user_id"
        )
    )
    sync = lti_nrps.sync_roster(nrps_course, overwrite=True)
    assert "lms.lti_user_id_conflict_roster" in ids(sync.problems)
    assert "ana" not in (tmp_path / "lti_users.csv").read_text()
    assert {m.student: m.change for m in sync.matches} == {"ana": "kept", "ben": "added"}


# --- what a platform's failure says, in both languages ----------------------------------------

# words of our English sentences that have no place in a Spanish one
ENGLISH = re.compile(
    r"\b(the|is|not|of|to|and|for|from|at|has|no answer|answered|refused|request|grant(ed)?|"
    r"nothing|check|enable|tool|next|page|link|loops?|back|reading|listing|membership|scores?|"
    r"sent|delivered|may|allowed)\b",
    re.IGNORECASE,
)


def data(params: dict) -> list[str]:
    """Every text parameter of a note and of the notes nested in it: what the platform, the
    transport or the course said (bodies, URLs, scopes, paths), quoted as it is."""
    found = []
    for value in params.values():
        note = Note.from_dict(value)
        if note is not None:
            found += data(note.params)
        elif isinstance(value, str):
            found.append(value)
    return found


def ours(note: Note, language: str) -> str:
    """The note's text without its data parameters, the strings quoted in it (the Canvas and
    Moodle setting labels, which stay in English) and HTTP statuses: our own words."""
    text = note.text(language)
    for value in sorted(data(note.params), key=len, reverse=True):
        if value:
            text = text.replace(value, " ")
    text = re.sub(r'"[^"]*"', " ", text)
    return re.sub(r"\bHTTP \d+\b", " ", text)


def both(exc) -> tuple[str, str]:
    """The error in English (its ``str``) and in Spanish, with no English word of ours in it."""
    english, spanish = exc.note.text("en"), exc.note.text("es")
    assert english == str(exc)
    found = ENGLISH.findall(ours(exc.note, "es"))
    assert not found, (found, spanish)
    assert ENGLISH.search(ours(exc.note, "en"))  # the check does see English
    return english, spanish


def test_a_token_failure_speaks_both_languages(course, platform, tool_key, tmp_path):
    platform.close()  # the token URL answers nothing
    settings = lti.lti_settings(course)
    client = lti.AgsClient(settings, tool_key.read_bytes(), sleep=lambda s: None)
    try:
        with pytest.raises(lti.TokenError) as info:
            client.token()
    finally:
        client.close()
    english, spanish = both(info.value)
    assert english.startswith(f"no access token from {platform.token_url}: ConnectError")
    assert spanish.startswith(f"no se obtuvo ningún token de acceso de {platform.token_url}:")
    # the export's verdict quotes every student's reason in the reader's language too
    with pytest.raises(lti.LtiPassbackError) as info:
        export(course, tmp_path, sleep=lambda s: None)
    english, spanish = both(info.value)
    assert english.startswith("3 of 3 scores were not accepted (not sent: no access token")
    assert spanish.startswith("3 de 3 calificaciones no se aceptaron (no enviada: no se obtuvo")
    assert f"Informe: {tmp_path / 'report.json'}" in spanish


def test_a_missing_scope_speaks_both_languages_with_its_hint(nrps_course, platform):
    platform.service_fail = [(403, b'{"error": "insufficient scope"}', "application/json")]
    with pytest.raises(lti.LtiServiceError) as info:
        lti_nrps.sync_roster(nrps_course)
    english, spanish = both(info.value)
    label = '"Can retrieve user data associated with the context the tool is installed in"'
    where = platform.memberships_url
    assert english == (
        "reading the context membership (NRPS): the platform answered HTTP 403 "
        f'({{"error": "insufficient scope"}}) at {where}; enable the Names and Role '
        f"Provisioning Service for the tool (Canvas: developer key scope {label}; Moodle: "
        "\"IMS LTI Names and Role Provisioning: Use this service to retrieve members' "
        'information as per privacy settings")'
    )
    assert spanish.startswith(
        "al leer los miembros del contexto (NRPS): la plataforma respondió HTTP 403 "
        f'({{"error": "insufficient scope"}}) en {where}; habilita el servicio de nombres'
    )
    assert label in spanish  # the platform's own label, as Canvas shows it
    note = info.value.note.to_dict()
    assert note["params"]["what"] == {"id": "lms.lti.doing.memberships", "params": {}}
    assert note["params"]["hint"] == {"id": "lms.lti.scope.nrps", "params": {}}
    # a token the platform grants without the scope: the same hint, as a note of its own
    platform.allowed_scopes = {lti.SCORE_SCOPE, lti.LINEITEM_SCOPE}
    hints = lti.scope_hints([lti.NRPS_SCOPE, lti.SCORE_SCOPE, "urn:other"])
    assert [h["id"] for h in hints] == ["lms.lti.scope.nrps", "lms.lti.scope.score"]
    assert lti.scope_hints(["urn:other"]) == [{"id": "lms.lti.scope.unknown", "params": {}}]
    joined = Note.from_dict(lti.scope_hint([lti.LINEITEM_SCOPE, lti.SCORE_SCOPE]))
    assert joined.text("es").count("; habilita") == 1
    assert '"Can create and update submission results"' in joined.text("es")


def test_a_refused_scope_speaks_both_languages(nrps_course, platform):
    platform.allowed_scopes = {lti.SCORE_SCOPE}  # the token request itself is refused
    with pytest.raises(lti.LtiServiceError) as info:
        lti_nrps.sync_roster(nrps_course)
    english, spanish = both(info.value)
    assert "the tool may not be allowed the scope(s) " + lti.NRPS_SCOPE in english
    assert "no tenga permitido el alcance (scope) " + lti.NRPS_SCOPE in spanish
    assert "habilita el servicio de nombres y roles" in spanish


def test_a_paging_loop_speaks_both_languages(nrps_course, auto_course, platform):
    platform.next_link = platform.memberships_url  # page 2 is page 1 again
    with pytest.raises(lti.LtiServiceError) as info:
        lti_nrps.sync_roster(nrps_course)
    english, spanish = both(info.value)
    assert english == (
        "reading the context membership (NRPS): the next page link loops back to "
        + platform.memberships_url
    )
    assert spanish.startswith(
        "al leer los miembros del contexto (NRPS): el enlace a la página siguiente vuelve a "
        + platform.memberships_url
    )
    platform.line_items = other_items(platform)
    platform.next_link = "http://evil.example/line_items?page=2"
    client = lti.AgsClient(
        lti.lti_settings(auto_course), lti.load_private_key(lti.lti_settings(auto_course))[0]
    )
    try:
        with pytest.raises(lti.LtiServiceError) as info:
            lti.list_line_items(client, platform.lineitems_url)
    finally:
        client.close()
    english, spanish = both(info.value)
    assert english.startswith("listing the line items: the next page link points to another")
    assert spanish.startswith("al listar los line items: el enlace a la página siguiente apunta")


PLATFORM_ERRORS = (
    r"(?<!class )\b(TokenError|LtiServiceError|LtiPassbackError|_PlatformError|LmsError)\(\s*"
)


def test_platform_errors_are_catalogue_ids_not_sentences():
    """Every error of lti.py and lti_nrps.py is raised as a catalogue id (its first argument a
    literal ``"lms...."``), every id those files name is in the catalogue, and nothing goes
    out as ``plain`` text."""
    root = Path(lti.__file__).parent
    known = set(catalogue())
    used, sentences = set(), []
    for name in ("lti.py", "lti_nrps.py"):
        text = (root / name).read_text(encoding="utf-8")
        for call in re.finditer(PLATFORM_ERRORS + r"([^,)\n]*)", text):
            first = call.group(2).strip()
            if not re.fullmatch(r'"lms\.[a-z0-9_.]+"', first):
                sentences.append(f"{name}: {call.group(0)}")
        assert not re.search(r'raise \w*Error\(\s*f?"[^"]*[A-Z ][^"]*"', text), name
        assert '"plain"' not in text, name
        used |= set(re.findall(r'"(lms\.[a-z0-9_.]+)"', text))
        used |= {f"lms.lti.doing.{op}" for op in re.findall(r'\bdoing\("([a-z_]+)"', text)}
    used |= {f"lms.lti_line_item_by_{how}" for how in ("resource_id", "label")}
    assert not sentences, sentences
    assert {"lms.lti.platform.page_loop", "lms.lti.doing.memberships"} <= used
    assert used <= known, sorted(used - known)
    assert set(lti.SCOPE_HINTS.values()) <= known
