"""Logging in for the kit: fresh codes, tokens read leniently (so one broken field does not stop the run)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from contract_tests.plugins.target import Target, target
from contract_tests.support.config import DOC_CLIENT
from contract_tests.support.kit import KIT
from contract_tests.support.redact import SECRETS
from dpa_client import PATHS, DpaClient
from dpa_client.client import jwt_expiry


class KitSetupError(Exception):
    """The kit could not obtain what a test needs from the target (e.g. no token)."""


_QUIET = threading.local()  # set while the kit itself re-logs in or re-sends: no nested retry


def _code(response: requests.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _data(response: requests.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) else None


class KitAuth:
    """Codes and tokens for the configured app; the token is reused until it expires or is rejected."""

    def __init__(self, tgt: Target) -> None:
        cfg = KIT.config
        assert cfg is not None
        self.target, self.cfg = tgt, cfg
        self._token: str | None = None
        self.issued: set[str] = set()  # every token the kit obtained, to tell them from generated ones
        # An opaque token's lifetime is unknown: after the target's clock moved a while, it is checked once
        # (a read-only listPlans) before its next use, and replaced when refused.
        self._checked_at: float | None = None  # target time the cached opaque token was last known good
        self._suspect = False
        self._last_now: float | None = None  # the target's time after the kit last moved or read its clock
        self._lock = threading.Lock()
        self._logins = 0  # tokens obtained so far; `_token_login` is the count when the cached one came
        self._token_login = 0
        for secret in cfg.secrets():
            SECRETS.add(secret)
        # A platform may keep one session per user: a newer login (test_oauth, the client tests) then revokes
        # the cached token (code 403). Every request carrying the cached token is re-sent once after a new login.
        hooks = getattr(tgt.session, "hooks", None)  # a requests.Session (test doubles may have none)
        if isinstance(hooks, dict):
            hooks.setdefault("response", []).append(self._retry_revoked)

    # -- raw steps (tests judge these responses themselves) ----------------------------------------
    def authorize_response(
        self, client_id: str | None = None, scope: str | None = None, **params: Any
    ) -> requests.Response:
        query = {
            "client_id": client_id or self.cfg.client_id,
            "response_type": "code",
            "scope": scope or self.cfg.scope,
            **params,
        }
        query = {k: v for k, v in query.items() if v is not None}
        return self.target.session.get(self.target.base_url + PATHS["authorize"], params=query, timeout=30)

    def token_response(
        self, code: str, client_id: str | None = None, client_secret: str | None = None, **extra: Any
    ) -> requests.Response:
        body = {
            "code": code,
            "client_id": client_id or self.cfg.client_id,
            "client_secret": client_secret if client_secret is not None else self.cfg.client_secret,
            "grant_type": "authorization_code",
            **extra,
        }
        if self.cfg.user_id is not None and "user_id" not in extra:
            body["user_id"] = self.cfg.user_id
        response = self.target.session.post(self.target.base_url + PATHS["getToken"], json=body, timeout=30)
        token = _data(response)
        if isinstance(token, dict):
            SECRETS.add(token.get("access_token"))
        return response

    def code(self, client_id: str | None = None, scope: str | None = None) -> str:
        response = self.authorize_response(client_id, scope)
        data = _data(response)
        code = data.get("code") if isinstance(data, dict) else None
        if not isinstance(code, str) or not code:
            raise KitSetupError(f"authorize gave no data.code (HTTP {response.status_code})")
        SECRETS.add(code)
        return code

    def new_token(self, client_id: str | None = None, client_secret: str | None = None) -> str:
        response = self.token_response(self.code(client_id), client_id, client_secret)
        data = _data(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise KitSetupError(f"token gave no data.access_token (HTTP {response.status_code})")
        self.issued.add(token)
        self._logins += 1
        return token

    # -- the session token ---------------------------------------------------------------------------
    def token(self) -> str:
        with self._lock:
            if self._token is not None and self._suspect:
                self._suspect = False
                if not self._still_accepted(self._token):
                    self._token = None
            if self._token is None:
                _QUIET.active = True
                try:
                    self._token = self.new_token()
                finally:
                    _QUIET.active = False
                self._token_login = self._logins
                self._checked_at = self._last_now  # the target's time at issue, as far as the kit knows it
            return self._token

    def _retry_revoked(self, response: requests.Response, **kwargs: Any) -> requests.Response | None:
        """requests response hook: a code-403 answer to the kit's cached token gets one new login and one
        re-send (as dpa_client does); what the test judges is the re-sent request's answer."""
        request = response.request
        if getattr(_QUIET, "active", False) or request is None or self._token is None:
            return None
        scheme, _, token = str(request.headers.get("Authorization") or "").partition(" ")
        if token != self._token or _code(response) != 403:
            return None
        with self._lock:
            if self._token != token:  # another thread already replaced it
                newer_login = False
            else:
                newer_login = self._logins > self._token_login
                self._token = None
        if newer_login:
            KIT.observe("oauth.token-revoked-by-new-login", "yes")
        fresh = self.token()
        again = request.copy()
        again.headers["Authorization"] = f"{scheme} {fresh}"
        _QUIET.active = True
        try:
            return self.target.session.send(again, **kwargs)
        finally:
            _QUIET.active = False

    def _still_accepted(self, token: str) -> bool:
        _QUIET.active = True
        try:
            response = self.target.session.get(
                self.target.base_url + PATHS["listPlans"], headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
        finally:
            _QUIET.active = False
        try:
            body = response.json()
        except ValueError:
            return True  # not an answer about the token: keep it, the tests judge the target
        return not (isinstance(body, dict) and body.get("code") == 403)

    def current(self, authorization: str) -> str:
        """An Authorization value with a stale kit token swapped for the current one (others unchanged)."""
        scheme, _, token = authorization.partition(" ")
        if token in self.issued and token != self._token:
            return f"{scheme} {self.token()}"
        return authorization

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def forget_if_expired(self, now: float) -> None:
        """Called after the target's clock moved: drop a token whose `exp` has passed."""
        with self._lock:
            previous, self._last_now = self._last_now, now
            if self._token is None:
                return
            exp = jwt_expiry(self._token)
            if exp is None:  # opaque: check it again once the clock moved a minute or more since it was good
                base = self._checked_at if self._checked_at is not None else previous
                if base is None or now - base >= OPAQUE_RECHECK_SECONDS:
                    self._suspect, self._checked_at = True, now
            elif exp <= now:
                self._token = None


OPAQUE_RECHECK_SECONDS = 60.0  # no token lives shorter; rechecking on every small step would double requests
_AUTH: KitAuth | None = None


def auth() -> KitAuth:
    global _AUTH
    if _AUTH is None:
        _AUTH = KitAuth(target())
    return _AUTH


@pytest.fixture(scope="session")
def kit_auth(kit_target: Target) -> KitAuth:
    return auth()


@pytest.fixture
def kit_client(kit_target: Target, kit_auth: KitAuth) -> DpaClient:
    """A DpaClient for the configured app over the kit's guarded session, starting with the kit's token."""
    cfg = kit_auth.cfg
    client = DpaClient(
        kit_target.base_url,
        cfg.client_id,
        cfg.client_secret,
        user_id=cfg.user_id,
        scope=cfg.scope,
        session=kit_target.session,
        verify=cfg.verify,
        timeout=30,
    )
    client.use_token(kit_auth.token())
    return client


@pytest.fixture
def kit_other_app(kit_target: Target, kit_auth: KitAuth) -> tuple[str, str]:
    """A second application's credentials: configured, or the emulator's demo app when the target is dpa-mock."""
    cfg = kit_auth.cfg
    if cfg.other_client_id and cfg.other_client_secret:
        other = (cfg.other_client_id, cfg.other_client_secret)
    elif kit_target.admin:
        other = DOC_CLIENT
    else:
        pytest.skip("needs a second application: give --other-client-id and --other-client-secret")
    if other[0] == cfg.client_id:
        pytest.skip("the second application is the same as the first")
    SECRETS.add(other[1])
    return other
