"""Interface 7 through the proxy: callback URLs rewritten to relay addresses, and each callback judged in context."""

from __future__ import annotations

import collections
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

from dpa_client.document import STATUSES
from mock_server.proxy.forward import Destination, same_address
from mock_server.proxy.model import Finding, collector

RELAY_PREFIX = "/__proxy/callback/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
TERMINAL = frozenset({"SUCCESS", "FAIL"})
# Progress rank: RUNNING and PENDING may alternate; nothing leaves SUCCESS/FAIL; nothing goes back.
_RANK = {"DEFAULT": 0, "RUNNING": 1, "PENDING": 1, "SUCCESS": 2, "FAIL": 2}
MAX_ATTEMPTS = 4  # 1 + "回调重试 3 次" (D11)
_JSON_URL = re.compile(rb'("callbackUrl"\s*:\s*)("(?:[^"\\]|\\.)*")')
# Relays live in memory for the proxy's lifetime: a URL longer than any real receiver's is not kept.
MAX_URL = 2048


@dataclass
class Relay:
    """Where the callbacks of one execution or scene really go."""

    url: str
    plan_id: str
    origin: str  # the operation that gave the URL
    exchange: int = 0


class Relays:
    """Relay tokens → original callback URLs (kept in memory: a restarted proxy forgets them)."""

    def __init__(self, public_base: str, limit: int = 20_000, own: tuple[str, int] | None = None) -> None:
        self.public_base = public_base.rstrip("/")
        public = Destination.parse(self.public_base)
        # The proxy's namespace as requests reach it: `/__proxy/…`, and under the public URL's path too when a
        # reverse proxy in front passes that path on instead of stripping it.
        self._namespaces = tuple(dict.fromkeys(("/__proxy", f"{public.base_path}/__proxy")))
        # The proxy's own addresses: where it listens and where the target reaches it.
        self._own = [(public.host, public.port), *([own] if own else [])]
        self._lock = threading.Lock()
        self._relays: collections.OrderedDict[str, Relay] = collections.OrderedDict()
        self._limit = limit

    def register(self, relay: Relay) -> str:
        token = secrets.token_urlsafe(18)  # unguessable: the relay POSTs only where a client pointed it
        with self._lock:
            self._relays[token] = relay
            while len(self._relays) > self._limit:
                self._relays.popitem(last=False)
        return f"{self.public_base}{RELAY_PREFIX}{token}"

    def owns(self, path: str) -> bool:
        """Whether `path` is the proxy's own (a relay address or another path it never forwards)."""
        return any(path == ns or path.startswith(ns + "/") for ns in self._namespaces)

    def token(self, path: str) -> str:
        """The relay token a path of the proxy's namespace carries, or ""."""
        for ns in self._namespaces:
            rest = path.removeprefix(ns + "/callback/") if path.startswith(ns + "/callback/") else ""
            if _TOKEN.fullmatch(rest):
                return rest
        return ""

    def url_problem(self, url: str) -> str | None:
        """Why callbacks to `url` cannot be relayed (the URL is then left as the client sent it), or None."""
        if len(url) > MAX_URL:
            return f"callbackUrl is {len(url)} characters long (the proxy relays URLs up to {MAX_URL}); left as sent"
        try:
            dest = Destination.parse(url)
        except ValueError:
            scheme = urlsplit(url).scheme
            what = f"a {scheme}: URL" if scheme else "not an absolute URL"
            return f"callbackUrl {url[:100]!r} is {what}; the platform POSTs callbacks over HTTP(S). Left as sent"
        if any(same_address(dest.host, dest.port, host, port) for host, port in self._own):
            return (
                "callbackUrl points at this proxy itself; callbacks would come back through it as ordinary "
                "requests. Left as sent (give your receiver's own URL)"
            )
        return None

    def get(self, token: str) -> Relay | None:
        with self._lock:
            relay = self._relays.get(token)
            if relay is not None:
                self._relays.move_to_end(token)  # a scene calling back every day stays; relays never used go first
            return relay

    def rewrite(self, op_id: str, media: str, raw: bytes, body: Any, plan_id: str) -> tuple[bytes, Relay | None]:
        """The request body with its callbackUrl replaced by a relay address; every other byte unchanged."""
        url = body.get("callbackUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.strip() or self.url_problem(url):
            return raw, None
        relay = Relay(url, plan_id, op_id)
        if media == "application/x-www-form-urlencoded":
            pairs = raw.split(b"&")
            indexes = [
                i for i, p in enumerate(pairs) if unquote_plus(p.split(b"=", 1)[0].decode("latin1")) == "callbackUrl"
            ]
            if len(indexes) != 1:
                return raw, None
            pairs[indexes[0]] = b"callbackUrl=" + quote(self.register(relay), safe="").encode()
            return b"&".join(pairs), relay
        if "json" in media or media == "":
            hits = [m for m in _JSON_URL.finditer(raw) if _decoded(m.group(2)) == url]
            if len(hits) != 1 or len(_JSON_URL.findall(raw)) != 1:
                return raw, None  # a second callbackUrl key somewhere: leave the body alone rather than guess
            m = hits[0]
            new = json.dumps(self.register(relay)).encode()
            return raw[: m.start(2)] + new + raw[m.end(2) :], relay
        return raw, None


def _decoded(token: bytes) -> Any:
    try:
        return json.loads(token.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


@dataclass
class _Instance:
    statuses: list[str] = field(default_factory=list)  # distinct statuses in order
    attempts: int = 0  # of the last status
    acked: bool = False  # the last status was acknowledged


class CallbackJudge:
    """Per-instance memory of callbacks: payload, lifecycle order, acknowledgement and retry count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: collections.OrderedDict[str, _Instance] = collections.OrderedDict()

    def judge(
        self,
        relay: Relay | None,
        headers: dict[str, str],
        raw: bytes,
        answer_status: int | None,
        answer_body: bytes,
        error: str,
    ) -> tuple[list[Finding], dict[str, Any] | None]:
        """A whole callback exchange: `arrive` then `answered`."""
        found, payload = self.arrive(relay, headers, raw)
        return found + self.answered(payload, answer_status, answer_body, error), payload

    def arrive(
        self, relay: Relay | None, headers: dict[str, str], raw: bytes
    ) -> tuple[list[Finding], dict[str, Any] | None]:
        """The platform's side, judged when the callback arrives (before the receiver answers: a platform that
        timed out may retry while an earlier attempt is still waiting). The payload, if it is a valid one."""
        out: list[Finding] = []
        add = collector(out, interface="7")

        media = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != "application/json":
            # An observation, as in the kit: the payload is judged as JSON whatever the header says.
            add(
                "observation",
                "server",
                "callback-content-type",
                f"callback sent with Content-Type {media or '(none)'!r}; the document's is application/json",
            )
        payload = _decoded(raw)
        problems = []
        if not isinstance(payload, dict):
            problems.append("payload is not a JSON object")
        else:
            for key in ("planInstanceId", "processPlanId", "status"):
                if key not in payload:
                    problems.append(f"{key} is missing")
                elif not isinstance(payload[key], str):
                    problems.append(f"{key} is {type(payload[key]).__name__}, not a string")
            if isinstance(payload.get("status"), str) and payload["status"] not in STATUSES:
                problems.append(f"status {payload['status']!r} is not one of {', '.join(STATUSES)}")
        if problems or not isinstance(payload, dict):
            add("violation", "server", "callback-payload", "; ".join(problems))
            return out, None
        if relay is not None and payload["processPlanId"] != relay.plan_id:
            add(
                "violation",
                "server",
                "callback-payload",
                f"processPlanId {payload['processPlanId']!r}, but the callback URL was given for plan {relay.plan_id!r}",
            )
        self._judge_sequence(payload["planInstanceId"], payload["status"], add)
        return out, payload

    def answered(self, payload: dict[str, Any] | None, status: int | None, body: bytes, error: str) -> list[Finding]:
        """The receiver's side, and whether the status is now acknowledged."""
        out: list[Finding] = []
        add = collector(out, interface="7")

        if self._judge_ack(status, body, error, add) and payload is not None:
            with self._lock:
                state = self._instances.get(payload["planInstanceId"])
                if state is not None and state.statuses and state.statuses[-1] == payload["status"]:
                    state.acked = True
        return out

    @staticmethod
    def _judge_ack(status: int | None, body: bytes, error: str, add: Any) -> bool:
        text = body.decode("utf-8", "replace").strip()
        if error:
            add("observation", "client", "callback-receiver", f"the receiver did not answer: {error}")
            return False
        if status is not None and 200 <= status < 300 and text == "SUCCESS":
            return True
        if text.upper() in ("SUCCESS", "SUCESS") and text != "SUCCESS":
            add(
                "violation",
                "client",
                "callback-ack",
                f"the receiver answered {text!r}; only the exact body SUCCESS acknowledges (the platform retries)",
            )
        elif text == "SUCCESS":
            add(
                "observation",
                "client",
                "callback-ack",
                f"SUCCESS with HTTP {status}: the document does not say whether a non-2xx status acknowledges",
            )
        else:
            add(
                "observation",
                "client",
                "callback-ack",
                f"not acknowledged (HTTP {status}, body {text[:60]!r}): the platform should retry",
            )
        return False

    def _judge_sequence(self, instance_id: str, status: str, add: Any) -> None:
        with self._lock:
            state = self._instances.get(instance_id)
            if state is None:
                state = self._instances[instance_id] = _Instance()
                while len(self._instances) > 50_000:
                    self._instances.popitem(last=False)
            if state.statuses and state.statuses[-1] == status:
                state.attempts += 1
                if state.acked:
                    add(
                        "observation",
                        "server",
                        "callback-retries",
                        f"{instance_id} {status} sent again after it was acknowledged (at-least-once delivery)",
                    )
                elif state.attempts > MAX_ATTEMPTS:
                    add(
                        "violation",
                        "server",
                        "callback-retries",
                        f"{instance_id} {status}: attempt {state.attempts}; the document allows 1 + 3 retries",
                    )
                return
            if state.statuses and not state.acked:
                previous, n = state.statuses[-1], state.attempts
                if n == 1:
                    add(
                        "violation",
                        "server",
                        "callback-retries",
                        f"{instance_id} {previous} was not acknowledged and never retried (the document: 回调重试 3 次)",
                    )
                elif n == 2:
                    add(
                        "violation",
                        "server",
                        "callback-retries",
                        f"{instance_id} {previous} was given up after 2 attempts (the document: 回调重试 3 次)",
                    )
                elif n == 3:
                    add(
                        "observation",
                        "server",
                        "callback-retries",
                        f"{instance_id} {previous}: 3 attempts in all before moving on (4 = 1 + 3 retries is the "
                        "other reading of 回调重试 3 次)",
                    )
            if state.statuses:
                previous = state.statuses[-1]
                if previous in TERMINAL:
                    add(
                        "violation",
                        "server",
                        "callback-order",
                        f"{instance_id}: {previous} -> {status}: a terminal status was left",
                    )
                elif _RANK[status] < _RANK[previous]:
                    add(
                        "violation",
                        "server",
                        "callback-order",
                        f"{instance_id}: {previous} -> {status}: the run went backwards",
                    )
            state.statuses.append(status)
            state.attempts, state.acked = 1, False

    def sequences(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v.statuses) for k, v in self._instances.items()}
