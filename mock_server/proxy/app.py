"""The proxy's WSGI app: forward vendor calls and relay callbacks unchanged, judge each exchange, serve /__admin views."""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

from mock_server.proxy import ui
from mock_server.proxy.callbacks import CallbackJudge, Relay, Relays
from mock_server.proxy.forward import Answer, Destination, ForwardError, end_to_end, send
from mock_server.proxy.judge import Judged, Route, Router, judge_request, judge_response
from mock_server.proxy.model import Exchange, Finding, Side, Store
from mock_server.proxy.record import Recorder, token_subject
from mock_server.proxy.redact import Secrets

log = logging.getLogger("dpa_mock.proxy")
StartResponse = Callable[..., Any]
# Server observations of a documented ambiguity: one finding per distinct choice.
ONCE_CHECKS = frozenset({"http-status-policy", "success-message", "error-data", "double-slash", "code-format"})
ADMIN_VIEWS = ("/__admin/exchanges", "/__admin/findings", "/__admin/ui", "/__admin/summary")


@dataclass
class ProxyConfig:
    target: str
    public_url: str
    timeout: float = 60.0
    callback_timeout: float = 10.0
    tls: ssl.SSLContext | None = None  # trust for the target (--ca-bundle / --insecure)
    callback_tls: ssl.SSLContext | None = None  # trust for callback receivers (system CAs unless --insecure)
    max_body: int = 16 * 1024 * 1024
    threads: int = 64  # the server's; split into lanes below
    max_exchanges: int = 1000  # exchanges kept for the views and the report (findings: 4 times as many)
    listen: tuple[str, int] | None = None  # host and port the proxy is bound to
    extra: dict[str, Any] = field(default_factory=dict)


