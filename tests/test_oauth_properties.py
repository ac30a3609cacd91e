"""Hypothesis properties of interface 1: codes are single-use and client-bound, tokens live exactly until exp."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from mock_server.domain.catalog import Catalog
from mock_server.domain.clock import VirtualClock
from mock_server.domain.errors import AuthError
from mock_server.domain.oauth import OAuth
from mock_server.fixtures import load_catalog
from tests.plugins.emulator import DOC_CLIENT, POC, TOKEN, Api
from tests.plugins.foundation import built_app, envelope_of

CATALOG: Catalog = load_catalog()
FCX = {"client_id": "14L85iVNDQahV0cyVv0KNQ==", "client_secret": "fzVo7zu0JKn0hGbO9CWLgcHPlL4W1Buj7xYpJbNi/0U="}
CLIENTS = [POC, DOC_CLIENT, FCX]
CODE_TTL, TOKEN_TTL = 600.0, 7200.0
T0 = 1_800_000_000.25  # a fractional start, so int() truncation of exp is exercised

clients = st.sampled_from(CLIENTS)


def make_oauth(clock: VirtualClock) -> OAuth:
    return OAuth(
        CATALOG,
        clock,
        code_ttl=CODE_TTL,
        token_ttl=TOKEN_TTL,
        secret="property-test-secret-0123456789abcdef",
        issuer="dpa-mock",
    )


@dataclass
class CodeModel:
    """Reference model of one issued code."""

    client_id: str
    scope: str
    expires_at: float
    used: bool = False
    successes: int = 0


class SingleUseCodes(RuleBasedStateMachine):
    """Authorize, redeem (by the right or a wrong client, with or without the secret) and move time, in any order."""

    codes = Bundle("codes")

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock(T0)
        self.oauth = make_oauth(self.clock)
        self.model: dict[str, CodeModel] = {}

    @rule(target=codes, app=clients, scope=st.sampled_from(["all", "default"]))
    def authorize(self, app: dict[str, str], scope: str) -> str:
        code = self.oauth.authorize(app["client_id"], "code", scope)
        assert code not in self.model
        self.model[code] = CodeModel(app["client_id"], scope, self.clock.now() + CODE_TTL)
        return code

    @rule(code=codes, app=clients, right_secret=st.booleans())
    def redeem(self, code: str, app: dict[str, str], right_secret: bool) -> None:
        entry = self.model[code]
        now = self.clock.now()
        secret = app["client_secret"] if right_secret else "wrong"
        try:
            token = self.oauth.token(code, app["client_id"], secret, "authorization_code")
        except AuthError as exc:
            outcome = exc.message
        else:
            outcome = "ok"
        if not right_secret:
            expected = {"client_secret does not match"}
        elif now > entry.expires_at + CODE_TTL:
            # Past the retention window the emulator may have forgotten the code: any refusal will do.
            expected = {"unknown", "another client", "already been used", "has expired"}
        elif app["client_id"] != entry.client_id:
            expected = {"another client"}
        elif entry.used:
            expected = {"already been used"}
        elif entry.expires_at <= now:
            expected = {"has expired"}
        else:
            expected = {"ok"}
        assert any(e in outcome for e in expected), (outcome, expected, entry, now)
        if outcome == "ok":
            entry.used = True
            entry.successes += 1
            principal = self.oauth.verify(token)
            assert (principal.client_id, principal.scope) == (entry.client_id, entry.scope)

    @rule(seconds=st.floats(min_value=0, max_value=700, allow_nan=False))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(app=clients)
    def redeem_unknown(self, app: dict[str, str]) -> None:
        with pytest.raises(AuthError, match="unknown"):
            self.oauth.token("NEVER-ISSUED", app["client_id"], app["client_secret"], "authorization_code")

    @invariant()
    def at_most_one_success_per_code(self) -> None:
        assert all(m.successes <= 1 for m in self.model.values())


TestSingleUseCodes = SingleUseCodes.TestCase
TestSingleUseCodes.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


@given(issuer=clients, redeemer=clients, scope=st.sampled_from(["all", "default"]))
def test_a_code_works_only_for_its_client(issuer: dict[str, str], redeemer: dict[str, str], scope: str) -> None:
    oauth = make_oauth(VirtualClock(T0))
    code = oauth.authorize(issuer["client_id"], "code", scope)
    if redeemer is not issuer:
        with pytest.raises(AuthError, match="another client"):
            oauth.token(code, redeemer["client_id"], redeemer["client_secret"], "authorization_code")
    token = oauth.token(code, issuer["client_id"], issuer["client_secret"], "authorization_code")
    assert oauth.verify(token).client_id == issuer["client_id"]


@given(
    start=st.floats(min_value=1.6e9, max_value=2.5e9, allow_nan=False),
    ttl=st.integers(min_value=1, max_value=10_000),
    elapsed=st.floats(min_value=0, max_value=20_000, allow_nan=False),
)
def test_tokens_verify_exactly_while_clock_is_before_exp(start: float, ttl: int, elapsed: float) -> None:
    clock = VirtualClock(start)
    oauth = OAuth(
        CATALOG,
        clock,
        code_ttl=CODE_TTL,
        token_ttl=ttl,
        secret="property-test-secret-0123456789abcdef",
        issuer="dpa-mock",
    )
    code = oauth.authorize(POC["client_id"], "code", "default")
    token = oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")
    exp = int(start + ttl)
    clock.advance(elapsed)
    if clock.now() < exp:
        assert oauth.verify(token).user_id == "U100000"
    else:
        with pytest.raises(AuthError, match="access token has expired"):
            oauth.verify(token)


@given(elapsed=st.floats(min_value=0, max_value=2 * CODE_TTL, allow_nan=False))
def test_codes_redeem_exactly_while_clock_is_before_code_ttl(elapsed: float) -> None:
    clock = VirtualClock(T0)
    oauth = make_oauth(clock)
    code = oauth.authorize(POC["client_id"], "code", "default")
    clock.advance(elapsed)
    if elapsed < CODE_TTL:
        assert oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")
    else:
        with pytest.raises(AuthError, match="expired"):
            oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")


def _race(redeem: Any, n: int) -> list[Any]:
    """Call redeem() from n threads released together; return what each got (a result or the exception)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = redeem()
        except Exception as exc:  # noqa: BLE001 - collected and judged by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


