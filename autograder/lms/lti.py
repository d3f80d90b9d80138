"""LTI 1.3 Assignment and Grade Services: find or create the assignment's line item, post each
student's score to it.

The flow (1EdTech LTI AGS 2.0 and LTI Security Framework 1.0):

1. The tool gets an access token from the platform's token URL by OAuth 2 client credentials,
   authenticating with a JWT it signs with its private key (RS256; ``iss`` = ``sub`` = client
   id, ``aud`` = token URL, ``iat``, ``exp``, ``jti``); the platform checks it against the
   tool's public key set (JWKS), registered with the platform (``public_jwks``). One token
   may carry several scopes; it is reused for every request those scopes allow.
2. The line item: ``line_items[assignment]`` when given; else the line items container
   (``lineitems_url``, ``application/vnd.ims.lis.v2.lineitemcontainer+json``, every page of
   ``Link: rel="next"``) is read and the item whose ``resourceId`` is the assignment id, else
   the only one labelled with the assignment's title, is taken; when there is none it is
   created (POST ``application/vnd.ims.lis.v2.lineitem+json``: ``scoreMaximum``, ``label``,
   ``resourceId``, ``tag``). Scope ``.../lti-ags/scope/lineitem``.
3. For each student it POSTs a Score (``application/vnd.ims.lis.v1.score+json``) to
   ``<line item URL>/scores``: ``userId``, ``scoreGiven``, ``scoreMaximum``, ``comment``,
   ``timestamp``, ``activityProgress``, ``gradingProgress``.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with back-off
(``Retry-After`` honoured; creating a line item is retried only when it surely did nothing);
a 401 fetches a new token once (tokens expire). Answers are read up to ``max_response_mb``;
URLs the platform gives (next pages, line items) must be on the service's own site, so the
token never goes elsewhere. Everything sent and every failure goes to a JSON report; if any
score was not accepted the export raises ``LtiPassbackError`` naming that report, so nothing
fails quietly. The Names and Role Provisioning Service (the roster) is in
``autograder.lms.lti_nrps``, over the same client.

Settings (``c.Course.lms["lti"]``, typed by ``autograder.config.LtiSettings``; docs/settings.md):
``issuer``, ``client_id``, ``token_url``, ``audience`` (default: the token URL), ``key_id``,
``key_file``, ``line_items`` ({assignment: line item URL}), ``lineitems_url``, ``labels``,
``tag``, ``create_line_items``, ``user_ids`` (CSV ``student_id,lti_user_id``). The private key
is never in the config: ``$AUTOGRADER_LTI_PRIVATE_KEY`` (PEM text), ``$AUTOGRADER_LTI_KEY_FILE``
or ``key_file``.
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
from urllib.parse import urljoin, urlsplit, urlunsplit

from autograder.config import LTI_SCORE_SCOPE, Course, LtiSettings
from autograder.grades import class_grades
from autograder.lms.common import (
    LmsError,
    feedback_text,
    fmt_points,
    lms_config,
    resolve_path,
    write_json_atomic,
)
from autograder.lms.roster import course_roster
from autograder.results import Note

log = logging.getLogger(__name__)

SCORE_SCOPE = LTI_SCORE_SCOPE
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENV_KEY = "AUTOGRADER_LTI_PRIVATE_KEY"
ENV_KEY_FILE = "AUTOGRADER_LTI_KEY_FILE"
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class _PlatformError(LmsError):
    """What a platform answered, or why the tool does not go on with it: a catalogue message
    (``autograder/messages/lms_lti.toml``, ``lms.lti.platform.*`` and kin) taken as
    ``(message_id, **params)`` like every ``LmsError``. What the platform said (HTTP status,
    body, URLs, scopes) is a parameter, quoted as it is; the operation that failed (``what``)
    is a nested note (``lms.lti.doing.*``), so each language has the whole sentence."""


class LtiPassbackError(_PlatformError):
    """Some scores were not accepted by the platform (the report says which and why)."""


class TokenError(_PlatformError):
    """The platform refused to give an access token (wrong key, client id, clock...)."""


# --- settings and keys ----------------------------------------------------------------------------


# what a message suggests when LTI settings are missing (a test loads it as course config)
LTI_EXAMPLE = (
    "c.Course.lms = {'lti': {'issuer': 'https://canvas.instructure.com', "
    "'client_id': '10000000000042', 'token_url': "
    "'https://school.instructure.com/login/oauth2/token', 'key_id': 'course-2026', "
    "'key_file': '~/.config/autograder/lti_key.pem', 'line_items': "
    "{'lesson4_learning_rate': 'https://.../line_items/7'}, "
    "'user_ids': 'lti_users.csv'}}"
)


def lti_settings(course: Course) -> LtiSettings:
    """``c.Course.lms["lti"]`` (``autograder.config.LtiSettings``, validated when the course is
    loaded), checked for what posting needs, ``key_file`` resolved against the course."""
    settings = lms_config(course).lti
    missing = [k for k in ("client_id", "token_url") if not getattr(settings, k)]
    if missing:
        raise LmsError("lms.lti.settings_missing", missing=", ".join(missing), example=LTI_EXAMPLE)
    key_file = resolve_path(course, settings.key_file)
    return replace(settings, key_file=str(key_file) if key_file else "")


def doing(operation: str, **params: Any) -> dict[str, Any]:
    """The ``what`` of a service request: which operation it is, as a note (``lms.lti.doing.*``)
    that the error sentence renders in its own language."""
    return Note(f"lms.lti.doing.{operation}", params).to_dict()


def load_private_key(settings: LtiSettings) -> tuple[bytes, list[dict[str, Any]]]:
    """The tool's private key (PEM) and warnings about how it is stored (notes as data)."""
    warnings: list[dict[str, Any]] = []
    if os.environ.get(ENV_KEY):
        return os.environ[ENV_KEY].encode(), warnings
    path = os.environ.get(ENV_KEY_FILE) or settings.key_file
    if not path:
        raise LmsError("lms.lti.no_key", env_file=ENV_KEY_FILE, env_key=ENV_KEY)
    path = Path(path).expanduser()
    if not path.is_file():
        raise LmsError("lms.lti.key_missing", path=str(path))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        warnings.append(
            Note("lms.lti.key_readable", {"path": str(path), "mode": f"{mode:o}"}).to_dict()
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
    error: str | None = None  # in English, for readers of the JSON report; ``note``: as data
    note: dict[str, Any] | None = None  # why it was not accepted (``lms.lti.outcome.*``)

    def fail(self, message_id: str, **params: Any) -> None:
        """Why this score was not accepted: the note, and its English text in ``error``."""
        note = Note(message_id, params)
        self.note, self.error = note.to_dict(), note.text("en")


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
            raise LmsError("lms.lti.key_unreadable", detail=str(exc)) from None
        self._kid = settings.key_id or public_jwks(private_key)["keys"][0]["kid"]
        self._jwt = jwt
        self.http = http or httpx.Client(timeout=settings.timeout, follow_redirects=False)
        self.clock, self.sleep = clock, sleep
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}  # granted scopes -> token
        self.token_requests = 0
        self._line_items: dict[str, list[dict[str, Any]]] = {}  # container URL -> its items

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

    def token(self, refresh: bool = False, scopes: tuple[str, ...] | None = None) -> str:
        """An access token granting every scope of ``scopes`` (default: the score scope). A
        cached token granting them all is reused until 10 s before it expires; ``refresh``
        drops the cached ones (the platform refused them) and asks for a new one."""
        wanted = tuple(scopes or (self.settings.scope,))
        need = frozenset(wanted)
        if refresh:
            self._tokens = {g: t for g, t in self._tokens.items() if not need <= g}
        for granted, (token, expires) in self._tokens.items():
            if need <= granted and self.clock() < expires - 10:
                return token
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
            "scope": " ".join(wanted),
        }
        response = self._send(
            "POST",
            self.settings.token_url,
            data=form,
            headers={"Accept": "application/json"},
            attempts=None,
        )
        self.token_requests += 1
        if isinstance(response, Note):
            raise TokenError(
                "lms.lti.platform.token_unreachable",
                url=self.settings.token_url,
                detail=response.to_dict(),
            )
        if response.status_code != 200:
            raise TokenError(
                "lms.lti.platform.token_refused",
                status=response.status_code,
                body=_brief(response),
                invalid_scope="invalid_scope" in response.text,
                scopes=" ".join(wanted),
                hint=scope_hint(wanted),
            )
        try:
            data = response.json()
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in", 3600) or 0)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TokenError(
                "lms.lti.platform.token_no_access_token", body=_brief(response)
            ) from None
        granted = frozenset(str(data.get("scope") or " ".join(wanted)).split())
        missing = [s for s in wanted if s not in granted]
        if missing:
            raise TokenError(
                "lms.lti.platform.scope_not_granted",
                missing=" ".join(missing),
                granted=" ".join(sorted(granted)),
                hint=scope_hint(missing),
            )
        self._tokens[granted] = (token, self.clock() + lifetime)
        return token

    def _send(
        self,
        method: str,
        url: str,
        attempts: list[Attempt] | None,
        idempotent: bool = True,
        **kwargs,
    ):
        """One request with retries on transient failures; returns the response (its body read,
        at most ``max_response_mb``) or, when every try failed at the transport level, why, as a
        ``Note`` (``lms.lti.platform.transport``: the transport's own words; ``too_large``). A
        request that is not ``idempotent`` (creating a line item) is retried only when it surely
        did nothing: a refused connection or a 429."""
        import httpx

        last = Note("lms.lti.platform.no_attempt", {"attempts": self.settings.max_attempts})
        for attempt in range(1, self.settings.max_attempts + 1):
            started = self.clock()
            try:
                response = self._read(method, url, **kwargs)
            except _TooLarge as exc:
                return exc.note
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                last = Note("lms.lti.platform.transport", {"error": error})
                if attempts is not None:
                    attempts.append(Attempt(None, error, round(self.clock() - started, 3)))
                if not idempotent and not isinstance(exc, httpx.ConnectError):
                    return last
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
            retry = TRANSIENT if idempotent else {429}
            if response.status_code in retry and attempt < self.settings.max_attempts:
                self.sleep(self._delay(attempt, response))
                continue
            return response
        return last

    def _read(self, method: str, url: str, **kwargs):
        """The response with its body read, refusing a body above ``max_response_mb``."""
        import httpx

        limit = int(self.settings.max_response_mb * 1024 * 1024)
        too_large = _TooLarge(
            Note(
                "lms.lti.platform.too_large",
                {"url": no_query(url), "limit": f"{self.settings.max_response_mb:g}"},
            )
        )
        with self.http.stream(method, url, **kwargs) as streamed:
            declared = streamed.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large
            chunks, size = [], 0
            for chunk in streamed.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
            headers = [
                (k, v)
                for k, v in streamed.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            return httpx.Response(
                streamed.status_code,
                headers=headers,
                content=b"".join(chunks),
                request=streamed.request,
            )

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
            if isinstance(response, Note):
                outcome.fail("lms.lti.outcome.not_delivered", detail=response.to_dict())
                return False
            if response.status_code == 401 and not refreshed:
                continue  # the token expired or was revoked: one new token, one more try
            if response.is_success:
                return True
            outcome.fail(
                "lms.lti.outcome.http_error", status=response.status_code, body=_brief(response)
            )
            return False
        return False

    # --- the other LTI Advantage services: JSON over the same tokens ---------------------------

    def service_json(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        accept: str,
        what: dict[str, Any],
        body: dict[str, Any] | None = None,
        content_type: str | None = None,
    ):
        """``(decoded JSON, response)`` of one service request (a 401 gets a new token once);
        ``LtiServiceError`` naming ``what`` (a note: ``doing(...)``), the URL and the cause when
        it fails."""
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body else None
        for refreshed in (False, True):
            headers = {
                "Authorization": f"Bearer {self.token(refresh=refreshed, scopes=scopes)}",
                "Accept": accept,
            }
            if content is not None:
                headers["Content-Type"] = content_type or "application/json"
            response = self._send(
                method,
                url,
                None,
                idempotent=method == "GET",
                content=content,
                headers=headers,
            )
            where = no_query(url)
            if isinstance(response, Note):
                raise LtiServiceError(
                    "lms.lti.platform.no_answer", what=what, url=where, detail=response.to_dict()
                )
            if response.status_code == 401 and not refreshed:
                continue
            if not response.is_success:
                hint: dict[str, Any] | str = ""
                if response.status_code in (401, 403):
                    hint = scope_hint(scopes)
                elif response.status_code == 404:
                    hint = Note("lms.lti.platform.check_url").to_dict()
                raise LtiServiceError(
                    "lms.lti.platform.http_error",
                    what=what,
                    status=response.status_code,
                    body=_brief(response),
                    url=where,
                    hint=hint,
                )
            try:
                data = json.loads(response.content.decode("utf-8-sig"))
            except (UnicodeDecodeError, ValueError):
                raise LtiServiceError(
                    "lms.lti.platform.not_json",
                    what=what,
                    url=where,
                    kind=response.headers.get("Content-Type", ""),
                    body=_brief(response),
                ) from None
            return data, response
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, url: str, scopes: tuple[str, ...], accept: str, what: dict[str, Any]):
        """Every page of a paged container (``Link: <...>; rel="next"``), decoded. A next page
        on another origin (which would receive the token) or a loop is refused."""
        seen: set[str] = set()
        while url:
            if url in seen:
                raise LtiServiceError("lms.lti.platform.page_loop", what=what, url=no_query(url))
            if len(seen) >= MAX_PAGES:
                raise LtiServiceError("lms.lti.platform.too_many_pages", what=what, limit=MAX_PAGES)
            seen.add(url)
            data, response = self.service_json("GET", url, scopes, accept, what)
            yield data
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            following = urljoin(url, following)
            if not same_origin(url, following):
                raise LtiServiceError(
                    "lms.lti.platform.page_elsewhere", what=what, url=no_query(following)
                )
            url = following