class Lanes:
    """How many server threads may wait on the target and on callback receivers at once.

    Waitress has one pool of threads. Without lanes, a slow target or one slow receiver takes every thread and
    the proxy stops answering everyone, its own views included, and the target's callbacks cannot get in while
    its answers are awaited (an advance through the proxy that delivers callbacks deadlocks until timeouts).
    Half the threads may wait on the target, the rest but two on receivers (three quarters of those on one
    receiver); beyond that the proxy answers 503 at once (the platform retries a callback).
    """

    def __init__(self, threads: int) -> None:
        self.limits = {"target": max(1, threads // 2), "callbacks": max(1, threads - threads // 2 - 2)}
        self.per_receiver = max(1, self.limits["callbacks"] * 3 // 4)
        self._busy: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    @contextmanager
    def enter(self, lane: str, receiver: str = "") -> Iterator[bool]:
        """Yields whether a thread may wait in `lane` now (False: the lane is full; answer without waiting)."""
        keys = [lane] + ([f"receiver {receiver}"] if receiver else [])
        with self._lock:
            free = self._busy[lane] < self.limits[lane] and (not receiver or self._busy[keys[1]] < self.per_receiver)
            if free:
                self._busy.update(keys)
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._busy.subtract(keys)
                    self._busy += collections.Counter()  # drop receivers no longer waited on

    def in_flight(self) -> int:
        with self._lock:
            return self._busy["target"] + self._busy["callbacks"]


class ProxyApp:
    """One instance per proxy process; every waitress thread calls it."""

    def __init__(self, config: ProxyConfig, recorder: Recorder | None = None) -> None:
        self.config = config
        self.dest = Destination.parse(config.target)
        self.store = Store(config.max_exchanges)
        self.secrets = Secrets()
        self.relays = Relays(config.public_url, own=config.listen)
        self.lanes = Lanes(config.threads)
        self.callbacks = CallbackJudge()
        self.recorder = recorder
        self.router = Router()
        # Digests of codes a token call already redeemed: a second success for one is a broken promise.
        self._redeemed: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._redeemed_lock = threading.Lock()
        self._choices: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.started = time.time()

    # -- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = _text(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if method == "GET" and path in ADMIN_VIEWS:
                return self._admin(path, environ.get("QUERY_STRING", ""), start_response)
            if self.relays.owns(path):  # the proxy's namespace: never forwarded
                return self._relay_callback(self.relays.token(path), environ, start_response)
            return self._forward(environ, path, method, start_response)
        except Exception:  # never a stack trace to the client; the log has it
            log.exception("proxy error on %s %s", method, self.secrets.text(path))
            return _reply(
                start_response,
                502,
                "application/json",
                json.dumps(
                    {"code": 500, "message": "dpa-mock proxy: internal error (see its log)", "data": None}
                ).encode(),
            )

    # -- vendor calls -----------------------------------------------------------------------------
    def _forward(
        self, environ: dict[str, Any], path: str, method: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        target = _raw_target(environ)
        headers = _request_headers(environ)
        raw = _read_body(environ, self.config.max_body)
        if raw is None:
            return self._too_large(start_response)
        headers_map = dict(headers)
        route = self.router.route(method, path)
        kind: Literal["api", "other"] = "other" if path.startswith("/__admin") else "api"
        judged = None
        if kind == "api":
            try:
                judged = judge_request(route, method, path, environ.get("QUERY_STRING", ""), headers_map, raw)
            except Exception as exc:  # judging must never stop the forwarding
                judged = Judged()
                judged.add("observation", "client", "unjudged", f"the proxy could not judge this request: {exc!r}")
                log.exception("judging a request failed")
        if judged is not None:
            self.secrets.learn_fields(judged.body)
            _, _, token = headers_map.get("Authorization", "").partition(" ")
            self.secrets.learn(token.strip())
        exchange = Exchange(
            kind=kind,
            method=method,
            path=self.secrets.url(target),
            operation=route.operation.id if route.operation and kind == "api" else "",
            interface=route.interface if kind == "api" else "",
            request_headers=self.secrets.headers(headers_map),
            request_body=self.secrets.body(raw, headers_map.get("Content-Type", "")),
            destination=self.secrets.url(self.dest.url(target)),
            curl=self.secrets.curl(method, self.dest.url(target), headers_map, raw),
        )
        sent, relay = self._relay_callbacks(route, judged, headers_map, raw) if judged else (raw, None)
        started = time.monotonic()
        with self.lanes.enter("target") as free:
            if not free:
                message = (
                    f"dpa-mock proxy: busy: {self.lanes.limits['target']} requests are already waiting for "
                    "the target (raise --threads, or the target is slow); not forwarded"
                )
                return self._refused(
                    exchange, judged.findings if judged else [], "server", message, start_response, envelope=True
                )
            try:
                outgoing = end_to_end(headers) + (_provenance(environ, headers) if kind == "other" else [])
                answer = send(self.dest, method, target, outgoing, sent, self.config.timeout, self.config.tls)
            except ForwardError as exc:
                return self._unanswered(exchange, judged, exc, started, start_response)
        exchange.duration_ms = round((time.monotonic() - started) * 1000, 1)
        exchange.status = answer.status
        exchange.response_body = self.secrets.body(answer.body, answer.header("Content-Type"))
        findings = list(judged.findings) if judged else []
        if judged is not None and method != "HEAD":  # a HEAD answer has no body: nothing of it to judge
            try:
                server, envelope = judge_response(route, judged, answer.status, _decoded_body(answer))
            except Exception as exc:  # judging must never stop the answer
                log.exception("judging an answer failed")
                server, envelope = (
                    [Finding("observation", "server", "unjudged", f"the proxy could not judge this answer: {exc!r}")],
                    None,
                )
            if envelope is not None:
                self.secrets.learn_fields(envelope.get("data"))
                # the answer's secrets are learned now: redact its display again
                exchange.response_body = self.secrets.body(answer.body, answer.header("Content-Type"))
            findings += server
            findings += self._code_reuse(route, judged, envelope)
            self._record(route, judged, headers_map, envelope)
        self.store.add_exchange(exchange)
        if relay is not None:
            relay.exchange = exchange.id
        self._findings(exchange, findings)
        return _pass_on(answer, method, start_response)

    def _relay_callbacks(
        self, route: Route, judged: Judged, headers: dict[str, str], raw: bytes
    ) -> tuple[bytes, Relay | None]:
        """The body to send: an execution's or scene's callbackUrl replaced by a relay address where it can be."""
        op = route.operation
        if op is None or op.id not in ("executePlan", "saveTimingParam") or route.wrong_method or judged.body is None:
            return raw, None
        media = headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = judged.body if isinstance(judged.body, dict) else {}
        plan_id = route.path_params.get("processPlanId") or body.get("processPlanId") or ""
        url = body.get("callbackUrl")
        problem = self.relays.url_problem(url) if isinstance(url, str) and url.strip() else None
        sent, relay = self.relays.rewrite(op.id, media, raw, judged.body, str(plan_id))
        if problem:
            judged.add("observation", "client", "callback-url", problem)
        elif relay is None and url:
            judged.add(
                "observation",
                "client",
                "callback-relay",
                "callbackUrl left as sent (could not be rewritten unambiguously): its callbacks bypass the proxy",
            )
        return sent, relay

    def _unanswered(
        self,
        exchange: Exchange,
        judged: Judged | None,
        exc: ForwardError,
        started: float,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """The target did not answer, or not in HTTP: 502 with the envelope, and the server's finding."""
        exchange.error = str(exc)
        exchange.duration_ms = round((time.monotonic() - started) * 1000, 1)
        self.store.add_exchange(exchange)
        if exc.kind == "not-http":
            server = Finding("violation", "server", "envelope", f"the target's answer: {exc}")
        else:
            server = Finding("observation", "server", "unreachable", f"the target did not answer: {exc}")
        self._findings(exchange, [*(judged.findings if judged else []), server])
        what = {
            "not-http": "target's answer is not HTTP",
            "untrusted": "target not trusted (give --ca-bundle FILE, or --insecure)",
        }.get(exc.kind, "target unreachable")
        return _reply(
            start_response,
            502,
            "application/json",
            json.dumps(
                {"code": 503, "message": f"dpa-mock proxy: {what}: {self.secrets.text(str(exc))}", "data": None}
            ).encode(),
        )

    def _refused(
        self,
        exchange: Exchange,
        findings: list[Finding],
        side: Side,
        message: str,
        start_response: StartResponse,
        envelope: bool,
    ) -> Iterable[bytes]:
        """A lane is full: 503 at once (Retry-After: 1), the exchange kept with why it was not relayed."""
        exchange.error = message
        exchange.status = 503
        self.store.add_exchange(exchange)
        self._findings(exchange, [*findings, Finding("observation", side, "proxy-busy", message)])
        log.warning("%s", message)
        body = json.dumps({"code": 503, "message": message, "data": None}).encode() if envelope else message.encode()
        return _reply(
            start_response,
            503,
            "application/json" if envelope else "text/plain; charset=utf-8",
            body,
            [("Retry-After", "1")],
        )

    def _too_large(self, start_response: StartResponse) -> Iterable[bytes]:
        return _reply(
            start_response,
            413,
            "application/json",
            json.dumps(
                {
                    "code": 400,
                    "message": f"dpa-mock proxy: body over {self.config.max_body} bytes; not forwarded",
                    "data": None,
                }
            ).encode(),
        )

    def _first_time(self, finding: Finding) -> bool:
        """A server's choice where the document is silent is reported once per choice, not once per exchange."""
        if finding.side != "server" or finding.verdict != "observation" or finding.check not in ONCE_CHECKS:
            return True
        key = (finding.check, finding.message)
        with self._redeemed_lock:
            if key in self._choices:
                return False
            self._choices[key] = None
            while len(self._choices) > 10_000:  # a server with a new message every time must not grow this
                self._choices.popitem(last=False)
        return True

    def _code_reuse(self, route: Route, judged: Any, envelope: dict[str, Any] | None) -> list[Finding]:
        code = judged.body.get("code") if isinstance(judged.body, dict) else None
        if (
            route.operation is None
            or route.operation.id != "getToken"
            or not isinstance(code, str)
            or envelope is None
            or envelope.get("code") != 200
        ):
            return []
        digest = hashlib.sha256(code.encode()).hexdigest()
        with self._redeemed_lock:
            if digest in self._redeemed:
                return [
                    Finding(
                        "violation",
                        "server",
                        "oauth-code-reuse",
                        "an authorization code already exchanged for a token was accepted again",
                    )
                ]
            self._redeemed[digest] = None
            while len(self._redeemed) > 100_000:
                self._redeemed.popitem(last=False)
        return []

    def _record(self, route: Route, judged: Any, headers: dict[str, str], envelope: dict[str, Any] | None) -> None:
        if self.recorder is None or envelope is None or envelope.get("code") != 200 or route.operation is None:
            return
        op, data = route.operation.id, envelope.get("data")
        user = token_subject(headers.get("Authorization", ""))
        body = judged.body if isinstance(judged.body, dict) else {}
        try:
            if op == "listPlans" and isinstance(data, list):
                self.recorder.plans_listed([p for p in data if isinstance(p, dict) and "processPlanId" in p], user)
            elif op == "queryModelByPlanId" and isinstance(data, list) and isinstance(body.get("processPlanId"), str):
                self.recorder.models(body["processPlanId"], data, user)
            elif op == "executePlan" and isinstance(data, list):
                for run in data:
                    self.recorder.executed(run["processPlanId"], run["planInstanceId"])
            elif op == "queryPlanRunOutParam" and isinstance(data, list):
                self.recorder.outputs(judged.query["processPlanId"], judged.query["planInstanceId"], data, user)
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            log.warning("not recorded (%s answer of an unexpected shape: %s)", op, exc)

    # -- callbacks --------------------------------------------------------------------------------
    def _relay_callback(self, token: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "POST").upper()
        headers = _request_headers(environ)
        headers_map = dict(headers)
        raw = _read_body(environ, self.config.max_body)
        if raw is None:
            return self._too_large(start_response)
        relay = self.relays.get(token) if token else None
        exchange = Exchange(
            kind="callback",
            method=method,
            path=f"(relay {token[:4]}…)",
            interface="7",
            request_headers=self.secrets.headers(headers_map),
            request_body=self.secrets.body(raw, headers_map.get("Content-Type", "")),
        )
        if relay is None:
            exchange.status = 404
            self.store.add_exchange(exchange)
            self._findings(
                exchange,
                [
                    Finding(
                        "observation",
                        "server",
                        "callback-relay",
                        "a callback to a relay address this proxy does not know (issued by an "
                        "earlier proxy process, or not sent by the platform); answered 404",
                    )
                ],
            )
            return _reply(start_response, 404, "text/plain; charset=utf-8", b"dpa-mock proxy: unknown callback relay")
        original = urlsplit(relay.url)
        exchange.destination = exchange.path = self.secrets.url(relay.url)
        exchange.curl = self.secrets.curl(method, relay.url, headers_map, raw)
        findings: list[Finding] = []
        if method != "POST":
            findings.append(
                Finding("violation", "server", "callback-method", f"callback sent as {method}; the document POSTs")
            )
        try:
            arrival, payload = self.callbacks.arrive(relay, headers_map, raw)
        except Exception as exc:  # judging must never stop the relay
            log.exception("judging a callback failed")
            arrival, payload = (
                [Finding("observation", "server", "unjudged", f"the proxy could not judge: {exc!r}")],
                None,
            )
        findings += arrival
        started = time.monotonic()
        answer: Answer | None = None
        error = ""
        with self.lanes.enter("callbacks", receiver=original.netloc.lower()) as free:
            if not free:
                message = (
                    f"dpa-mock proxy: busy: too many callbacks are already waiting for {exchange.destination} "
                    "(a slow receiver?); not relayed, the platform will retry"
                )
                return self._refused(exchange, findings, "client", message, start_response, envelope=False)
            try:
                dest = Destination.parse(f"{original.scheme}://{original.netloc}")
                answer = send(
                    dest,
                    method,
                    (original.path or "/") + (f"?{original.query}" if original.query else ""),
                    end_to_end(headers),
                    raw,
                    self.config.callback_timeout,
                    self.config.callback_tls,
                )
            except (ForwardError, ValueError) as exc:
                error = str(exc)
        exchange.duration_ms = round((time.monotonic() - started) * 1000, 1)
        exchange.error = error
        findings += self.callbacks.answered(
            payload, answer.status if answer else None, answer.body if answer else b"", error
        )
        if payload and self.recorder is not None and isinstance(payload.get("status"), str):
            try:
                self.recorder.status(str(payload.get("planInstanceId")), payload["status"])
            except OSError as exc:  # a recording that cannot be written must not cost the platform its callback
                log.warning("not recorded (%s)", exc)
        if answer is not None:
            exchange.status = answer.status
            exchange.response_body = self.secrets.body(answer.body, answer.header("Content-Type"))
        else:
            exchange.status = 502
        self.store.add_exchange(exchange)
        self._findings(exchange, findings)
        if answer is None:
            # The platform learns what it would have learned without the proxy: no acknowledgement.
            return _reply(
                start_response,
                502,
                "text/plain; charset=utf-8",
                f"dpa-mock proxy: callback receiver unreachable: {self.secrets.text(error)}".encode(),
            )
        return _pass_on(answer, method, start_response)

    # -- bookkeeping ------------------------------------------------------------------------------
    def _findings(self, exchange: Exchange, findings: list[Finding]) -> None:
        findings = [f for f in findings if self._first_time(f)]
        for finding in findings:
            finding.message = self.secrets.text(finding.message)
            self.store.add_finding(finding, exchange)
        exchange.error = self.secrets.text(exchange.error)
        self._log(exchange, [f"{f.verdict}/{f.side}" for f in findings])

    def _log(self, exchange: Exchange, verdicts: list[str]) -> None:
        log.info(
            "#%d %s %s %s -> %s %.1fms%s",
            exchange.id,
            exchange.kind,
            exchange.method,
            exchange.path,
            exchange.status or exchange.error,
            exchange.duration_ms,
            f" [{', '.join(verdicts)}]" if verdicts else "",
        )

    def _admin(self, path: str, query: str, start_response: StartResponse) -> Iterable[bytes]:
        if path == "/__admin/ui":
            return _reply(start_response, 200, "text/html; charset=utf-8", ui.page(self).encode("utf-8"))
        # ?since=ID (only newer ones: a poller fetches what it has not seen) and ?last=N (only the N newest)
        params = dict(parse_qsl(query))
        try:
            since, last = int(params.get("since", 0)), (int(params["last"]) if "last" in params else None)
            if since < 0 or (last is not None and last < 0):
                raise ValueError
        except ValueError:
            body = json.dumps(
                {"code": 400, "message": "dpa-mock proxy: since and last must be whole numbers >= 0", "data": None}
            ).encode()
            return _reply(start_response, 400, "application/json", body)
        if path == "/__admin/exchanges":
            data: Any = self.store.exchanges(since, last)
        elif path == "/__admin/findings":
            data = self.store.findings(since, last)
        else:
            data = {**self.store.summary(), "target": self.secrets.url(self.config.target)}
        body = json.dumps({"code": 200, "message": "success", "data": data}, ensure_ascii=False).encode("utf-8")
        return _reply(start_response, 200, "application/json; charset=utf-8", body)

    def report_data(self) -> dict[str, Any]:
        # Whether a callback status was retried enough is known only now: a retry may follow later statuses (D13).
        for finding in self.callbacks.settle():
            finding.message = self.secrets.text(finding.message)
            self.store.add_finding(finding, None)
        return {
            "target": self.secrets.url(self.config.target),
            "started": self.started,
            "finished": time.time(),
            "inFlight": self.lanes.in_flight(),
            "summary": self.store.summary(),
            "findings": self.store.findings(),
            "exchanges": self.store.exchanges(),
            "callbackSequences": self.callbacks.sequences(),
        }


def _text(wsgi_str: str) -> str:
    """A WSGI environ string (bytes as latin-1) as the UTF-8 text it carries."""
    try:
        return wsgi_str.encode("latin1").decode("utf-8")
    except UnicodeError:
        return wsgi_str


def _raw_target(environ: dict[str, Any]) -> str:
    """The request target as the client wrote it (waitress keeps it): `//` and escapes untouched."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        if not uri.startswith("/"):
            parts = urlsplit(uri)  # absolute-form: keep path and query only
            uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return uri
    query = environ.get("QUERY_STRING", "")
    return quote(environ.get("PATH_INFO", ""), safe="/%:@!$&'()*+,;=") + (f"?{query}" if query else "")


def _provenance(environ: dict[str, Any], headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`Forwarded: for=…` for a target's own (`/__admin`) path asked by a client that is not on this host.

    `dpa-mock serve` opens its admin API to loopback clients only; every request from the proxy comes from
    loopback, so a proxy listening on 0.0.0.0 (for the platform's callbacks) would open the target's admin API
    to the network. With the header the target sees a remote client behind a proxy and asks for its token.
    Vendor calls stay verbatim; a client's own forwarding header is passed on as it is.
    """
    address = str(environ.get("REMOTE_ADDR") or "")
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return []
    mapped = getattr(ip, "ipv4_mapped", None)
    if (
        ip.is_loopback
        or (mapped is not None and mapped.is_loopback)
        or any(name.lower() in ("forwarded", "x-forwarded-for") for name, _ in headers)
    ):
        return []
    return [("Forwarded", f'for="[{ip}]"' if ip.version == 6 else f"for={ip}")]


def _request_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").title(), value))
    if environ.get("CONTENT_TYPE"):
        out.append(("Content-Type", environ["CONTENT_TYPE"]))
    return out


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    stream = environ["wsgi.input"]
    return stream.read(length) if length > 0 else b""


def _decoded_body(answer: Answer) -> bytes:
    """The answer's body for judging: decompressed if the server compressed it (the client still gets it as sent)."""
    encoding = answer.header("Content-Encoding").lower()
    if encoding in ("gzip", "deflate"):
        import zlib

        try:
            return zlib.decompress(answer.body, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        except zlib.error:
            return answer.body
    return answer.body


def _pass_on(answer: Answer, method: str, start_response: StartResponse) -> Iterable[bytes]:
    """The answer as it came: status line, end-to-end headers, body (a HEAD keeps the length it announced)."""
    length = answer.header("Content-Length") if method == "HEAD" else ""
    start_response(
        f"{answer.status} {answer.reason}",
        [*end_to_end(answer.headers), ("Content-Length", length or str(len(answer.body)))],
    )
    return [answer.body]


def _reply(
    start_response: StartResponse,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    reasons = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        413: "Payload Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    start_response(
        f"{status} {reasons.get(status, '')}".strip(),
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *(extra or [])],
    )
    return [body]