@settings(max_examples=15, deadline=None)
@given(n=st.integers(min_value=2, max_value=12))
def test_concurrent_redemption_of_one_code_yields_one_token(n: int) -> None:
    oauth = make_oauth(VirtualClock(T0))
    code = oauth.authorize(POC["client_id"], "code", "default")
    results = _race(lambda: oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code"), n)
    tokens = [r for r in results if isinstance(r, str)]
    assert len(tokens) == 1, results
    assert all(isinstance(r, AuthError) and "already been used" in r.message for r in results if r not in tokens)


def test_concurrent_redemption_through_the_http_layer_yields_one_token() -> None:
    with built_app() as app:
        api = Api(app.test_client(), app.extensions["dpa_platform"])
        for _ in range(5):
            code = api.code()
            body = {"code": code, **POC, "grant_type": "authorization_code"}
            # One test client per thread: each has its own cookie jar and environ builder.
            results = _race(lambda body=body: envelope_of(app.test_client().post(TOKEN, json=body)), 8)
            codes = sorted(r["code"] for r in results)
            assert codes == [200] + [403] * 7, results
            assert sum("already been used" in r["message"] for r in results) == 7


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scope=st.sampled_from(["all", "default"]), app=clients)
def test_http_codes_are_document_shaped_and_single_use(api: Api, scope: str, app: dict[str, str]) -> None:
    code = api.code(client_id=app["client_id"], scope=scope)
    assert len(code) == 48 and code == code.upper() and set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    first = envelope_of(api.token(code, app["client_id"], app["client_secret"]))
    second = envelope_of(api.token(code, app["client_id"], app["client_secret"]))
    assert first["code"] == 200 and second["code"] == 403 and "already been used" in second["message"]
