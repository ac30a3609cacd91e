"""Interface 1: authorization codes (single-use, bound to client and scope) and HS256 access tokens."""

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from mock_server.domain.catalog import App, Catalog
from mock_server.domain.clock import Clock
from mock_server.domain.errors import BAD_TOKEN, CODE_REUSE, AuthError, UserNotFound, ValidationError
from mock_server.domain.lock import StateLock

SCOPES = ("all", "default")


@dataclass(frozen=True)
class Principal:
    """Who a valid bearer token speaks for."""

    client_id: str
    user_id: str
    scope: str


@dataclass
class _Code:
    client_id: str
    scope: str
    expires_at: float
    used: bool = False


ALPHABETS = {
    "A-Z0-9": string.ascii_uppercase + string.digits,
    "A-Z0-9_-": string.ascii_uppercase + string.digits + "_-",
}
DEFAULT_CLAIMS = ("aud", "exp", "iss", "jti", "orig_iat", "scope", "sub")


def new_code(length: int = 48, alphabet: str = "A-Z0-9") -> str:
    if length == 48 and alphabet == "A-Z0-9":
        # Shaped like the document's example: uppercase base64url of a UUID string, padding stripped.
        raw = base64.urlsafe_b64encode(str(uuid.uuid4()).encode()).decode()
        return raw.rstrip("=").upper()
    chars = ALPHABETS[alphabet]
    return "".join(secrets.choice(chars) for _ in range(length))


