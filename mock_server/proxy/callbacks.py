"""Interface 7 through the proxy: callback URLs rewritten to relay addresses, and each callback judged in context."""

from __future__ import annotations

import collections
import json
import re
import secrets
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

from dpa_client.document import STATUSES, callback_media_class
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
MAX_INFLATED = 16 * 1024 * 1024  # as a request body's limit


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
class _Entry:
    """One status an instance entered, as delivered: its attempts so far and whether one was acknowledged."""

    attempts: int = 0
    acked: bool = False
    at: int = 0  # its place among the instance's entries (a later PENDING makes a new RUNNING a new entry)
    interleaved: bool = False  # its interleaved retries were observed already (one observation per entry)
    settled: bool = False  # judged by `settle` already (a report asked twice must not count it twice)


@dataclass
class _Instance:
    statuses: list[str] = field(default_factory=list)  # entries in the order of their first delivery
    entries: dict[str, _Entry] = field(default_factory=dict)  # each status's latest entry
    last: str = ""  # the status of the latest delivery
    terminal_acked: str = ""  # SUCCESS or FAIL once acknowledged

    def quiet(self) -> bool:
        """Every status entered was acknowledged: no retry is owed that could explain a delivery out of order."""
        return all(e.acked for e in self.entries.values())


class CallbackJudge:
    """Per-instance memory of callbacks: payload, lifecycle order, acknowledgement and retry count.

    Attempts are counted per (instance, status) across the instance's whole sequence (D13): the document promises
    retries (回调重试 3 次), not that an instance's deliveries are serialised, so a server may retry a failed
    status in the background while later statuses go out. Whether a status was retried enough is therefore known
    only when the session ends (`settle`), not when a later status arrives."""

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

        lower = {k.lower(): v for k, v in headers.items()}
        content_type = lower.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        kind = callback_media_class(content_type)
        if kind == "json-suffix":
            add(
                "leniency",
                "server",
                "callback-content-type",
                f"callback sent with Content-Type {media!r}: JSON, but interface 7's 请求头 names application/json "
                "(a receiver parsing by media type may refuse it)",
            )
        elif kind == "other":
            # Interface 7's 请求头 promises application/json (D13); the body is still judged as JSON.
            add(
                "violation",
                "server",
                "callback-content-type",
                f"callback sent with Content-Type {media or '(none)'!r}; interface 7's 请求头 promises "
                "application/json (a receiver parsing by media type, e.g. Spring's @RequestBody, answers 415)",
            )
        raw, problem = _decode_content(lower.get("content-encoding", ""), raw, add)
        payload = _decoded(raw) if problem is None else None
        problems = [problem] if problem else []
        if problem:
            pass  # the body as sent cannot be read: nothing more to say of it
        elif not isinstance(payload, dict):
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
                entry = state.entries.get(payload["status"]) if state is not None else None
                if state is not None and entry is not None:
                    entry.acked = True
                    if payload["status"] in TERMINAL and not state.terminal_acked:
                        state.terminal_acked = payload["status"]
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
            entry = state.entries.get(status)
            if entry is not None and not _new_entry(state, status, entry):
                self._another_attempt(instance_id, state, status, entry, add)
            else:
                self._judge_order(instance_id, state, status, add)
                state.entries[status] = _Entry(attempts=1, at=len(state.statuses))
                state.statuses.append(status)
            state.last = status

    @staticmethod
    def _another_attempt(instance_id: str, state: _Instance, status: str, entry: _Entry, add: Any) -> None:
        """A status delivered again: a retry of its entry, wherever it falls in the sequence (D13)."""
        entry.attempts += 1
        if entry.acked:
            add(
                "observation",
                "server",
                "callback-retries",
                f"{instance_id} {status} sent again after it was acknowledged (at-least-once delivery)",
            )
        elif entry.attempts > MAX_ATTEMPTS:
            add(
                "violation",
                "server",
                "callback-retries",
                f"{instance_id} {status}: attempt {entry.attempts}; the document allows 1 + 3 retries",
            )
        elif state.last != status and not entry.interleaved:
            entry.interleaved = True
            add(
                "observation",
                "server",
                "callback-order",
                f"{instance_id} {status} retried after {state.last} went out: retries interleaved with later "
                "statuses (the document promises retries, not serialised deliveries)",
            )

    @staticmethod
    def _judge_order(instance_id: str, state: _Instance, status: str, add: Any) -> None:
        """A status entered for the first time (or RUNNING/PENDING again): does the lifecycle allow it here?"""
        entered = [s for s in state.statuses if s in TERMINAL]
        if state.terminal_acked:
            add(
                "violation",
                "server",
                "callback-order",
                f"{instance_id}: {status} after {state.terminal_acked} was acknowledged: a terminal status was left",
            )
        elif entered and status in TERMINAL:
            add(
                "violation",
                "server",
                "callback-order",
                f"{instance_id}: {status} after {entered[0]}: two terminal statuses for one run",
            )
        elif state.statuses and _RANK[status] < max(_RANK[s] for s in state.statuses):
            later = next(s for s in reversed(state.statuses) if _RANK[s] > _RANK[status])
            if state.quiet():
                add(
                    "violation",
                    "server",
                    "callback-order",
                    f"{instance_id}: {later} -> {status}: the run went backwards (every earlier delivery was "
                    "acknowledged, so no retry explains it)",
                )
            else:
                add(
                    "observation",
                    "server",
                    "callback-order",
                    f"{instance_id}: {status} first delivered after {later} while a delivery was unacknowledged "
                    "(the document does not order deliveries)",
                )

    def settle(self) -> list[Finding]:
        """At the end of a session: statuses never acknowledged, judged by their attempts across the whole
        sequence (before then a retry may still come, after later statuses)."""
        out: list[Finding] = []
        add = collector(out, interface="7")
        with self._lock:
            for instance_id, state in self._instances.items():
                for status, entry in state.entries.items():
                    if entry.acked or entry.settled:
                        continue
                    entry.settled = True
                    before = len(out)
                    if entry.attempts == 1:
                        add(
                            "violation",
                            "server",
                            "callback-retries",
                            f"{instance_id} {status} was not acknowledged and never retried (the document: 回调重试 3 次)",
                        )
                    elif entry.attempts == 2:
                        add(
                            "violation",
                            "server",
                            "callback-retries",
                            f"{instance_id} {status} was given up after 2 attempts (the document: 回调重试 3 次)",
                        )
                    elif entry.attempts == 3:
                        add(
                            "observation",
                            "server",
                            "callback-retries",
                            f"{instance_id} {status}: 3 attempts in all, none acknowledged (4 = 1 + 3 retries is "
                            "the other reading of 回调重试 3 次)",
                        )
                    for finding in out[before:]:  # no one exchange shows it: say which deliveries it is about
                        finding.request = f"callbacks of {instance_id} ({status})"
        return out

    def sequences(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v.statuses) for k, v in self._instances.items()}


