"""LTI 1.3 Assignment and Grade Services: post each student's score to the assignment's line item.

The flow (1EdTech LTI AGS 2.0 and LTI Security Framework 1.0):

1. The tool gets an access token from the platform's token URL by OAuth 2 client credentials,
   authenticating with a JWT it signs with its private key (RS256; ``iss`` = ``sub`` = client
   id, ``aud`` = token URL, ``iat``, ``exp``, ``jti``); the platform checks it against the
   tool's public key set (JWKS), registered with the platform (``public_jwks``).
2. For each student it POSTs a Score (``application/vnd.ims.lis.v1.score+json``) to
   ``<line item URL>/scores``: ``userId``, ``scoreGiven``, ``scoreMaximum``, ``comment``,
   ``timestamp``, ``activityProgress``, ``gradingProgress``.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with back-off
(``Retry-After`` honoured); a 401 fetches a new token once (tokens expire). Everything sent and
every failure goes to a JSON report; if any score was not accepted the export raises
``LtiPassbackError`` naming that report, so nothing fails quietly.

Settings (``c.Course.lms["lti"]``, typed by ``autograder.config.LtiSettings``; docs/settings.md):
``issuer``, ``client_id``, ``token_url``, ``audience`` (default: the token URL), ``key_id``,
``key_file``, ``line_items`` ({assignment: line item URL}), ``user_ids`` (CSV
``student_id,lti_user_id``). The private key is never in the config:
``$AUTOGRADER_LTI_PRIVATE_KEY`` (PEM text), ``$AUTOGRADER_LTI_KEY_FILE`` or ``key_file``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from autograder.config import LTI_SCORE_SCOPE, Course, LtiSettings
from autograder.grades import class_grades
from autograder.lms.common import (
    LmsError,
    feedback_text,
    lms_config,
    resolve_path,
    write_json_atomic,
)
from autograder.lms.roster import course_roster

log = logging.getLogger(__name__)

SCORE_SCOPE = LTI_SCORE_SCOPE
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENV_KEY = "AUTOGRADER_LTI_PRIVATE_KEY"
ENV_KEY_FILE = "AUTOGRADER_LTI_KEY_FILE"
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class LtiPassbackError(LmsError):
    """Some scores were not accepted by the platform (the report says which and why)."""


class TokenError(LmsError):
    """The platform refused to give an access token (wrong key, client id, clock...)."""


# --- settings and keys ----------------------------------------------------------------------------


def lti_settings(course: Course) -> LtiSettings:
    """``c.Course.lms["lti"]`` (``autograder.config.LtiSettings``, validated when the course is
    loaded), checked for what posting needs, ``key_file`` resolved against the course."""
    settings = lms_config(course).lti
    missing = [k for k in ("client_id", "token_url") if not getattr(settings, k)]
    if missing:
        raise LmsError(
            f"LTI settings missing in course_config.py: {', '.join(missing)}. Example:\n"
            "  c.Course.lms = {'lti': {'issuer': 'https://canvas.instructure.com', "
            "'client_id': '10000000000042', 'token_url': "
            "'https://school.instructure.com/login/oauth2/token', 'key_id': 'course-2026', "
            "'key_file': '~/.config/autograder/lti_key.pem', 'line_items': "
            "{'lesson4_learning_rate': 'https://.../line_items/7'}, "
            "'user_ids': 'lti_users.csv'}}"
        )
    key_file = resolve_path(course, settings.key_file)
    return replace(settings, key_file=str(key_file) if key_file else "")


def load_private_key(settings: LtiSettings) -> tuple[bytes, list[str]]:
    """The tool's private key (PEM) and warnings about how it is stored."""
    warnings: list[str] = []
    if os.environ.get(ENV_KEY):
        return os.environ[ENV_KEY].encode(), warnings
    path = os.environ.get(ENV_KEY_FILE) or settings.key_file
    if not path:
        raise LmsError(
            f"No LTI private key: set key_file in c.Course.lms['lti'], or "
            f"${ENV_KEY_FILE}, or ${ENV_KEY}. Create one with "
            "autograder.lms.lti.generate_key()."
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise LmsError(f"LTI key file {path} does not exist.")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        warnings.append(
            f"the key file {path} is readable by other users (mode {mode:o}); chmod 600 it"
        )
    return path.read_bytes(), warnings


def generate_key(path: str | Path, key_id: str | None = None) -> dict[str, Any]:
    """Write a new RSA private key (PEM, mode 600) to ``path``; return the public JWKS to
    register with the platform (Canvas: developer key > Public JWK; Moodle: tool > Public key
    type "Keyset URL" or "RSA key")."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_jwks(pem, key_id)


def public_jwks(private_pem: bytes, key_id: str | None = None) -> dict[str, Any]:
    """The public key set (JWKS) of a private key, as the platform wants it registered."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, password=None)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"alg": "RS256", "use": "sig", "kid": key_id or key_thumbprint(jwk)})
    return {"keys": [jwk]}


def key_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: a stable key id when none is configured."""
    import base64
    import hashlib

    canonical = json.dumps(
        {k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


# --- the AGS client ---------------------------------------------------------------------------------


def scores_url(line_item: str) -> str:
    """``<line item>/scores``, keeping the line item's query string (Moodle puts one there)."""
    parts = urlsplit(line_item)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def iso_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 with sub-second precision and offset, as AGS requires."""
    return (moment or datetime.now(UTC)).isoformat(timespec="microseconds")


@dataclass
class Attempt:
    status: int | None
    error: str | None
    seconds: float


@dataclass
class Outcome:
    student: str
    user_id: str | None
    line_item: str | None
    sent: bool
    accepted: bool
    body: dict[str, Any] | None
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None


class AgsClient:
    """Tokens and Score posts for one platform registration (one ``client_id``)."""

    def __init__(
        self,
        settings: LtiSettings,
        private_key: bytes,
        http=None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import httpx
        import jwt
        from cryptography.hazmat.primitives import serialization

        self.settings = settings
        try:
            self._key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError) as exc:
            raise LmsError(f"The LTI private key cannot be read ({exc}).") from None
        self._kid = settings.key_id or public_jwks(private_key)["keys"][0]["kid"]
        self._jwt = jwt
        self.http = http or httpx.Client(timeout=settings.timeout, follow_redirects=False)
        self.clock, self.sleep = clock, sleep
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_requests = 0

    def close(self) -> None:
        self.http.close()

    def client_assertion(self) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.settings.client_id,
            "sub": self.settings.client_id,
            "aud": self.settings.audience or self.settings.token_url,
            "iat": now,
            "exp": now + self.settings.assertion_lifetime,
            "jti": uuid.uuid4().hex,
        }
        return self._jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self._kid, "typ": "JWT"}
        )

    def token(self, refresh: bool = False) -> str:
        if not refresh and self._token and self.clock() < self._token_expires - 10:
            return self._token
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
            "scope": self.settings.scope,
        }
        response = self._send(
            "POST",
            self.settings.token_url,
            data=form,
            headers={"Accept": "application/json"},
            attempts=None,
        )
        self.token_requests += 1
        if response is None or isinstance(response, str):
            raise TokenError(f"no access token from {self.settings.token_url}: {response}")
        if response.status_code != 200:
            raise TokenError(
                f"the platform refused the token request (HTTP "
                f"{response.status_code}: {_brief(response)}); check client_id, "
                "key_id and that the public key registered with the platform "
                "matches the private key"
            )
        try:
            data = response.json()
            token = str(data["access_token"])
        except (ValueError, KeyError, TypeError):
            raise TokenError(
                f"the token response has no access_token: {_brief(response)}"
            ) from None
        self._token = token
        self._token_expires = self.clock() + float(data.get("expires_in", 3600) or 0)
        granted = str(data.get("scope", self.settings.scope)).split()
        if self.settings.scope not in granted:
            raise TokenError(
                f"the platform did not grant the score scope (granted: "
                f"{' '.join(granted) or 'nothing'})"
            )
        return token

    def _send(self, method: str, url: str, attempts: list[Attempt] | None, **kwargs):
        """One request with retries on transient failures; returns the response or, when every
        try failed at the transport level, the last error message."""
        import httpx

        last: str | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            started = self.clock()
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if attempts is not None:
                    attempts.append(Attempt(None, last, round(self.clock() - started, 3)))
                if attempt < self.settings.max_attempts:
                    self.sleep(self._delay(attempt, None))
                continue
            if attempts is not None:
                attempts.append(
                    Attempt(
                        response.status_code,
                        None if response.is_success else _brief(response),
                        round(self.clock() - started, 3),
                    )
                )
            if response.status_code in TRANSIENT and attempt < self.settings.max_attempts:
                self.sleep(self._delay(attempt, response))
                continue
            return response
        return last

    def _delay(self, attempt: int, response) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    return min(60.0, max(0.0, float(retry_after)))
                except ValueError:
                    try:
                        when = parsedate_to_datetime(retry_after).timestamp()
                        return min(60.0, max(0.0, when - time.time()))
                    except (TypeError, ValueError):
                        pass
        return self.settings.backoff * (2 ** (attempt - 1))

    def post_score(self, line_item: str, body: dict[str, Any], outcome: Outcome) -> bool:
        url = scores_url(line_item)
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        for refreshed in (False, True):
            headers = {
                "Authorization": f"Bearer {self.token(refresh=refreshed)}",
                "Content-Type": SCORE_MEDIA_TYPE,
                "Accept": "application/json",
            }
            response = self._send("POST", url, outcome.attempts, content=content, headers=headers)
            outcome.sent = True
            if response is None or isinstance(response, str):
                outcome.error = f"not delivered: {response}"
                return False
            if response.status_code == 401 and not refreshed:
                continue  # the token expired or was revoked: one new token, one more try
            if response.is_success:
                return True
            outcome.error = f"HTTP {response.status_code}: {_brief(response)}"
            return False
        return False


def _brief(response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


# --- the export -------------------------------------------------------------------------------------


def score_body(
    user_id: str,
    score: float,
    maximum: float,
    comment: str | None,
    settings: LtiSettings,
    timestamp: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userId": user_id,
        "scoreGiven": round(max(0.0, float(score)), 6),
        "scoreMaximum": float(maximum),
        "activityProgress": settings.activity_progress,
        "gradingProgress": settings.grading_progress,
        "timestamp": timestamp or iso_timestamp(),
    }
    if comment:
        body["comment"] = comment
    return body


@dataclass
class PassbackReport:
    assignment: str
    line_item: str | None
    platform: dict[str, str]
    started: str
    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fatal: str | None = None
    token_requests: int = 0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.accepted]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = {
            "students": len(self.outcomes),
            "accepted": sum(o.accepted for o in self.outcomes),
            "failed": len(self.failed),
        }
        return data


def passback(
    course: Course,
    assignment_id: str,
    *,
    settings: LtiSettings | None = None,
    private_key: bytes | None = None,
    roster: str | os.PathLike | None = None,
    students: list[str] | None = None,
    dry_run: bool = False,
    http=None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> PassbackReport:
    """Send every graded student's score for ``assignment_id`` to its line item."""
    settings = settings or lti_settings(course)
    course.assignment(assignment_id)
    line_item = settings.line_items.get(assignment_id)
    report = PassbackReport(
        assignment_id,
        line_item,
        {
            "issuer": settings.issuer,
            "client_id": settings.client_id,
            "token_url": settings.token_url,
        },
        iso_timestamp(),
    )
    rows = [r for r in class_grades(course, assignment_id) if not students or r.student in students]
    people = course_roster(course, roster, lti=True)
    if not line_item:
        report.fatal = (
            f"no line item for {assignment_id}: set c.Course.lms['lti']"
            f"['line_items']['{assignment_id}'] to the line item URL the platform "
            "gave (AGS lineitem claim, or its line items service)"
        )
    client = None
    if report.fatal is None and not dry_run:
        if private_key is None:
            private_key, warnings = load_private_key(settings)
            report.warnings.extend(warnings)
        client = AgsClient(settings, private_key, http=http, clock=clock, sleep=sleep)
    try:
        for row in rows:
            person = people.get(row.student)
            user_id = person.lti_user_id if person else ""
            outcome = Outcome(row.student, user_id or None, line_item, False, False, None)
            report.outcomes.append(outcome)
            if report.fatal:
                outcome.error = f"not sent: {report.fatal}"
                continue
            if not user_id:
                outcome.error = (
                    "not sent: no LTI user id for this student (add lti_user_id "
                    "to the roster or to the lti user_ids file)"
                )
                continue
            comment = feedback_text(row, course.language) if settings.comment else None
            outcome.body = score_body(user_id, row.score, row.max_score, comment, settings)
            if dry_run:
                outcome.error = "dry run: not sent"
                continue
            try:
                outcome.accepted = client.post_score(line_item, outcome.body, outcome)
            except TokenError as exc:
                report.fatal = str(exc)
                outcome.error = f"not sent: {exc}"
    finally:
        if client is not None:
            report.token_requests = client.token_requests
            if http is None:
                client.close()
    return report


def report_path(course: Course, assignment_id: str, out: str | Path | None = None) -> Path:
    if out:
        return Path(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return course.exports_dir / f"lti_{assignment_id}_{stamp}.json"


def export_lti(
    course: Course,
    assignment_id: str | None = None,
    out: str | Path | None = None,
    roster: str | os.PathLike | None = None,
    dry_run: bool = False,
    **options,
) -> Path:
    """``autograder export --format lti``: post the scores, write the report (``out``, default
    ``exports/lti_<assignment>_<time>.json``); raise ``LtiPassbackError`` if any score was not
    accepted. With several assignments, one report holds them all."""
    settings = lti_settings(course)
    aids = (
        [assignment_id]
        if assignment_id
        else [a for a in sorted(course.assignments) if a in settings.line_items]
    )
    if not aids:
        raise LmsError(
            "No assignment has an LTI line item: set c.Course.lms['lti']"
            "['line_items'] in course_config.py."
        )
    reports = [
        passback(
            course,
            aid,
            settings=settings,
            roster=roster,
            dry_run=dry_run,
            **{
                k: v
                for k, v in options.items()
                if k in ("private_key", "http", "sleep", "clock", "students")
            },
        )
        for aid in aids
    ]
    path = report_path(course, aids[0] if len(aids) == 1 else "all", out)
    data = (
        reports[0].to_dict()
        if len(reports) == 1
        else {"assignments": [r.to_dict() for r in reports]}
    )
    write_json_atomic(path, data)
    failed = [(r.assignment, o) for r in reports for o in r.failed]
    for r in reports:
        for warning in r.warnings:
            log.warning("lti: %s", warning)
    if failed and not dry_run:
        total = sum(len(r.outcomes) for r in reports)
        reasons = sorted({o.error or "?" for _, o in failed})
        raise LtiPassbackError(
            f"{len(failed)} of {total} scores were not accepted ({'; '.join(reasons)[:500]}). "
            f"Report: {path}"
        )
    return path
