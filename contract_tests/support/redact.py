"""Keep secrets out of every line the kit prints: literal secrets, bearer tokens, JWTs, codes; curl lines."""

from __future__ import annotations

import json
import re
import shlex
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_FIELDS = ("client_secret", "access_token", "refresh_token", "code", "password", "token")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_FIELDS = "|".join(SECRET_FIELDS)
_JSON_FIELD = re.compile(r"""(["'](?:""" + _FIELDS + r""")["']\s*:\s*)(["'])(?:(?!\2).)*\2""")
_QUERY_FIELD = re.compile(r"(?<=[?&])(" + _FIELDS + r")=([^&\s'\"]+)")
_AUTH_HEADER = re.compile(r"""(?i)(["']?authorization["']?\s*[:=]\s*["']?)(?!\*\*\*)[^"'\n,}]+""")


class Secrets:
    """Literal values to mask wherever they appear (client secrets, issued codes and tokens)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= 6:
            with self._lock:
                self._values.add(value)

    def redact(self, text: str) -> str:
        if not text:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _JWT.sub(MASK, text)
        text = _JSON_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
        text = _QUERY_FIELD.sub(lambda m: f"{m.group(1)}={MASK}", text)
        return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)


SECRETS = Secrets()


def redact(text: str) -> str:
    return SECRETS.redact(text)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]  # userinfo would be a credential
    query = urlencode(
        [(k, MASK if k in SECRET_FIELDS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*/=+"
    )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_url(url: str) -> str:
    return _redact_url(url)


def _redact_body(body: bytes | str | None, content_type: str) -> str | None:
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return redact(text)
        if isinstance(data, dict):
            data = {k: (MASK if k in SECRET_FIELDS and isinstance(v, str) else v) for k, v in data.items()}
        return redact(json.dumps(data, ensure_ascii=False))
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(text, keep_blank_values=True)
        return redact(urlencode([(k, MASK if k in SECRET_FIELDS else v) for k, v in pairs], safe="*"))
    return redact(text[:4000])


def curl_line(method: str, url: str, headers: dict[str, str], body: bytes | str | None) -> str:
    """A copy-pasteable curl command for a request, with every secret replaced by ***."""
    parts = ["curl", "-X", method, shlex.quote(_redact_url(url))]
    content_type = ""
    for name, value in headers.items():
        lower = name.lower()
        if lower == "content-type":
            content_type = value
        if lower not in ("authorization", "content-type", "accept", "x-admin-token"):
            continue
        if lower in ("authorization", "x-admin-token"):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            value = f"{scheme} {MASK}".strip()
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    data = _redact_body(body, content_type.lower())
    if data:
        parts += ["--data-raw", shlex.quote(data)]
    return " ".join(parts)
