"""Regression tests of the kit's callback judging against round-2 false alarms and misses (kit-adversary2)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any, cast

import pytest
import requests

from contract_tests.plugins.clock import KitClock
from contract_tests.plugins.receiver import DROPPED, Callbacks, KitReceiver, content_encoding, decoded_body
from contract_tests.support.callbacks import attempts_per_status, interleaved, resent
from dpa_client.document import callback_media_class
from mock_server.testing.receiver import Delivery


def _d(status: str, instance: str = "in1", **headers: str) -> Delivery:
    body = json.dumps({"planInstanceId": instance, "processPlanId": "p", "status": status}).encode()
    return Delivery(0.0, "/callback", {"Content-Type": "application/json", **headers}, body, 200, "SUCCESS")


def _seq(*statuses: str) -> list[Delivery]:
    return [_d(s) for s in statuses]


def test_retries_after_a_later_status_still_count_as_attempts() -> None:
    # f-callback-independent: DEFAULT failed twice, retried in the background while RUNNING and SUCCESS went out.
    deliveries = _seq("DEFAULT", "RUNNING", "DEFAULT", "SUCCESS", "DEFAULT")
    assert attempts_per_status(deliveries) == [("DEFAULT", 3), ("RUNNING", 1), ("SUCCESS", 1)]
    assert interleaved(deliveries)
    assert resent(deliveries, "DEFAULT") == []


def test_serial_retries_are_not_interleaved() -> None:
    deliveries = _seq("DEFAULT", "DEFAULT", "RUNNING", "SUCCESS")
    assert attempts_per_status(deliveries) == [("DEFAULT", 2), ("RUNNING", 1), ("SUCCESS", 1)]
    assert not interleaved(deliveries)


def test_a_status_entered_twice_is_not_a_repeat_but_a_resend_is() -> None:
    assert resent(_seq("DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"), "") == []
    assert resent(_seq("DEFAULT", "RUNNING", "RUNNING", "SUCCESS"), "") == [("RUNNING", 2)]
    # The retried status is left out, so its interleaved retries do not split another status's entries.
    assert resent(_seq("DEFAULT", "RUNNING", "DEFAULT", "RUNNING", "SUCCESS"), "DEFAULT") == [("RUNNING", 2)]


@pytest.mark.parametrize(
    "content_type, kind",
    [
        ("application/json", "json"),
        ("application/json;charset=UTF-8", "json"),
        ("Application/JSON ; charset=utf-8", "json"),
        ("application/vnd.dpa.callback+json", "json-suffix"),
        ("text/plain;charset=UTF-8", "other"),
        ("text/json", "other"),
        ("application/x-www-form-urlencoded", "other"),
        ("", "other"),
    ],
)
def test_callback_media_types(content_type: str, kind: str) -> None:
    assert callback_media_class(content_type) == kind


def test_compressed_bodies_are_decoded() -> None:
    raw = b'{"status": "RUNNING"}'
    assert decoded_body(gzip.compress(raw), "gzip") == raw
    assert decoded_body(gzip.compress(raw)) == raw  # sniffed, for the answer script
    assert decoded_body(zlib.compress(raw), "deflate") == raw
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decoded_body(deflater.compress(raw) + deflater.flush(), "deflate") == raw
    assert decoded_body(b"\x1f\x8bnot gzip", "gzip") == b"\x1f\x8bnot gzip"  # undecodable: kept as it came
    assert decoded_body(raw, "br") == raw
    assert content_encoding(_d("RUNNING", **{"Content-Encoding": "gzip"})) == "gzip"
    assert content_encoding(_d("RUNNING", **{"Content-Encoding": "identity"})) == ""


@pytest.fixture
def receiver() -> Any:
    with KitReceiver() as r:
        yield r


def _post(receiver: KitReceiver, status: str, **kw: Any) -> requests.Response:
    body = {"planInstanceId": "in1", "processPlanId": "p", "status": status}
    return requests.post(receiver.url, json=body, timeout=5, **kw)


def test_a_gzip_callback_is_recorded_decoded(receiver: KitReceiver) -> None:
    raw = json.dumps({"planInstanceId": "in1", "processPlanId": "p", "status": "DEFAULT"}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = requests.post(receiver.url, data=gzip.compress(raw), headers=headers, timeout=5)
    assert answer.text == "SUCCESS"
    (delivery,) = receiver.for_instance("in1")
    assert delivery.json["status"] == "DEFAULT" and content_encoding(delivery) == "gzip"


def test_drop_closes_the_connection_without_an_answer(receiver: KitReceiver) -> None:
    receiver.drop(times=1)
    with pytest.raises(requests.ConnectionError):
        _post(receiver, "DEFAULT")
    assert _post(receiver, "DEFAULT").text == "SUCCESS"  # then the default: acknowledged
    first, second = receiver.for_instance("in1")
    assert first.answered_body == DROPPED and second.answered_body == "SUCCESS"


def test_failures_go_to_the_first_status_only(receiver: KitReceiver) -> None:
    # An interleaving sender: the later status must not consume the failures meant for the first one.
    receiver.fail_first_status(("status", 500), 2)
    assert _post(receiver, "DEFAULT").status_code == 500
    assert _post(receiver, "RUNNING").text == "SUCCESS"
    assert _post(receiver, "DEFAULT").status_code == 500
    assert _post(receiver, "DEFAULT").text == "SUCCESS"
    receiver.clear()
    receiver.fail_first_status(("drop", None), 1)
    with pytest.raises(requests.ConnectionError):
        _post(receiver, "RUNNING")
    assert _post(receiver, "RUNNING").text == "SUCCESS"


def test_undecodable_deliveries_are_named_not_called_missing(receiver: KitReceiver) -> None:
    callbacks = Callbacks(receiver, receiver.url, cast(KitClock, None))  # no_callback reads the receiver only
    assert callbacks.no_callback() == "no callback arrived" and callbacks.no_callback(prefix="; ") == ""
    headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
    requests.post(receiver.url, data=b"\x0b\x02\x80{}\x03", headers=headers, timeout=5)
    message = callbacks.no_callback()
    assert message.startswith("no readable callback: 1 deliveries") and "Content-Encoding 'br'" in message
