"""What the proxy keeps: exchanges it relayed and the findings judged on them, in one bounded, thread-safe store."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Verdict = Literal["violation", "leniency", "observation"]
Side = Literal["client", "server"]
VERDICTS: tuple[Verdict, ...] = ("violation", "leniency", "observation")
# violation: breaks a promise of the document; leniency: accepts what the document forbids;
# observation: one side's choice where the document is silent or ambiguous (the contract kit's classes).


@dataclass
class Finding:
    """One verdict on one exchange: who (side) broke or chose what (check, message), and how to reproduce it."""

    verdict: Verdict
    side: Side
    check: str
    message: str
    exchange: int = 0
    interface: str = ""
    curl: str = ""
    request: str = ""  # the exchange's method and path (redacted), so a finding reads on its own
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collector(out: list[Finding], interface: str = "") -> Callable[[Verdict, Side, str, str], None]:
    """`add(verdict, side, check, message)`: appends a Finding to `out` (the judges' one way of recording one)."""

    def add(verdict: Verdict, side: Side, check: str, message: str) -> None:
        out.append(Finding(verdict, side, check, message, interface=interface))

    return add


@dataclass
class Exchange:
    """One request the proxy relayed (a vendor call or a platform callback) and the answer, secrets redacted."""

    kind: Literal["api", "callback", "other"]
    method: str
    path: str
    operation: str = ""
    interface: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    status: int = 0
    response_body: str = ""
    duration_ms: float = 0.0
    error: str = ""
    curl: str = ""
    destination: str = ""
    at: float = field(default_factory=time.time)
    findings: list[int] = field(default_factory=list)
    id: int = 0

    def verdict(self, findings: dict[int, Finding]) -> str:
        """The worst verdict among this exchange's findings, or "ok"."""
        got = {findings[i].verdict for i in self.findings if i in findings}
        return next((v for v in VERDICTS if v in got), "ok")

    def to_dict(self, findings: dict[int, Finding]) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict(findings)
        out["findings"] = [findings[i].to_dict() for i in self.findings if i in findings]
        return out


class Store:
    """The last `limit` exchanges and the last 4 × `limit` findings: a proxy left running for days must not grow
    without bound. Counts in the summary cover the whole session."""

    def __init__(self, limit: int = 1000) -> None:
        self._lock = threading.Lock()
        self._exchanges: collections.OrderedDict[int, Exchange] = collections.OrderedDict()
        self._findings: collections.OrderedDict[int, Finding] = collections.OrderedDict()
        self._ids = itertools.count(1)
        self._finding_ids = itertools.count(1)
        self._limit = limit
        self.counts: collections.Counter[str] = collections.Counter()

    def add_exchange(self, exchange: Exchange) -> Exchange:
        with self._lock:
            exchange.id = next(self._ids)
            self._exchanges[exchange.id] = exchange
            while len(self._exchanges) > self._limit:
                _, dropped = self._exchanges.popitem(last=False)
                for finding_id in dropped.findings:
                    # A curl line holds up to a body's worth of text: kept findings outliving their exchange would
                    # keep 4 bodies each. The finding stays (the report groups it with its like, which has one).
                    if finding_id in self._findings:
                        self._findings[finding_id].curl = ""
            self.counts[exchange.kind] += 1
        return exchange

    def add_finding(self, finding: Finding, exchange: Exchange | None) -> Finding:
        with self._lock:
            finding.id = next(self._finding_ids)
            if exchange is not None:
                finding.exchange = exchange.id
                finding.interface = finding.interface or exchange.interface
                finding.curl = finding.curl or exchange.curl
                finding.request = f"{exchange.method} {exchange.path}"
                exchange.findings.append(finding.id)
            self._findings[finding.id] = finding
            while len(self._findings) > self._limit * 4:
                self._findings.popitem(last=False)
            self.counts[finding.verdict] += 1
        return finding

    def exchanges(self, since: int = 0, last: int | None = None) -> list[dict[str, Any]]:
        """Kept exchanges with an id above `since`, oldest first; only the `last` ones if given."""
        with self._lock:
            chosen = _tail([e for e in self._exchanges.values() if e.id > since], last)
            return [e.to_dict(self._findings) for e in chosen]

    def findings(self, since: int = 0, last: int | None = None) -> list[dict[str, Any]]:
        """Kept findings with an id above `since`, oldest first; only the `last` ones if given."""
        with self._lock:
            return [f.to_dict() for f in _tail([f for f in self._findings.values() if f.id > since], last)]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "exchanges": self.counts["api"] + self.counts["callback"] + self.counts["other"],
                "api": self.counts["api"],
                "callbacks": self.counts["callback"],
                "other": self.counts["other"],
                "violations": self.counts["violation"],
                "leniencies": self.counts["leniency"],
                "observations": self.counts["observation"],
                "keptExchanges": len(self._exchanges),
                "keptFindings": len(self._findings),
            }


def _tail(items: list[T], last: int | None) -> list[T]:
    return items[-last:] if last else items if last is None else []