class LtiServiceError(_PlatformError):
    """A platform service (line items, memberships) failed; the message says where and why."""


class _TooLarge(Exception):
    def __init__(self, note: Note):
        super().__init__(note.text("en"))
        self.note = note


MAX_PAGES = 10_000

# what to enable at the platform for a scope: catalogue ids (``lms.lti.scope.*``); the Canvas and
# Moodle setting names in them are the platforms' own labels, quoted in English in both languages
SCOPE_HINTS = {
    SCORE_SCOPE: "lms.lti.scope.score",
    LINEITEM_SCOPE: "lms.lti.scope.lineitem",
    NRPS_SCOPE: "lms.lti.scope.nrps",
}


def scope_hints(scopes) -> list[dict[str, Any]]:
    """What to enable at the platform for each of ``scopes``, as notes (one per known scope;
    ``lms.lti.scope.unknown`` when none is known)."""
    ids = list(dict.fromkeys(SCOPE_HINTS[s] for s in scopes if s in SCOPE_HINTS))
    return [Note(i).to_dict() for i in ids or ["lms.lti.scope.unknown"]]


def scope_hint(scopes) -> dict[str, Any]:
    """``scope_hints`` as one note, a parameter an error sentence renders in its language."""
    return joined(scope_hints(scopes))


