"""Interface 7: payload fields, legal statuses in order per instance, retried until acknowledged, at most 3 retries."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from contract_tests.plugins.receiver import Callbacks, content_encoding
from contract_tests.plugins.safety import policy
from contract_tests.plugins.target import AdminError
from contract_tests.support.api import Api
from contract_tests.support.callbacks import attempts_per_status, interleaved, resent
from contract_tests.support.envelope import STATUSES, TERMINAL, collapse, legal_status_path
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings
from dpa_client.document import callback_media_class
from mock_server.testing.receiver import Delivery

pytestmark = pytest.mark.interface(7)
MAX_ATTEMPTS = 4  # the document: 回调重试 3 次 — one attempt and three retries
# On a real clock: whether this target was seen retrying a status within --wait-seconds (then a status that is
# never retried within that wait is judged, not inconclusive).
RETRIED_IN_TIME: list[bool] = []


def check_payloads(deliveries: list[Delivery], instance: str, plan: str, path: str | None = None) -> list[str]:
    """Assert every delivery is a JSON POST with the three documented string fields (to the callbackUrl's `path`
    when given); return the statuses."""
    statuses = []
    for i, d in enumerate(deliveries):
        assert path is None or d.path == path, (
            f"callback #{i} for {instance}: POSTed to {d.path!r}, not to the callbackUrl's path {path!r}"
        )
        body = d.json
        assert isinstance(body, dict), f"callback #{i} for {instance}: body is not a JSON object: {d.raw[:80]!r}"
        for name in ("planInstanceId", "processPlanId", "status"):
            assert isinstance(body.get(name), str), f"callback #{i} for {instance}: {name} is {body.get(name)!r}"
        assert body["processPlanId"] == plan, (
            f"callback #{i} for {instance}: processPlanId {body['processPlanId']!r}, but the run is of plan {plan!r}"
        )
        assert body["status"] in STATUSES, (
            f"callback #{i} for {instance}: illegal status {body['status']!r} (allowed: {', '.join(STATUSES)})"
        )
        _check_media_type(d, f"#{i} for a run of {plan}", f"a run of {plan}")
        statuses.append(body["status"])
    return statuses


def _check_media_type(d: Delivery, which: str, run: str) -> None:
    """接口 7's 请求头 promises `Content-Type: application/json`: a receiver that parses by media type (Spring's
    @RequestBody) refuses anything else (415), although the body is JSON. A structured-syntax suffix
    (application/vnd.x+json) is JSON too and accepted by such receivers: a leniency. Content-Encoding is not
    mentioned by the document, but few receivers (Spring included) decode a compressed request: a leniency."""
    ctype = next((v for k, v in d.headers.items() if k.lower() == "content-type"), "")
    kind = callback_media_class(ctype)
    if kind != "json":
        KIT.observe("callback.content-type", ctype or "(none)")
    assert kind != "other", (
        f"callback {which}: Content-Type {ctype or '(none)'!r}; 接口 7's 请求头 promises "
        "Content-Type: application/json (a receiver parsing by media type refuses it)"
    )
    if kind == "json-suffix":
        KIT.lenient(
            "callback Content-Type not application/json",
            f"callbacks sent with Content-Type {ctype!r} (e.g. for {run}); 接口 7's 请求头 says application/json",
        )
    encoding = content_encoding(d)
    if encoding:
        KIT.observe("callback.content-encoding", encoding)
        KIT.lenient(
            "callback Content-Encoding",
            f"callbacks sent with Content-Encoding {encoding!r} (e.g. for {run}); the kit decoded them, but many "
            "receivers (Spring's included) do not decode a compressed request body",
        )


def run_with_callbacks(api: Api, callbacks: Callbacks) -> tuple[str, str, list[Delivery]]:
    plan = api.first_writable_plan()
    instance = api.start(plan, callback_url=callbacks.url)
    return plan, instance, callbacks.wait_for_terminal(instance)


def test_payload_fields_statuses_and_order(kit_api: Api, kit_callbacks: Callbacks) -> None:
    plan, instance, deliveries = run_with_callbacks(kit_api, kit_callbacks)
    assert deliveries, f"run {instance} with callbackUrl: {kit_callbacks.no_callback()}"
    statuses = collapse(check_payloads(deliveries, instance, plan, kit_callbacks.expected_path))
    problem = legal_status_path(statuses)
    assert problem is None, f"callbacks for {instance}: {' -> '.join(statuses)}: {problem}"
    assert statuses[-1] in TERMINAL, f"callbacks for {instance} never reported SUCCESS or FAIL: {statuses}"
    KIT.observe("callback.statuses", " -> ".join(statuses))
    KIT.observe("callback.default-sent", "yes" if "DEFAULT" in statuses else "no")
    again = resent(deliveries, "")
    assert not again, f"callbacks for {instance}: an acknowledged status was sent again: {again}"


def test_callbacks_name_the_plan_that_ran(kit_api: Api, kit_callbacks: Callbacks) -> None:
    """processPlanId is the plan of the run (接口 7: 预案 ID), checked on a plan other than the one the other
    tests use: a server naming one fixed plan is caught. The run need not finish (a plan may pend)."""
    first = kit_api.first_writable_plan()
    others = [p for p in kit_api.writable_plans() if p != first and not policy().can_execute(p)]
    if not others:
        pytest.skip("one plan to execute only: give a second --plan-id to check processPlanId against another plan")
    plan = others[0]
    instance = kit_api.start(plan, callback_url=kit_callbacks.url)
    kit_callbacks.clock.poll(lambda: kit_callbacks.statuses(instance), bool, step=1.0)
    deliveries = kit_callbacks.settled(instance)
    assert deliveries, f"run {instance} of {plan} with callbackUrl: {kit_callbacks.no_callback()}"
    statuses = collapse(check_payloads(deliveries, instance, plan, kit_callbacks.expected_path))
    problem = legal_status_path(statuses)
    assert problem is None, f"callbacks for {instance} of {plan}: {' -> '.join(statuses)}: {problem}"


# Ways a receiver does not acknowledge, as the kit's receiver scripts them. Only a returned SUCCESS acknowledges
# (接口 7): a connection closed without any answer is not one, whatever the target's attempt timeout.
FAILURES: dict[str, tuple[str, Any]] = {
    "HTTP 500": ("status", 500),
    "HTTP 404": ("status", 404),
    "200 with body FAIL": ("body", "FAIL"),
    "connection closed without an answer": ("drop", None),
}


def test_retried_until_acknowledged(kit_api: Api, kit_callbacks: Callbacks) -> None:
    """A receiver failing N <= 3 times and then acknowledging gets exactly N + 1 deliveries of that status."""
    plan = kit_api.first_writable_plan()

    # Every seed meets each way of failing at least once: an ack is the body SUCCESS, not any HTTP 200.
    @kit_settings(max_examples=5)
    @given(failures=st.integers(0, 3), how=st.sampled_from(sorted(FAILURES)))
    @example(failures=2, how="200 with body FAIL")
    @example(failures=1, how="HTTP 500")
    @example(failures=1, how="connection closed without an answer")
    def check(failures: int, how: str) -> None:
        kit_callbacks.drain()
        # The failures go to the first status to arrive, however the target interleaves its retries.
        kit_callbacks.receiver.fail_first_status(FAILURES[how], failures)
        instance = kit_api.start(plan, callback_url=kit_callbacks.url)
        deliveries = kit_callbacks.wait_for_terminal(instance)
        check_payloads(deliveries, instance, plan, kit_callbacks.expected_path)
        runs = attempts_per_status(deliveries)
        assert runs, f"run {instance}: {kit_callbacks.no_callback()}"
        first_status = runs[0][0]
        attempts = kit_callbacks.await_count(instance, first_status, failures + 1)
        deliveries = kit_callbacks.for_instance(instance)
        runs = attempts_per_status(deliveries)
        if attempts > 1:
            RETRIED_IN_TIME.append(True)
        label = f"run {instance}: receiver failed {failures}x ({how}) then acknowledged"
        if attempts < failures + 1 and _incomplete(kit_callbacks, runs):
            return
        if failures == 3 and attempts == 3:
            KIT.observe("callback.attempts", "3")
        else:
            assert attempts == failures + 1, (
                f"{label}: {first_status} delivered {attempts}x, expected {failures + 1}"
                + (" — failed callbacks are never retried" if attempts == 1 and failures else "")
            )
        others = resent(deliveries, first_status)
        assert not others, f"{label}: acknowledged statuses were delivered again: {others}"

    check()


def test_never_acknowledged_gives_up_after_three_retries(kit_api: Api, kit_callbacks: Callbacks) -> None:
    plan = kit_api.first_writable_plan()
    kit_callbacks.receiver.fail(status=500)  # every attempt fails
    instance = kit_api.start(plan, callback_url=kit_callbacks.url)
    deliveries = kit_callbacks.wait_for_terminal(instance)
    check_payloads(deliveries, instance, plan, kit_callbacks.expected_path)
    runs = attempts_per_status(deliveries)
    assert runs, f"run {instance}: {kit_callbacks.no_callback()}"
    status = runs[0][0]
    attempts = kit_callbacks.await_count(instance, status, MAX_ATTEMPTS)
    deliveries = kit_callbacks.for_instance(instance)
    runs = attempts_per_status(deliveries)
    KIT.observe("callback.order", "retries interleaved with later statuses" if interleaved(deliveries) else "serial")
    if attempts > 1:
        RETRIED_IN_TIME.append(True)
    if attempts < MAX_ATTEMPTS - 1 and _incomplete(kit_callbacks, runs):
        return
    assert attempts > 1, (
        f"run {instance}: {status} was delivered once and never retried although never acknowledged"
        + ("" if kit_callbacks.clock.controlled else f" (waited {_real_wait_text()})")
    )
    assert attempts <= MAX_ATTEMPTS, (
        f"run {instance}: {status} delivered {attempts}x: retried more than 3 times (at most {MAX_ATTEMPTS} attempts)"
    )
    if attempts == MAX_ATTEMPTS - 1:
        KIT.observe("callback.attempts", "3")
    else:
        assert attempts == MAX_ATTEMPTS, f"run {instance}: {status} delivered {attempts}x, expected {MAX_ATTEMPTS}"
        KIT.observe("callback.attempts", "4")
    backoff = _backoff(kit_callbacks, instance, status)
    if backoff:
        KIT.observe("callback.backoff", backoff)
    for later_status, n in runs[1:]:
        assert n <= MAX_ATTEMPTS, f"run {instance}: {later_status} delivered {n}x, more than {MAX_ATTEMPTS} attempts"
    KIT.observe("callback.after-give-up", "later statuses sent" if len(runs) > 1 else "nothing more sent")


def _incomplete(callbacks: Callbacks, runs: list[tuple[str, int]]) -> bool:
    """On a real clock, a retry sequence still open when --wait-seconds ran out (nothing after the failed status
    arrived) proves nothing either way: observed as inconclusive. The target clock is pushed past any backoff."""
    if any(n > 1 for _, n in runs):
        RETRIED_IN_TIME.append(True)  # this target's retries do come within the wait
    if callbacks.clock.controlled or len(runs) > 1 or RETRIED_IN_TIME:
        return False  # the clock was driven, the target moved on, or its retries were seen within the wait
    wait = KIT.config.wait_seconds if KIT.config else None
    KIT.observe(
        "callback.attempts",
        f"inconclusive: {runs[0][0]} still retrying after --wait-seconds {wait:g} "
        f"({runs[0][1]} attempts seen); a longer --wait-seconds decides",
    )
    return True


def test_terminal_status_retried_until_acknowledged(kit_api: Api, kit_callbacks: Callbacks) -> None:
    """SUCCESS/FAIL are callbacks like the others: a receiver failing twice gets the terminal status three times."""
    plan = kit_api.first_writable_plan()
    for status in sorted(TERMINAL):
        kit_callbacks.receiver.fail_status(status, times=2)
    instance = kit_api.start(plan, callback_url=kit_callbacks.url)
    deliveries = kit_callbacks.wait_for_terminal(instance)
    check_payloads(deliveries, instance, plan, kit_callbacks.expected_path)
    runs = attempts_per_status(deliveries)
    terminal = [s for s, _ in runs if s in TERMINAL]
    assert terminal, f"run {instance}: no terminal callback arrived: {runs}{kit_callbacks.no_callback(prefix='; ')}"
    status = terminal[0]
    # Nothing follows a terminal status: its retries are waited for (on a real clock up to --wait-seconds).
    attempts = kit_callbacks.await_count(instance, status, 3)
    if attempts < 3 and _incomplete(kit_callbacks, [(status, attempts)]):
        return
    assert attempts == 3, (
        f"run {instance}: the receiver failed {status} twice then acknowledged: delivered "
        f"{attempts}x, expected 3" + (" — terminal statuses are never retried" if attempts == 1 else "")
    )


def _real_wait_text() -> str:
    wait = KIT.config.wait_seconds if KIT.config else 30.0
    return f"--wait-seconds {wait:g} for a retry"


def _backoff(callbacks: Callbacks, instance: str, status: str) -> str | None:
    """Seconds between the attempts of one status: target-clock times from dpa-mock's callback ledger when the
    kit drives the clock, else the real arrival times at the receiver (rounded to 0.1 s)."""
    if not callbacks.clock.controlled:
        arrivals = [
            d.at
            for d in callbacks.for_instance(instance)
            if isinstance(d.json, dict) and d.json.get("status") == status
        ]
        gaps = [round(b - a, 1) for a, b in itertools.pairwise(arrivals)]
        return ", ".join(f"{g:g}" for g in gaps) + " s" if gaps else None
    try:
        ledger = callbacks.clock.target.admin_call("GET", "/__admin/callbacks", params={"planInstanceId": instance})
    except (AdminError, requests.RequestException):  # the ledger is a courtesy of dpa-mock
        return None
    for delivery in ledger if isinstance(ledger, list) else []:
        if isinstance(delivery, dict) and delivery.get("status") == status:
            times = [a.get("at") for a in delivery.get("attempts") or [] if isinstance(a, dict)]
            if len(times) > 1 and all(isinstance(t, (int, float)) for t in times):
                return ", ".join(f"{(b - a) / 1000:g}" for a, b in itertools.pairwise(times)) + " s"
    return None


def test_order_per_instance_with_two_runs(kit_api: Api, kit_callbacks: Callbacks) -> None:
    """Two concurrent runs: each instance's own callbacks follow its lifecycle, whatever the interleaving."""
    plan = kit_api.first_writable_plan()
    first = kit_api.start(plan, callback_url=kit_callbacks.url)
    second = kit_api.start(plan, callback_url=kit_callbacks.url)
    kit_callbacks.wait_for_terminal(second)
    for instance in (first, second):
        deliveries: list[Any] = kit_callbacks.settled(instance)
        statuses = collapse(check_payloads(deliveries, instance, plan, kit_callbacks.expected_path))
        problem = legal_status_path(statuses)
        assert problem is None, f"callbacks for {instance}: {' -> '.join(statuses)}: {problem}"
        assert statuses and statuses[-1] in TERMINAL, f"callbacks for {instance} did not reach a terminal status"
