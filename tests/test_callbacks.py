"""Interface 7: status callbacks to a real receiver — order, payload, ack rules, retries, backoff, give-up."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests

from mock_server.domain.callbacks import is_ack
from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import free_port
from tests.plugins.emulator import Api
from tests.plugins.engine import START, PinnedApps, ScriptedTransport, api_for, ledger, ms, statuses

T0 = ms(START)


@pytest.fixture
def capi(pinned: PinnedApps) -> Api:
    return api_for(pinned())


def count(n: int) -> Any:
    return lambda deliveries: len(deliveries) >= n


def verdicts(delivery: dict[str, Any]) -> list[str]:
    return [a["verdict"] for a in delivery["attempts"]]


def gaps(delivery: dict[str, Any]) -> list[int]:
    times = [a["at"] for a in delivery["attempts"]]
    return [b - a for a, b in itertools.pairwise(times)]


def test_success_run_delivers_default_running_success_in_order(capi: Api, receiver: CallbackReceiver) -> None:
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    # DEFAULT is due at once: the engine sends it without any clock advance.
    assert receiver.wait_for(count(1), timeout=5), "DEFAULT was not delivered promptly"
    capi.advance(5)
    assert receiver.wait_for(count(3), timeout=5)
    got = receiver.deliveries
    assert statuses(got) == ["DEFAULT", "RUNNING", "SUCCESS"]
    for delivery, status in zip(got, ["DEFAULT", "RUNNING", "SUCCESS"], strict=True):
        assert delivery.json == {"planInstanceId": instance, "processPlanId": "acf42dd3", "status": status}
        assert delivery.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"
        assert delivery.path == "/callback"
    entries = ledger(capi.client, instance)
    assert [(d["status"], d["state"], verdicts(d)) for d in entries] == [
        ("DEFAULT", "acked", ["ack"]),
        ("RUNNING", "acked", ["ack"]),
        ("SUCCESS", "acked", ["ack"]),
    ]
    assert [d["attempts"][0]["at"] - T0 for d in entries] == [0, 200, 1500]  # sent when the status is entered
    assert len(receiver.deliveries) == 3  # nothing more arrives later


@pytest.mark.parametrize(
    "plan_id,expected",
    [
        ("c3d9f4e5", ["DEFAULT", "RUNNING", "FAIL"]),
        ("d4a8e6f1", ["DEFAULT", "RUNNING", "PENDING"]),
    ],
)
def test_fail_and_pending_runs_deliver_their_statuses(
    capi: Api, receiver: CallbackReceiver, plan_id: str, expected: list[str]
) -> None:
    instance = capi.start(capi.login(), plan_id, callbackUrl=receiver.url)
    capi.advance(60)
    assert receiver.wait_for(count(3), timeout=5)
    assert statuses(receiver.deliveries) == expected
    assert all(d.json["planInstanceId"] == instance for d in receiver.deliveries)


def test_resumed_run_delivers_running_again_then_success(capi: Api, receiver: CallbackReceiver) -> None:
    instance = capi.start(capi.login(), "d4a8e6f1", callbackUrl=receiver.url)
    capi.advance(60)
    capi.client.post(f"/__admin/runs/{instance}/resume")
    capi.advance(5)
    assert receiver.wait_for(count(5), timeout=5)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"]


def test_no_callback_url_means_no_delivery(capi: Api) -> None:
    instance = capi.start(capi.login())
    capi.advance(5)
    assert ledger(capi.client, instance) == []


def test_receiver_failing_twice_gets_three_attempts_then_the_rest(capi: Api, receiver: CallbackReceiver) -> None:
    receiver.fail(times=2)
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    capi.advance(5)
    assert receiver.wait_for(count(5), timeout=5)
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 3 + ["RUNNING", "SUCCESS"]
    default, running, success = ledger(capi.client, instance)
    assert verdicts(default) == ["retry", "retry", "ack"] and default["state"] == "acked"
    assert [a["httpStatus"] for a in default["attempts"]] == [500, 500, 200]
    assert gaps(default) == [100, 200]  # callback_backoff (0.1, 0.2, 0.4)
    # RUNNING was entered at +200 ms but waits for DEFAULT's ack at +300 ms: order per instance is kept.
    assert running["attempts"][0]["at"] - T0 == 300
    assert verdicts(running) == ["ack"] and verdicts(success) == ["ack"]


def test_receiver_failing_four_times_gives_up_and_the_next_status_still_goes(
    capi: Api, receiver: CallbackReceiver
) -> None:
    receiver.fail(times=4)
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    capi.advance(5)
    assert receiver.wait_for(count(6), timeout=5)
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 4 + ["RUNNING", "SUCCESS"]
    default, running, success = ledger(capi.client, instance)
    assert default["state"] == "gave_up"
    assert verdicts(default) == ["retry", "retry", "retry", "gave_up"]
    assert gaps(default) == [100, 200, 400]
    assert running["attempts"][0]["at"] - T0 == 700  # after the give-up
    assert (running["state"], success["state"]) == ("acked", "acked")


def test_receiver_that_never_acks_gets_exactly_four_attempts_per_status(capi: Api, receiver: CallbackReceiver) -> None:
    receiver.fail()
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    capi.advance(10)
    assert receiver.wait_for(count(12), timeout=5)
    capi.advance(60)
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 4 + ["RUNNING"] * 4 + ["SUCCESS"] * 4
    entries = ledger(capi.client, instance)
    assert [(d["status"], d["state"], len(d["attempts"])) for d in entries] == [
        ("DEFAULT", "gave_up", 4),
        ("RUNNING", "gave_up", 4),
        ("SUCCESS", "gave_up", 4),
    ]


@pytest.mark.parametrize("text", ["SUCESS", "success", "OK", "SUCCESS!", "", "SUCCESS SUCCESS", '"SUCCESS"'])
def test_a_wrong_body_is_not_an_ack(capi: Api, receiver: CallbackReceiver, text: str) -> None:
    receiver.body(text, times=1)
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    capi.advance(5)
    assert receiver.wait_for(count(4), timeout=5)
    assert statuses(receiver.deliveries) == ["DEFAULT", "DEFAULT", "RUNNING", "SUCCESS"]
    default = ledger(capi.client, instance)[0]
    assert verdicts(default) == ["retry", "ack"]
    assert (default["attempts"][0]["httpStatus"], default["attempts"][0]["body"]) == (200, text)


@pytest.mark.parametrize("text", [" SUCCESS\n", "SUCCESS", "\tSUCCESS  ", "SUCCESS\r\n"])
def test_success_with_surrounding_whitespace_is_an_ack(capi: Api, receiver: CallbackReceiver, text: str) -> None:
    receiver.body(text)
    instance = capi.start(capi.login(), callbackUrl=receiver.url)
    capi.advance(5)
    assert receiver.wait_for(count(3), timeout=5)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"]
    assert all(verdicts(d) == ["ack"] for d in ledger(capi.client, instance))


@pytest.mark.parametrize(
    "answer,acked",
    [
        ("500:SUCCESS", False),
        ("404:SUCCESS", False),
        ("302:SUCCESS", False),
        ("201:SUCCESS", True),
        ("204:", False),
        ("200:SUCCESS", True),
    ],
)
def test_only_a_2xx_with_success_body_acks(pinned: PinnedApps, answer: str, acked: bool) -> None:
    transport = ScriptedTransport(lambda instance, status, n: answer if n == 0 else "ack")
    api = api_for(pinned(transport=transport))
    instance = api.start(api.login(), callbackUrl="http://127.0.0.1:9/cb")
    api.advance(5)
    default = ledger(api.client, instance)[0]
    assert verdicts(default) == (["ack"] if acked else ["retry", "ack"])
    assert default["attempts"][0]["httpStatus"] == int(answer.split(":")[0])


def test_is_ack_rules() -> None:
    assert is_ack(200, "SUCCESS") and is_ack(299, " SUCCESS\n")
    assert not is_ack(None, "SUCCESS") and not is_ack(500, "SUCCESS") and not is_ack(300, "SUCCESS")
    assert not is_ack(200, None) and not is_ack(200, "SUCESS") and not is_ack(200, "success")


def test_a_receiver_timeout_is_a_failed_attempt(pinned: PinnedApps, receiver: CallbackReceiver) -> None:
    api = api_for(pinned(callback_timeout=0.3))
    receiver.timeout(1, times=1)
    instance = api.start(api.login(), callbackUrl=receiver.url)
    api.advance(5)
    default = ledger(api.client, instance)[0]
    assert verdicts(default) == ["retry", "ack"]
    first = default["attempts"][0]
    assert first["httpStatus"] is None and first["error"] and "timed out" in first["error"].lower()
    assert [d["status"] for d in ledger(api.client, instance)] == ["DEFAULT", "RUNNING", "SUCCESS"]
    assert receiver.wait_for(count(4), timeout=5)  # the slow answer is recorded once it is written


def test_refused_connection_is_attempted_four_times_with_the_error(capi: Api) -> None:
    url = f"http://127.0.0.1:{free_port()}/callback"  # nothing listens there
    instance = capi.start(capi.login(), callbackUrl=url)
    capi.advance(10)
    entries = ledger(capi.client, instance)
    assert [d["status"] for d in entries] == ["DEFAULT", "RUNNING", "SUCCESS"]
    for delivery in entries:
        assert delivery["state"] == "gave_up"
        assert verdicts(delivery) == ["retry", "retry", "retry", "gave_up"]
        assert all(a["httpStatus"] is None and a["error"] and a["url"] == url for a in delivery["attempts"])
        assert gaps(delivery) == [100, 200, 400]


def test_callback_statuses_setting_restricts_what_is_sent(pinned: PinnedApps, receiver: CallbackReceiver) -> None:
    api = api_for(pinned(callback_statuses=("SUCCESS", "FAIL")))
    headers = api.login()
    ok = api.start(headers, callbackUrl=receiver.url)
    failed = api.start(headers, "c3d9f4e5", callbackUrl=receiver.url)
    api.advance(10)
    assert receiver.wait_for(count(2), timeout=5)
    api.advance(10)
    assert sorted((d.json["planInstanceId"], d.json["status"]) for d in receiver.deliveries) == sorted(
        [(ok, "SUCCESS"), (failed, "FAIL")]
    )
    assert [d["status"] for d in ledger(api.client)] == ["SUCCESS", "FAIL"]


def test_backoff_follows_the_callback_backoff_setting(pinned: PinnedApps, receiver: CallbackReceiver) -> None:
    api = api_for(pinned(callback_backoff=(0.5, 1.0, 2.0)))
    receiver.fail()
    instance = api.start(api.login(), callbackUrl=receiver.url)
    assert receiver.wait_for(count(1), timeout=5)
    api.advance(0.499)
    assert len(ledger(api.client, instance)[0]["attempts"]) == 1  # the retry is not due yet
    api.advance(0.002)
    assert len(ledger(api.client, instance)[0]["attempts"]) == 2
    api.advance(30)
    default = ledger(api.client, instance)[0]
    assert gaps(default) == [500, 1000, 2000] and default["state"] == "gave_up"


def test_callback_retries_setting_bounds_the_attempts(pinned: PinnedApps, receiver: CallbackReceiver) -> None:
    api = api_for(pinned(callback_retries=1))
    receiver.fail()
    instance = api.start(api.login(), callbackUrl=receiver.url)
    api.advance(10)
    assert [verdicts(d) for d in ledger(api.client, instance)] == [["retry", "gave_up"]] * 3
    assert receiver.wait_for(count(6), timeout=5)
    assert len(receiver.deliveries) == 6


def test_instances_are_delivered_independently(capi: Api, receiver: CallbackReceiver) -> None:
    """One instance's failing deliveries do not hold back another's."""
    headers = capi.login()
    receiver.fail()
    with CallbackReceiver() as other:
        slow = capi.start(headers, callbackUrl=receiver.url)
        fast = capi.start(headers, callbackUrl=other.url)
        capi.advance(10)
        assert receiver.wait_for(count(12), timeout=5) and other.wait_for(count(3), timeout=5)
        assert statuses(receiver.deliveries) == ["DEFAULT"] * 4 + ["RUNNING"] * 4 + ["SUCCESS"] * 4
        assert statuses(other.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"]
    assert {d.json["planInstanceId"] for d in receiver.deliveries} == {slow}
    # The other instance's statuses went out when entered, not queued behind the first one's retries.
    assert [d["attempts"][0]["at"] - T0 for d in ledger(capi.client, fast)] == [0, 200, 1500]


def test_real_clock_retries_follow_wall_time(make_app: Any, receiver: CallbackReceiver) -> None:
    """With the real clock nobody advances time: the engine's ticker sends retries and later statuses itself."""
    api = api_for(make_app(clock="real"))
    receiver.fail(times=2)
    instance = api.start(api.login(), callbackUrl=receiver.url)
    assert receiver.wait_for(count(5), timeout=5), statuses(receiver.deliveries)
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 3 + ["RUNNING", "SUCCESS"]
    default = ledger(api.client, instance)[0]
    assert verdicts(default) == ["retry", "retry", "ack"]
    assert [g >= b for g, b in zip(gaps(default), (100, 200), strict=True)] == [True, True]  # never early


def test_a_stopped_receiver_has_answered_everything_and_frees_its_port() -> None:
    receiver = CallbackReceiver().start()
    url = receiver.url
    for n in range(3):  # one connection each, as the emulator's pool would open them
        answer = requests.post(url, json={"n": n}, timeout=5)
        assert (answer.status_code, answer.text) == (200, "SUCCESS")
    receiver.stop()
    assert [p["n"] for p in receiver.payloads()] == [0, 1, 2]
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={}, timeout=2)
    receiver.stop()  # a second stop is harmless
    CallbackReceiver().stop()  # so is stopping one never started
