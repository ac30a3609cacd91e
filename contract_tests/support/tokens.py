"""Bad bearer tokens for the auth checks: tampered signatures, other keys, alg=none, malformed headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tamper_signature(token: str, index: int) -> str:
    """Change one character of the signature so the decoded bytes differ.

    The last character is never touched (its low bits are padding a decoder may ignore), and the
    replacement differs in the character's top bit, which always lands in a real signature byte.
    """
    head, payload, sig = token.split(".")
    if len(sig) < 2:
        return f"{head}.{payload}.{sig}A"
    i = index % (len(sig) - 1)
    c = sig[i]
    pos = B64URL.find(c)
    new = B64URL[(pos + 32) % 64] if pos >= 0 else "A"
    return f"{head}.{payload}.{sig[:i]}{new}{sig[i + 1 :]}"


def resign(token: str, key: bytes) -> str:
    """The same claims signed HS256 with another key."""
    _, payload, _ = token.split(".")
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(signature)}"


def unsigned(token: str) -> str:
    """The same claims with alg=none and no signature."""
    _, payload, _ = token.split(".")
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}, separators=(",", ":")).encode())
    return f"{head}.{payload}."


def is_jwt(token: str) -> bool:
    return token.count(".") == 2
