"""Every protected operation rejects missing, malformed, tampered and other-key tokens (non-200 code)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.auth import KitAuth
from contract_tests.support.api import PROTECTED, Api, Op, op_params
from contract_tests.support.envelope import expect_rejected, expect_success
from contract_tests.support.props import kit_settings
from contract_tests.support.tokens import is_jwt, resign, tamper_signature, unsigned

MALFORMED = st.one_of(
    st.sampled_from(
        [
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Token abc",
            "bearer",
            "Bearer a.b",
            "Bearer ...",
            "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        ]
    ),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=60).map(
        lambda t: f"Bearer {t}"
    ),
)


def _judge(api: Api, op: Op, authorization: str | None, what: str) -> None:
    req = api.valid_request(op)
    response = api.send_req(req, token=authorization)
    expect_rejected(response, f"{op.id} with {what}", expected=403, topic="oauth.bad-token.code", exact=True)


@pytest.mark.parametrize("op", op_params(PROTECTED))
def test_valid_token_accepted(op: Op, kit_api: Api) -> None:
    """The baseline: the same request with the kit's token succeeds (so the rejections below are about auth)."""
    expect_success(kit_api.send_req(kit_api.valid_request(op)), f"{op.id} with a valid token")


@pytest.mark.parametrize("op", op_params(PROTECTED))
def test_missing_token_rejected(op: Op, kit_api: Api) -> None:
    _judge(kit_api, op, None, "no Authorization header")


@pytest.mark.parametrize("op", op_params(PROTECTED))
def test_malformed_token_rejected(op: Op, kit_api: Api) -> None:
    @kit_settings(max_examples=6)
    @given(header=MALFORMED)
    def check(header: str) -> None:
        _judge(kit_api, op, header, f"a malformed Authorization header {header[:20]!r}")

    check()


@pytest.mark.parametrize("op", op_params(PROTECTED))
def test_tampered_token_rejected(op: Op, kit_api: Api, kit_auth: KitAuth) -> None:
    token = kit_auth.token()
    if not is_jwt(token):
        pytest.skip("the access token is not a JWT: no signature to tamper with")

    # Only the position is drawn, so a falsifying example never prints the token.
    @kit_settings(max_examples=6)
    @given(index=st.integers(0, 10_000))
    def check(index: int) -> None:
        _judge(kit_api, op, f"Bearer {tamper_signature(token, index)}", f"one signature character changed (#{index})")

    check()


@pytest.mark.parametrize("op", op_params(PROTECTED))
def test_other_key_token_rejected(op: Op, kit_api: Api, kit_auth: KitAuth) -> None:
    token = kit_auth.token()
    if not is_jwt(token):
        pytest.skip("the access token is not a JWT: cannot re-sign its claims")

    @kit_settings(max_examples=4)
    @given(key=st.binary(min_size=16, max_size=48))
    def check(key: bytes) -> None:
        _judge(kit_api, op, f"Bearer {resign(token, key)}", "its claims signed with another key")

    check()
    _judge(kit_api, op, f"Bearer {unsigned(token)}", "its claims unsigned (alg none)")