def joined(notes: list[dict[str, Any]]) -> dict[str, Any] | str:
    """Several notes as one (``lms.lti.joined``: "first; second; ..."), each rendered in the
    language of the sentence that holds it; "" for none."""
    if not notes:
        return ""
    if len(notes) == 1:
        return notes[0]
    return Note("lms.lti.joined", {"first": notes[0], "rest": joined(notes[1:])}).to_dict()


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)


def no_query(url: str) -> str:
    """A URL as reports show it: without its query string (it may carry a signature)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))


def _brief(response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


# --- AGS line items: find the assignment's, or create it ----------------------------------------

LINEITEM_SCOPES = (LINEITEM_SCOPE, SCORE_SCOPE)  # one token for the line items and the scores


@dataclass
class LineItemChoice:
    """The line item an assignment's scores go to, and how it was found."""

    url: str
    how: str  # "configured" | "resource_id" | "label" | "created"
    item: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)  # Notes as data (lms.lti_*)


def list_line_items(client: AgsClient, container: str) -> list[dict[str, Any]]:
    """Every line item of the container (all pages; read once per client)."""
    if container in client._line_items:
        return client._line_items[container]
    items: list[dict[str, Any]] = []
    what = doing("line_items")
    for page in client.pages(container, LINEITEM_SCOPES, LINEITEMS_MEDIA_TYPE, what):
        if not isinstance(page, list):
            raise LtiServiceError(
                "lms.lti.platform.not_line_items",
                what=what,
                url=no_query(container),
                kind=json_kind(page),
            )
        for item in page:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise LtiServiceError(
                    "lms.lti.platform.not_a_line_item",
                    what=what,
                    url=no_query(container),
                    entry=json.dumps(item)[:200],
                )
            items.append(item)
    client._line_items[container] = items
    return items


