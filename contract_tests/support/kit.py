"""Session-wide state of one kit run: its configuration, observations, write log and request log."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contract_tests.support.redact import curl_line, redact
from contract_tests.support.verdicts import TOPICS, Finding, LeniencyFailure, Verdict

if TYPE_CHECKING:
    from contract_tests.support.config import KitConfig


@dataclass
class Observation:
    topic: str  # one of verdicts.TOPICS: stable, machine-read
    detail: str  # the value the target chose
    first_test: str
    count: int = 1


@dataclass
class SentRequest:
    test: str | None
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | str | None
    http_status: int | None = None
    code: Any = None


@dataclass
class Kit:
    """One per pytest session; plugins fill it, the report reads it."""

    config: KitConfig | None = None
    current_test: str | None = None
    callback_url: str | None = None  # what targets are told, once the receiver listens
    observations: dict[tuple[str, str], Observation] = field(default_factory=dict)
    leniencies: dict[tuple[str, str], Finding] = field(default_factory=dict)
    # Verdicts of the findings raised in each test: a failed test is a leniency only if all of them were.
    raised: dict[str, set[Verdict]] = field(default_factory=dict)
    by_test: dict[str, list[str]] = field(default_factory=dict)  # leniencies each test found (JUnit properties)
    writes: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    requests_by_test: dict[str, list[SentRequest]] = field(default_factory=dict)
    blamed: dict[str, SentRequest] = field(default_factory=dict)
    request_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, topic: str, detail: str) -> None:
        """Record what the target does on a point the document leaves open; the report lists it."""
        if topic not in TOPICS:
            raise KeyError(f"observation topic {topic!r} is not in contract_tests.support.verdicts.TOPICS")
        detail = redact(str(detail))
        with self.lock:
            key = (topic, detail)
            if key in self.observations:
                self.observations[key].count += 1
            else:
                self.observations[key] = Observation(topic, detail, self.current_test or "(session)")

    def lenient(self, check: str, detail: str, response: Any = None, *, curl: str | None = None) -> None:
        """The target accepts what the document forbids (or skips an HTTP nicety): record it with the request
        (the response's, or a ready `curl` line); under --strict the calling test fails with LeniencyFailure."""
        detail = redact(detail)
        sent = getattr(response, "kit_sent", None)
        if sent is not None:
            curl = curl_line(sent.method, sent.url, sent.headers, sent.body)
        test = self.current_test or "(session)"
        with self.lock:
            key = (check, detail)
            if key in self.leniencies:
                self.leniencies[key].count += 1
            else:
                self.leniencies[key] = Finding(Verdict.LENIENCY, check, detail, test, curl)
            self.by_test.setdefault(test, []).append(f"{check}: {detail}")
        if self.config is not None and self.config.strict:
            self.mark(Verdict.LENIENCY)
            raise LeniencyFailure(f"[leniency] {check}: {detail}")

    def mark(self, verdict: Verdict) -> None:
        """Note that the current test raised a finding of this class (the report classes its failure)."""
        with self.lock:
            self.raised.setdefault(self.current_test or "(session)", set()).add(verdict)

    def record_request(self, sent: SentRequest) -> None:
        with self.lock:
            self.request_count += 1
            bucket = self.requests_by_test.setdefault(sent.test or "(session)", [])
            bucket.append(sent)
            del bucket[:-20]  # the last few are enough to show the failing request

    def blame(self, response: Any) -> None:
        """Mark the request whose response is being judged: the report shows it as the failing request."""
        sent = getattr(response, "kit_sent", None)
        if sent is not None:
            with self.lock:
                self.blamed[self.current_test or "(session)"] = sent

    def failing_request(self, test: str) -> SentRequest | None:
        """The request last judged in `test`, else its last request to the vendor API."""
        with self.lock:
            if test in self.blamed:
                return self.blamed[test]
            vendor = [r for r in self.requests_by_test.get(test) or [] if "/__admin" not in r.url]
            return vendor[-1] if vendor else None


KIT = Kit()