class OAuth:
    """Issues codes and tokens for the fixture apps, and verifies bearer tokens, all on the injected clock.

    The component of kind `code` (tokens are stateless: only codes are stored).
    """

    kind = "code"

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        *,
        code_ttl: float,
        token_ttl: float,
        secret: str,
        issuer: str,
        on_code: Callable[[str, dict[str, Any] | None], None] | None = None,
        lock: StateLock | None = None,
        code_length: int = 48,
        code_alphabet: str = "A-Z0-9",
        claims: tuple[str, ...] = DEFAULT_CLAIMS,
        audience: str | None = None,
    ) -> None:
        self._on_code = on_code  # a durable store hears of each code's changes (None: forgotten)
        self._catalog, self._clock = catalog, clock
        self._code_ttl, self._token_ttl = code_ttl, token_ttl
        self._secret, self._issuer = secret, issuer
        self._code_length, self._code_alphabet = code_length, code_alphabet
        # Which claims a token carries (setting token_claims) and its `aud` (token_audience, else the client).
        self._claims, self._audience = frozenset(claims), audience
        self._client_claim = "client_id" if "client_id" in self._claims else "aud"
        self._user_claim = "sub" if "sub" in self._claims else "user_id"
        # What verify() reads: a token without one of these is refused as lacking it, never a KeyError.
        self._required = sorted({"exp", self._client_claim, self._user_claim} | (self._claims & {"aud", "scope"}))
        self._codes: dict[str, _Code] = {}
        # The platform's lock when state is shared: checking and consuming a code is then one transaction.
        self._lock: StateLock | threading.Lock = lock if lock is not None else threading.Lock()
        self._decoded = functools.lru_cache(maxsize=4096)(self._decode)

    def reset(self) -> None:
        with self._lock:
            self._codes.clear()

    def _app(self, client_id: str) -> App:
        app = self._catalog.apps.get(client_id)
        if app is None and " " in client_id:
            # A '+' of a base64 client_id sent unencoded in a query string arrives as a space.
            app = self._catalog.apps.get(client_id.replace(" ", "+"))
        if app is None:
            raise AuthError(f"unknown client_id {client_id!r}")
        if app.valid_until <= self._clock.now():
            raise AuthError(f"app {app.name!r} (client_id {app.client_id!r}) has expired")
        return app

    def authorize(self, client_id: str, response_type: str, scope: str) -> str:
        if response_type != "code":
            raise ValidationError(f"response_type: unsupported value {response_type!r}, expected 'code'")
        if scope not in SCOPES:
            raise ValidationError(f"scope: unsupported value {scope!r}, expected 'all' or 'default'")
        app = self._app(client_id)
        client_id = app.client_id
        if scope not in app.scopes:
            raise AuthError(f"scope {scope!r} is not granted to app {app.name!r}")
        now = self._clock.now()
        code = new_code(self._code_length, self._code_alphabet)
        with self._lock:
            self._prune(now)
            self._codes[code] = _Code(client_id, scope, now + self._code_ttl)
            self._saved(code)
        return code

    def _saved(self, code: str) -> None:
        if self._on_code is not None:
            entry = self._codes.get(code)
            self._on_code(code, None if entry is None else dataclasses.asdict(entry))

    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            # In expiry order, as issued: pruning reads the stale codes from the front.
            self._codes = {
                code: _Code(**record)
                for code, record in sorted(records.items(), key=lambda item: item[1]["expires_at"])
            }

    def apply(self, code: str, record: dict[str, Any] | None) -> None:
        """A code another process issued, consumed or pruned."""
        if record is None:
            self._codes.pop(code, None)
        else:
            self._codes[code] = _Code(**record)

    def _prune(self, now: float) -> None:
        # Used and expired codes are kept one extra TTL so a replay still gets "already used"/"expired".
        # Codes are kept in the order they expire (one TTL for all, time never goes back), so the stale ones
        # are at the front: looking further was a scan of every code on every authorize.
        stale = [
            c
            for c, _ in itertools.takewhile(lambda item: item[1].expires_at + self._code_ttl < now, self._codes.items())
        ]
        for c in stale:
            del self._codes[c]
            self._saved(c)

    def token(self, code: str, client_id: str, client_secret: str, grant_type: str, user_id: str | None = None) -> str:
        if grant_type != "authorization_code":
            raise ValidationError(f"grant_type: unsupported value {grant_type!r}, expected 'authorization_code'")
        app = self._app(client_id)
        client_id = app.client_id
        if client_secret != app.client_secret:
            raise AuthError(f"client_secret does not match client_id {client_id!r}")
        user = app.user(user_id)
        if user is None:
            raise UserNotFound(f"user {user_id!r} does not exist for app {app.name!r}")
        now = self._clock.now()
        with self._lock:
            entry = self._codes.get(code)
            if entry is None:
                raise AuthError("authorization code is unknown")
            if entry.client_id != client_id:
                raise AuthError("authorization code was issued to another client")
            if entry.used:
                raise AuthError("authorization code has already been used", kind=CODE_REUSE)
            if entry.expires_at <= now:
                raise AuthError("authorization code has expired")
            entry.used = True  # checked and consumed under one lock: single use under any interleaving
            self._saved(code)
        claims = {
            "aud": self._audience or client_id,
            "exp": int(now + self._token_ttl),
            "iss": self._issuer,
            "jti": uuid.uuid4().hex,
            "orig_iat": int(now),
            "scope": entry.scope,
            "sub": user.id,
            "client_id": client_id,
            "user_id": user.id,
            "iat": int(now),
        }
        return jwt.encode({k: v for k, v in claims.items() if k in self._claims}, self._secret, algorithm="HS256")

    def _decode(self, token: str) -> dict[str, Any]:
        # exp is checked by verify() against the injected clock, not PyJWT's wall clock.
        return jwt.decode(
            token,
            self._secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "require": self._required},
        )

    def verify(self, token: str) -> Principal:
        try:
            # Signature checks dominate a request's cost; a token that verified once is remembered
            # (expiry, issuer, audience and app validity are still checked on every call).
            claims = self._decoded(token)
        except jwt.InvalidSignatureError:
            raise AuthError("access token signature is invalid", kind=BAD_TOKEN) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"access token lacks the {exc.claim!r} claim", kind=BAD_TOKEN) from None
        except jwt.PyJWTError:
            raise AuthError("access token is malformed", kind=BAD_TOKEN) from None
        if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= self._clock.now():
            raise AuthError("access token has expired", kind=BAD_TOKEN)
        if "iss" in self._claims and claims.get("iss") != self._issuer:
            raise AuthError("access token was issued by another issuer", kind=BAD_TOKEN)
        if self._audience is not None and claims.get("aud") != self._audience:
            raise AuthError("access token audience is not this platform", kind=BAD_TOKEN)
        client = claims[self._client_claim]
        if not isinstance(client, str) or client not in self._catalog.apps:
            raise AuthError("access token audience is not a known app", kind=BAD_TOKEN)
        app = self._app(client)
        user = claims[self._user_claim]
        if app.user(str(user)) is None:
            raise UserNotFound(f"user {user!r} does not exist")
        # Without a scope claim the token speaks with the widest scope the app was granted.
        scope = (
            claims["scope"]
            if "scope" in self._claims
            else ("all" if "all" in app.scopes or not app.scopes else app.scopes[0])
        )
        return Principal(client, str(user), str(scope))
