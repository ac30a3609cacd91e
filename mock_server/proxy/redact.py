"""Secrets out of everything the proxy shows or writes: learned literals, bearer tokens, JWTs, secret fields; curl lines."""

from __future__ import annotations

import collections
import json
import re
import shlex
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_MIN = 6  # the shortest value learned as a secret (shorter ones would mask ordinary words)
SECRET_FIELDS = frozenset({"client_secret", "code", "access_token", "refresh_token", "password", "token"})
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_NAMES = "|".join(sorted(SECRET_FIELDS))
_JSON_FIELD = re.compile(rf'("(?:{_NAMES})"\s*:\s*)"(?:[^"\\]|\\.)*"')
_JSON_CUT = re.compile(rf'("(?:{_NAMES})"\s*:\s*)"(?:[^"\\]|\\.)*\Z')  # a value cut off by a display limit
_PAIR_FIELD = re.compile(rf"(?<![A-Za-z0-9_])((?:{_NAMES})=)[^&\s'\"]*")
_SHOWN_HEADERS = ("content-type", "accept", "authorization")
CURL_BODY = 8000  # bytes of a body a curl line carries (each kept exchange holds one, with two bodies shown)


class Secrets:
    """Literal secrets seen in traffic (client secrets, codes, tokens), masked wherever they appear again."""

    def __init__(self, limit: int = 20000) -> None:
        self._lock = threading.Lock()
        # Bounded: a long session issues a code and a token per login; the oldest are forgotten first.
        self._values: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Values by their first _MIN characters: masking looks each position of a text up once, instead of
        # searching the text for every value (20 000 values made one 8000-character text cost 0.9 s).
        self._by_prefix: dict[str, set[str]] = {}
        self._limit = limit

    def learn(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= _MIN:
            with self._lock:
                self._values[value] = None
                self._values.move_to_end(value)
                self._by_prefix.setdefault(value[:_MIN], set()).add(value)
                while len(self._values) > self._limit:
                    old, _ = self._values.popitem(last=False)
                    same = self._by_prefix[old[:_MIN]]
                    same.discard(old)
                    if not same:
                        del self._by_prefix[old[:_MIN]]

    def _mask_learned(self, text: str) -> str:
        """Every learned value in `text` replaced by the mask, the longest one where several start at a place."""
        out: list[str] = []
        done = i = 0
        with self._lock:
            if not self._by_prefix:
                return text
            while i <= len(text) - _MIN:
                values = self._by_prefix.get(text[i : i + _MIN])
                hit = max((v for v in values if text.startswith(v, i)), key=len, default="") if values else ""
                if hit:
                    out += [text[done:i], MASK]
                    i = done = i + len(hit)
                else:
                    i += 1
        return "".join(out) + text[done:]

    def learn_fields(self, data: Any) -> None:
        """Learn the values of secret-named fields anywhere in a parsed body (iteratively: bodies may nest deep)."""
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in SECRET_FIELDS:
                        self.learn(value)
                    else:
                        stack.append(value)
            elif isinstance(node, list):
                stack.extend(node)

    def text(self, text: str) -> str:
        if not text:
            return text
        text = self._mask_learned(text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _JWT.sub(MASK, text)
        text = _JSON_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
        text = _JSON_CUT.sub(lambda m: f'{m.group(1)}"{MASK}', text)
        return _PAIR_FIELD.sub(lambda m: f"{m.group(1)}{MASK}", text)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            if name.lower() in ("authorization", "proxy-authorization", "cookie", "x-admin-token"):
                scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
                out[name] = f"{scheme} {MASK}".strip()
            else:
                out[name] = self.text(value)
        return out

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]  # userinfo is a credential
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))

    def body(self, raw: bytes, content_type: str, limit: int = 8000) -> str:
        """A body as text for display, secret fields masked (parsed as JSON or a form where it is one)."""
        text = raw[:limit].decode("utf-8", "replace")
        media = content_type.split(";")[0].strip().lower()
        if len(raw) > limit:  # shown cut short anyway: not worth parsing megabytes (the patterns still mask)
            return self.text(text)
        if "json" in media or text.lstrip()[:1] in ("{", "["):
            try:
                shown = json.dumps(_mask_fields(json.loads(raw.decode("utf-8"))), ensure_ascii=False)
            except (UnicodeDecodeError, ValueError, RecursionError):
                return self.text(text)
            return self.text(shown)[:limit]
        if media == "application/x-www-form-urlencoded":
            pairs = parse_qsl(text, keep_blank_values=True)
            return self.text(urlencode([(k, MASK if k in SECRET_FIELDS else v) for k, v in pairs], safe='*/:[]{},"'))
        return self.text(text)

    def curl(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> str:
        """A copy-pasteable curl line reproducing a request, every secret replaced by ***."""
        parts = ["curl", "-sS", "-X", method, shlex.quote(self.url(url))]
        content_type = ""
        for name, value in headers.items():
            if name.lower() not in _SHOWN_HEADERS:
                continue
            if name.lower() == "content-type":
                content_type = value
            parts += ["-H", shlex.quote(f"{name}: {self.headers({name: value})[name]}")]
        if raw:
            parts += ["--data-raw", shlex.quote(self.body(raw, content_type, limit=CURL_BODY))]
            if len(raw) > CURL_BODY:
                parts.append(f"# body cut at {CURL_BODY} of {len(raw)} bytes")
        return " ".join(parts)


def _mask_fields(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: (MASK if k in SECRET_FIELDS and isinstance(v, str) else _mask_fields(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_fields(v) for v in data]
    return data