def json_kind(value: Any) -> str:
    """The JSON type of a decoded value, as the JSON specification names it."""
    if value is None:
        return "null"
    for kind, types in (("boolean", bool), ("object", dict), ("array", list), ("string", str)):
        if isinstance(value, types):
            return kind
    return "number"


def pick_line_item(
    items: list[dict[str, Any]], resource_id: str, label: str, tag: str = ""
) -> tuple[dict[str, Any] | None, str]:
    """The one line item for ``resource_id`` (its ``resourceId``; with several, the one with
    ``tag``), else the one labelled ``label`` that belongs to no other resource; ``(None, how)``
    when there is none. Several candidates are an error, never a guess."""
    mine = [i for i in items if str(i.get("resourceId") or "") == resource_id]
    if len(mine) > 1 and tag:
        mine = [i for i in mine if i.get("tag") == tag] or mine
    if len(mine) == 1:
        return mine[0], "resource_id"
    if mine:
        raise _ambiguous(mine, "resource_id", repr(resource_id), resource_id)
    wanted = " ".join(label.split()).casefold()
    named = [
        i
        for i in items
        if wanted
        and not i.get("resourceId")
        and " ".join(str(i.get("label") or "").split()).casefold() == wanted
    ]
    if len(named) == 1:
        return named[0], "label"
    if named:
        raise _ambiguous(named, "label", repr(label), resource_id)
    return None, ""


