"""The real clock (the default): /__admin/clock/advance returns only after every callback attempt due by the new
time has been made, retries included, as with the virtual clock (issue 3)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from tests.plugins.engine import http_admin, http_advance, http_execute, http_login

pytestmark = pytest.mark.http


@pytest.fixture(scope="module")
def real_server() -> Iterator[ServerProcess]:
    with ServerProcess() as server:  # no --clock: the real clock
        yield server


def ledger(base: str, instance: str) -> list[dict[str, Any]]:
    return list(http_admin(base, "GET", "/__admin/callbacks", params={"planInstanceId": instance}))


def test_advance_returns_after_the_retries_due_in_the_window(
    real_server: ServerProcess, receiver: CallbackReceiver
) -> None:
    base = real_server.base_url
    assert http_admin(base, "GET", "/__admin/clock")["mode"] == "real"
    receiver.fail()  # 500 to everything: each status is tried 4 times (0.1, 0.2, 0.4 s apart), then given up
    instance = http_execute(base, http_login(base), callbackUrl=receiver.url)
    http_advance(base, 30)
    # Read at once, no waiting: everything due by the new time has happened.
    entries = ledger(base, instance)
    assert [(d["status"], d["state"], len(d["attempts"])) for d in entries] == [
        ("DEFAULT", "gave_up", 4),
        ("RUNNING", "gave_up", 4),
        ("SUCCESS", "gave_up", 4),
    ], entries
    for d in entries:
        times = [a["at"] for a in d["attempts"]]
        # The backoff counts from each answer (a local 500 takes well under the 100 ms of the first step).
        steps = list(zip(itertools.pairwise(times), (100, 200, 400), strict=True))
        assert all(step <= b - a < step + 1000 for (a, b), step in steps), times
    assert len(receiver.for_instance(instance)) == 12


def test_advance_waits_for_an_attempt_on_the_wire_and_its_retries(
    real_server: ServerProcess, receiver: CallbackReceiver
) -> None:
    base = real_server.base_url
    receiver.timeout(2.5, times=1).ack()  # the first attempt outlasts the 2 s timeout; the retry is acked
    instance = http_execute(base, http_login(base), callbackUrl=receiver.url)
    assert receiver.wait_for(lambda ds: len(ds) >= 1, timeout=5)  # DEFAULT is on the wire
    http_advance(base, 30)
    entries = ledger(base, instance)
    assert [(d["status"], d["state"]) for d in entries] == [
        ("DEFAULT", "acked"),
        ("RUNNING", "acked"),
        ("SUCCESS", "acked"),
    ], entries
    assert [a["verdict"] for a in entries[0]["attempts"]] == ["retry", "ack"]