def _new_entry(state: _Instance, status: str, entry: _Entry) -> bool:
    """Whether a delivery of a status already entered is the run entering it again rather than a retry: only
    RUNNING and PENDING come back, and only after the other was entered since. An unacknowledged entry with
    attempts left is taken as retried (the cautious reading: a background retry looks the same)."""
    if status not in ("RUNNING", "PENDING") or state.last == status:
        return False
    other = "PENDING" if status == "RUNNING" else "RUNNING"
    since = other in state.entries and state.entries[other].at > entry.at
    return since and (entry.acked or entry.attempts >= MAX_ATTEMPTS)


def _decode_content(encoding: str, raw: bytes, add: Any) -> tuple[bytes, str | None]:
    """The body with its Content-Encoding undone: gzip/deflate are a leniency (D13; many receivers, Spring's
    included, do not decode compressed request bodies). Any other encoding cannot be judged: a problem."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip().lower() != "identity"]
    if not codings:
        return raw, None
    if any(c not in ("gzip", "x-gzip", "deflate") for c in codings):
        return raw, f"Content-Encoding {encoding!r} is none the proxy can decode (gzip, deflate)"
    add(
        "leniency",
        "server",
        "callback-content-encoding",
        f"callback sent with Content-Encoding {encoding!r}: the document names none, and many receivers (Spring's "
        "included) do not decode compressed request bodies; decoded to judge it",
    )
    for coding in reversed(codings):
        try:
            raw = _inflate(raw, gzip=coding != "deflate")
        except (zlib.error, ValueError) as exc:
            return raw, f"the body is not valid {coding} ({exc})"
    return raw, None


def _inflate(raw: bytes, gzip: bool) -> bytes:
    # Bounded: a small compressed callback must not expand into gigabytes in the proxy's memory.
    tries = (16 + zlib.MAX_WBITS,) if gzip else (zlib.MAX_WBITS, -zlib.MAX_WBITS)  # deflate: zlib-wrapped or raw
    last: Exception = ValueError("empty")
    for wbits in tries:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, MAX_INFLATED)
        except zlib.error as exc:
            last = exc
            continue
        if inflater.unconsumed_tail:
            raise ValueError(f"it inflates beyond {MAX_INFLATED} bytes")
        return out
    raise last
