"""Interface 7 judging without a target: how deliveries count as attempts (media types: dpa_client.document)."""

from __future__ import annotations

from contract_tests.support.envelope import collapse
from mock_server.testing.receiver import Delivery


def attempts_per_status(deliveries: list[Delivery]) -> list[tuple[str, int]]:
    """Deliveries of each status, wherever they fell in the sequence, in the order statuses first arrived:
    [(status, deliveries)]. Retries of one status may come after later statuses (D13: the document promises
    retries, not that an instance's deliveries are serialised)."""
    counts: dict[str, int] = {}
    for d in deliveries:
        status = d.json.get("status") if isinstance(d.json, dict) else None
        if isinstance(status, str):
            counts[status] = counts.get(status, 0) + 1
    return list(counts.items())


def interleaved(deliveries: list[Delivery]) -> bool:
    """Whether a status was delivered again after a later status had already been delivered."""
    seen: list[str] = []
    for d in deliveries:
        status = d.json.get("status") if isinstance(d.json, dict) else None
        if not isinstance(status, str):
            continue
        if status in seen and seen[-1] != status:
            return True
        if status not in seen:
            seen.append(status)
    return False


def resent(deliveries: list[Delivery], retried: str) -> list[tuple[str, int]]:
    """Acknowledged statuses delivered more often than the instance entered them: [(status, deliveries)].

    Entries are counted on the sequence without the retried status, repeats collapsed, so RUNNING → PENDING →
    RUNNING is two notifications, not a repeat."""
    sequence = [
        str(d.json.get("status")) for d in deliveries if isinstance(d.json, dict) and d.json.get("status") != retried
    ]
    entries = collapse(sequence)
    return [(s, sequence.count(s)) for s in dict.fromkeys(sequence) if sequence.count(s) > entries.count(s)]