def _ambiguous(
    items: list[dict[str, Any]], by: str, value: str, resource_id: str
) -> LtiServiceError:
    """Several line items fit (``by`` ``resource_id`` or ``label``, whose value is ``value``)."""
    return LtiServiceError(
        "lms.lti.line_item.ambiguous",
        count=len(items),
        by=by,
        value=value,
        ids=", ".join(i["id"] for i in items),
        resource_id=resource_id,
    )


def line_item_label(course: Course, assignment_id: str, settings: LtiSettings) -> str:
    """``labels[assignment]``, else the release notebook's first heading, else the id."""
    if settings.labels.get(assignment_id):
        return settings.labels[assignment_id]
    spec = course.assignment(assignment_id)
    path = course.release_dir / assignment_id / spec.notebook
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        cells = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            for line in source.splitlines():
                if line.startswith("# "):
                    title = " ".join(line[2:].replace("*", "").replace("`", "").split())
                    if title:
                        return title[:255]
            break
    return assignment_id


def resolve_line_item(
    client: AgsClient,
    settings: LtiSettings,
    assignment_id: str,
    label: str,
    points: float,
) -> LineItemChoice:
    """The assignment's line item in ``settings.lineitems_url``: found by ``resourceId`` (the
    assignment id) or ``label``, else created (``scoreMaximum`` = ``points``, ``label``,
    ``resourceId``, ``tag``) unless ``create_line_items`` is off."""
    container = settings.lineitems_url
    items = list_line_items(client, container)
    item, how = pick_line_item(items, assignment_id, label, settings.tag)
    if item is None:
        if not settings.create_line_items:
            raise LtiServiceError(
                "lms.lti.line_item.none",
                assignment=assignment_id,
                url=no_query(container),
                resource_id=repr(assignment_id),
                label=repr(label),
            )
        if not points > 0:
            raise LtiServiceError(
                "lms.lti.line_item.cannot_create", assignment=assignment_id, points=f"{points:g}"
            )
        body: dict[str, Any] = {
            "scoreMaximum": float(points),
            "label": label,
            "resourceId": assignment_id,
        }
        if settings.tag:
            body["tag"] = settings.tag
        what = doing("create_line_item", assignment=assignment_id)
        item, _ = client.service_json(
            "POST",
            container,
            LINEITEM_SCOPES,
            LINEITEM_MEDIA_TYPE,
            what,
            body=body,
            content_type=LINEITEM_MEDIA_TYPE,
        )
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise LtiServiceError("lms.lti.platform.created_without_id", what=what)
        items.append(item)
        how = "created"
    url = item["id"]
    if not same_origin(container, url):
        raise LtiServiceError(
            "lms.lti.platform.line_item_elsewhere",
            assignment=assignment_id,
            url=no_query(url),
            container=no_query(container),
        )
    found = "lms.lti_line_item_created" if how == "created" else f"lms.lti_line_item_by_{how}"
    shown = str(item.get("label") or label)
    notes = [Note(found, {"assignment": assignment_id, "label": shown, "url": url}).to_dict()]
    maximum = item.get("scoreMaximum")
    if how != "created" and isinstance(maximum, int | float) and abs(maximum - points) > 1e-9:
        params = {"assignment": assignment_id, "platform": fmt_points(maximum)}
        notes.append(
            Note("lms.lti_line_item_maximum", {**params, "points": fmt_points(points)}).to_dict()
        )
    return LineItemChoice(url, how, item, notes)


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
    warnings: list[str] = field(default_factory=list)  # in English; ``warning_notes``: as data
    fatal: str | None = None  # in English, for readers of the JSON; ``fatal_note``: as data
    token_requests: int = 0
    line_item_source: str | None = None  # configured | resource_id | label | created
    notes: list[dict[str, Any]] = field(default_factory=list)  # Notes as data (lms.lti_*)
    fatal_note: dict[str, Any] | None = None  # why nothing more is sent (an error's note)
    warning_notes: list[dict[str, Any]] = field(default_factory=list)  # lms.lti.key_readable...

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.accepted]

    def stop(self, note: Note) -> None:
        """Nothing more is sent, because of ``note``: kept as data and in English."""
        self.fatal_note, self.fatal = note.to_dict(), note.text("en")

    def warn(self, notes: list[dict[str, Any]]) -> None:
        self.warning_notes.extend(notes)
        self.warnings.extend(Note.from_dict(n).text("en") for n in notes)

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
    """Send every graded student's score for ``assignment_id`` to its line item: the one in
    ``line_items`` if given, else the one found (or created) in ``lineitems_url``."""
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
    if line_item:
        report.line_item_source = "configured"
    elif not settings.lineitems_url:
        report.stop(Note("lms.lti.line_item.not_configured", {"assignment": assignment_id}))
    client = None
    if report.fatal is None and not dry_run:
        if private_key is None:
            private_key, warnings = load_private_key(settings)
            report.warn(warnings)
        client = AgsClient(settings, private_key, http=http, clock=clock, sleep=sleep)
    try:
        if client is not None and not line_item and rows:
            from autograder.core import Assignment

            try:
                choice = resolve_line_item(
                    client,
                    settings,
                    assignment_id,
                    line_item_label(course, assignment_id, settings),
                    Assignment.from_course(course, assignment_id).max_score,
                )
            except (TokenError, LtiServiceError) as exc:
                report.stop(exc.note)
            else:
                line_item = report.line_item = choice.url
                report.line_item_source = choice.how
                report.notes.extend(choice.notes)
        for row in rows:
            person = people.get(row.student)
            user_id = person.lti_user_id if person else ""
            outcome = Outcome(row.student, user_id or None, line_item, False, False, None)
            report.outcomes.append(outcome)
            if report.fatal_note:
                outcome.fail("lms.lti.outcome.not_sent", reason=report.fatal_note)
                continue
            if not user_id:
                outcome.fail("lms.lti.outcome.no_user_id")
                continue
            comment = feedback_text(row, course.language) if settings.comment else None
            outcome.body = score_body(user_id, row.score, row.max_score, comment, settings)
            if dry_run:
                outcome.fail("lms.lti.outcome.dry_run", lookup=not line_item)
                continue
            try:
                outcome.accepted = client.post_score(line_item, outcome.body, outcome)
            except TokenError as exc:
                report.stop(exc.note)
                outcome.fail("lms.lti.outcome.not_sent", reason=exc.note.to_dict())
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
        else [
            a
            for a in sorted(course.assignments)
            if a in settings.line_items
            or (settings.lineitems_url and (course.results_dir / f"{a}.json").is_file())
        ]
    )
    if not aids:
        raise LmsError("lms.lti.no_line_items")
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
        for warning in r.warning_notes:
            log.warning("lti: %s", Note.from_dict(warning).text(course.language))
    if failed and not dry_run:
        total = sum(len(r.outcomes) for r in reports)
        reasons = _reasons([o for _, o in failed])
        raise LtiPassbackError(
            "lms.lti.passback.not_accepted",
            failed=len(failed),
            total=total,
            reasons=joined(reasons[:MAX_REASONS]),
            more=max(0, len(reasons) - MAX_REASONS),
            path=str(path),
        )
    return path


MAX_REASONS = 5  # distinct reasons named in LtiPassbackError's message (the report has all)


def _reasons(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """The distinct reasons of the scores not accepted, as notes, in the order of their English
    texts."""
    found: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        note = outcome.note or Note("lms.lti.outcome.not_delivered", {"detail": "?"}).to_dict()
        found.setdefault(Note.from_dict(note).text("en"), note)
    return [found[text] for text in sorted(found)]
