"""LTI 1.3 AGS score passback against a platform that the tests start on 127.0.0.1: real HTTP,
the client assertion verified against the tool's public key set, every Score body validated
against the specification."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import jwt
import pytest

from autograder.export import EXPORTERS
from autograder.lms import lti
from autograder.lms.common import LmsError
from autograder.results import Note
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


class Platform:
    """A minimal LTI platform: an OAuth 2 token endpoint and line items' score endpoints."""

    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.tokens: dict[str, float] = {}  # token -> expiry
        self.jtis: set[str] = set()
        self.scores: list[tuple[str, dict]] = []  # (path with query, body)
        self.errors: list[str] = []
        self.token_requests = 0
        self.score_requests = 0
        self.expires_in = 3600  # how long tokens are valid
        self.announced_expires_in: int | None = None  # what the token response says
        self.fail_next: list[tuple[int, dict]] = []  # scripted answers for the score endpoint
        self.revoke_after_scores: int | None = None
        self.lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with platform.lock:
                    if self.path == "/login/oauth2/token":
                        status, headers, payload = platform.token(self.headers, body)
                    elif urlsplit(self.path).path.endswith("/scores"):
                        status, headers, payload = platform.score(self.path, self.headers, body)
                    else:
                        status, headers, payload = 404, {}, {"error": "not found"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def token_url(self) -> str:
        return f"{self.url}/login/oauth2/token"

    def line_item(self, n: int, query: str = "") -> str:
        return f"{self.url}/api/lti/courses/1/line_items/{n}{query}"

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
        if lti.SCORE_SCOPE not in form.get("scope", "").split():
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
        self.tokens[token] = time.time() + self.expires_in
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
                "scope": lti.SCORE_SCOPE,
            },
        )

    def score(self, path: str, headers, body: bytes):
        self.score_requests += 1
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.tokens.get(token, 0) < time.time():
            return (
                401,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                {"error": "invalid_token"},
            )
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
        self.scores.append((path, score))
        if self.revoke_after_scores is not None and len(self.scores) >= self.revoke_after_scores:
            self.tokens.clear()  # every token expires now
            self.revoke_after_scores = None
        return 200, {}, {}


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


@pytest.fixture
def course(tmp_path, platform, tool_key):
    course = make_course(tmp_path / "state")
    graded_state(
        course.state_dir,
        [
            student_result(course, "ana"),
            student_result(course, "ben", {"test_steps_lr_003": 0, "test_curve_labels": 1}),
            student_result(course, "carla", None, "error", Note("submission.empty")),
        ],
        course,
    )
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
