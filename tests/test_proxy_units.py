"""The proxy's judges, relay rewriting and redaction, without sockets."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mock_server.proxy.callbacks import CallbackJudge, Relay, Relays
from mock_server.proxy.judge import Router, judge_request, judge_response
from mock_server.proxy.record import Recorder, RecordingError, token_subject
from mock_server.proxy.redact import Secrets
from mock_server.proxy.report import markdown

JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": "Bearer a.b.c"}


def _kinds(findings: list[Any]) -> set[tuple[str, str, str]]:
    return {(f.verdict, f.side, f.check) for f in findings}


def _callback(
    judge: CallbackJudge,
    status: str,
    answer: tuple[int, bytes] = (200, b"SUCCESS"),
    instance: str = "in1",
    relay: Relay | None = None,
    headers: dict[str, str] = JSON,
) -> set[tuple[str, str, str]]:
    raw = json.dumps({"planInstanceId": instance, "processPlanId": "p1", "status": status}).encode()
    found, _ = judge.judge(relay, headers, raw, answer[0], answer[1], "")
    return _kinds(found)


# -- callbacks ---------------------------------------------------------------------------------------------
def test_a_clean_lifecycle_with_pending_and_retries_is_clean() -> None:
    judge = CallbackJudge()
    for status in ("DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"):
        assert _callback(judge, status) == set()
    assert _callback(judge, "DEFAULT", (500, b"no"), instance="in2") == {("observation", "client", "callback-ack")}
    assert _callback(judge, "DEFAULT", instance="in2") == set()  # the retry, acknowledged
    assert _callback(judge, "RUNNING", instance="in2") == set()
    assert judge.sequences() == {
        "in1": ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"],
        "in2": ["DEFAULT", "RUNNING"],
    }


@pytest.mark.parametrize(
    "failed_attempts, verdict", [(1, "violation"), (2, "violation"), (3, "observation"), (4, None)]
)
def test_attempts_of_a_status_never_acknowledged(failed_attempts: int, verdict: str | None) -> None:
    judge = CallbackJudge()
    for _ in range(failed_attempts):
        _callback(judge, "DEFAULT", (500, b"FAIL"))
    # Moving on says nothing yet: a retry may still come after later statuses (D13). The session's end judges.
    assert _callback(judge, "RUNNING") == set()
    settled = judge.settle()
    assert _kinds(settled) == (set() if verdict is None else {(verdict, "server", "callback-retries")})
    assert all("in1 DEFAULT" in f.message for f in settled)
    assert judge.settle() == []  # judged once, however often the report is asked for


def test_retries_interleaved_with_later_statuses_count_for_their_status() -> None:
    """D13's example: the receiver sees DEFAULT, RUNNING, DEFAULT, SUCCESS, DEFAULT (DEFAULT acknowledged at
    its 3rd attempt): one observation of the interleaving, no order or retry violation."""
    judge = CallbackJudge()
    seen = [
        _callback(judge, "DEFAULT", (500, b"no")),
        _callback(judge, "RUNNING"),
        _callback(judge, "DEFAULT", (500, b"no")),
        _callback(judge, "SUCCESS"),
        _callback(judge, "DEFAULT"),
    ]
    server = [{k for k in kinds if k[1] == "server"} for kinds in seen]
    assert server == [set(), set(), {("observation", "server", "callback-order")}, set(), set()]
    assert judge.settle() == []
    assert judge.sequences() == {"in1": ["DEFAULT", "RUNNING", "SUCCESS"]}


def test_interleaved_retries_are_counted_across_the_sequence() -> None:
    judge = CallbackJudge()
    for status in ("DEFAULT", "RUNNING", "DEFAULT", "SUCCESS", "DEFAULT", "DEFAULT"):
        last = _callback(judge, status, (500, b"no") if status == "DEFAULT" else (200, b"SUCCESS"))
    assert ("violation", "server", "callback-retries") not in last  # the 4th DEFAULT: 1 + 3 retries
    assert ("violation", "server", "callback-retries") in _callback(judge, "DEFAULT", (500, b"no"))  # the 5th
    assert ("violation", "server", "callback-order") not in _callback(judge, "DEFAULT", (500, b"no"))
    # Retried twice in the background, never acknowledged: given up after 2, though it interleaved.
    other = CallbackJudge()
    for status in ("DEFAULT", "RUNNING", "DEFAULT", "SUCCESS"):
        _callback(other, status, (500, b"no") if status == "DEFAULT" else (200, b"SUCCESS"), instance="in2")
    assert [f.message for f in other.settle()] == [
        "in2 DEFAULT was given up after 2 attempts (the document: 回调重试 3 次)"
    ]


def test_running_after_pending_is_a_new_entry_not_a_retry() -> None:
    judge = CallbackJudge()
    for status in ("DEFAULT", "RUNNING", "PENDING", "RUNNING", "PENDING", "RUNNING"):
        for _ in range(4):  # every entry failed 4 times: each RUNNING is its own 4 attempts, no 5th
            assert ("violation", "server", "callback-retries") not in _callback(judge, status, (500, b"no"))
    assert judge.sequences()["in1"] == ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "PENDING", "RUNNING"]
    assert judge.settle() == []


def test_a_fifth_attempt_is_a_violation() -> None:
    judge = CallbackJudge()
    kinds = [_callback(judge, "DEFAULT", (500, b"FAIL")) for _ in range(5)]
    assert all(("violation", "server", "callback-retries") not in k for k in kinds[:4])
    assert ("violation", "server", "callback-retries") in kinds[4]


def test_order_violations_and_redelivery() -> None:
    judge = CallbackJudge()
    _callback(judge, "RUNNING")
    assert _callback(judge, "DEFAULT") == {("violation", "server", "callback-order")}
    _callback(judge, "SUCCESS", instance="in9")
    assert _callback(judge, "SUCCESS", instance="in9") == {("observation", "server", "callback-retries")}
    assert _callback(judge, "RUNNING", instance="in9") == {("violation", "server", "callback-order")}
    # A status first delivered after the terminal one was acknowledged: the run went backwards, retry or not.
    _callback(judge, "DEFAULT", (500, b"no"), instance="in8")
    _callback(judge, "FAIL", instance="in8")
    assert _callback(judge, "RUNNING", instance="in8") == {("violation", "server", "callback-order")}
    _callback(judge, "SUCCESS", (500, b"no"), instance="in7")
    assert _callback(judge, "FAIL", instance="in7") == {("violation", "server", "callback-order")}


def test_a_first_delivery_out_of_order_while_a_retry_is_owed_is_an_observation() -> None:
    judge = CallbackJudge()
    _callback(judge, "RUNNING", (500, b"no"))
    assert _callback(judge, "DEFAULT") == {("observation", "server", "callback-order")}


@pytest.mark.parametrize(
    "answer, expected",
    [
        ((200, b"success"), {("violation", "client", "callback-ack")}),
        ((200, b"SUCESS"), {("violation", "client", "callback-ack")}),
        ((200, b" SUCCESS\n"), set()),
        ((500, b"SUCCESS"), {("observation", "client", "callback-ack")}),
    ],
)
def test_the_receivers_answer(answer: tuple[int, bytes], expected: set[Any]) -> None:
    assert _callback(CallbackJudge(), "DEFAULT", answer) == expected


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"not json", "not a JSON object"),
        (b'{"planInstanceId": "i", "processPlanId": "p1"}', "status is missing"),
        (b'{"planInstanceId": 5, "processPlanId": "p1", "status": "RUNNING"}', "planInstanceId is int"),
        (b'{"planInstanceId": "i", "processPlanId": "p1", "status": "STARTED"}', "'STARTED' is not one of"),
    ],
)
def test_bad_payloads(raw: bytes, problem: str) -> None:
    found, _ = CallbackJudge().judge(None, JSON, raw, 200, b"SUCCESS", "")
    assert [f.check for f in found] == ["callback-payload"] and problem in found[0].message


def test_payload_plan_must_be_the_relayed_ones_and_json() -> None:
    relay = Relay("http://me/cb", "other", "executePlan")
    assert _callback(CallbackJudge(), "DEFAULT", relay=relay) == {("violation", "server", "callback-payload")}


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("application/json", set()),
        ("Application/JSON; charset=UTF-8", set()),
        ("text/plain", {("violation", "server", "callback-content-type")}),
        ("text/plain;charset=UTF-8", {("violation", "server", "callback-content-type")}),
        ("application/x-www-form-urlencoded", {("violation", "server", "callback-content-type")}),
        ("", {("violation", "server", "callback-content-type")}),
        ("application/vnd.dpa+json", {("leniency", "server", "callback-content-type")}),
    ],
)
def test_the_callbacks_media_type(content_type: str, expected: set[Any]) -> None:
    """D13: interface 7's 请求头 names application/json; the payload is judged as JSON whatever the header."""
    headers = {"Content-Type": content_type} if content_type else {}
    assert _callback(CallbackJudge(), "DEFAULT", headers=headers) == expected


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_a_compressed_callback_is_a_leniency_and_still_judged(encoding: str) -> None:
    raw = json.dumps({"planInstanceId": "i", "processPlanId": "p1", "status": "RUNNING"}).encode()
    if encoding == "gzip":
        body = gzip.compress(raw)
    else:
        packer = zlib.compressobj(wbits=-15 if encoding == "deflate-raw" else 15)
        body = packer.compress(raw) + packer.flush()
    judge = CallbackJudge()
    found, payload = judge.judge(None, {**JSON, "Content-Encoding": encoding.split("-")[0]}, body, 200, b"SUCCESS", "")
    assert _kinds(found) == {("leniency", "server", "callback-content-encoding")}
    assert payload == {"planInstanceId": "i", "processPlanId": "p1", "status": "RUNNING"}
    assert judge.sequences() == {"i": ["RUNNING"]}
    bad, _ = CallbackJudge().judge(None, {**JSON, "Content-Encoding": "gzip"}, raw, 200, b"SUCCESS", "")
    assert {("violation", "server", "callback-payload")} <= _kinds(bad)
    unknown, _ = CallbackJudge().judge(None, {**JSON, "Content-Encoding": "br"}, body, 200, b"SUCCESS", "")
    assert _kinds(unknown) == {("violation", "server", "callback-payload")}


# -- relay rewriting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "media, raw",
    [
        ("application/json", b'{"callbackUrl": "http://a/cb", "x": {"callbackUrl": "http://a/cb"}}'),
        ("application/x-www-form-urlencoded", b"callbackUrl=http%3A%2F%2Fa%2Fcb&callbackUrl=http%3A%2F%2Fb"),
    ],
)
def test_an_ambiguous_callback_url_is_left_alone(media: str, raw: bytes) -> None:
    sent, relay = Relays("http://proxy:1").rewrite("executePlan", media, raw, {"callbackUrl": "http://a/cb"}, "p")
    assert (sent, relay) == (raw, None)


# -- vendor exchanges --------------------------------------------------------------------------------------
def test_routes() -> None:
    router = Router()
    assert router.route("POST", "/api/dpa/process//processPlan/opExecutePlanByApi/p1").path_params == {
        "processPlanId": "p1"
    }
    collapsed = router.route("GET", "/api/dpa/process/processPlan/queryPlanRunOutParam")
    assert collapsed.operation is not None and collapsed.operation.id == "queryPlanRunOutParam" and collapsed.collapsed
    assert router.route("DELETE", "/api/dpa/process/processPlan/queryPlanByUserId").wrong_method
    assert router.route("GET", "/api/dpa/process///processPlan/queryPlanRunOutParam").operation is None


def _exchange(
    method: str,
    path: str,
    status: int,
    answer: Any,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    policy: bool = True,
) -> set[tuple[str, str, str]]:
    """The kinds of finding on one exchange (`policy=False`: without the HTTP-status-policy observations)."""
    route = Router().route(method, path)
    request = judge_request(route, method, path, query, {**JSON, **AUTH, **(headers or {})}, body)
    raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    server, _ = judge_response(route, request, status, raw)
    return {k for k in _kinds(request.findings + server) if policy or k[2] not in ("http-status-policy", "error-data")}


PLAN = {
    "processPlanId": "p",
    "title": "t",
    "status": "DEFAULT",
    "stepNums": 1,
    "version": 0,
    "createTime": 1626944836628,
    "createUser": "u",
    "updateTime": 1626944836628,
    "updateUser": "",
    "extra": [1],
}
LIST = "/api/dpa/process/processPlan/queryPlanByUserId"


@pytest.mark.parametrize(
    "status, answer, expected",
    [
        (200, {"code": 200, "message": "success", "data": [PLAN], "traceId": "x"}, set()),
        (
            200,
            {"code": 403, "message": "身份验证失败"},
            {("observation", "server", "http-status-policy"), ("observation", "server", "error-data")},
        ),
        (403, {"code": 403, "message": "forbidden", "data": None}, {("observation", "server", "http-status-policy")}),
        (200, {"code": 200, "message": "OK", "data": []}, {("observation", "server", "success-message")}),
        (
            500,
            {"code": 403, "message": "x", "data": None},
            {("violation", "server", "http-status"), ("violation", "server", "server-error")},
        ),
        (
            500,
            {"code": 500, "message": "boom", "data": None},
            {("violation", "server", "server-error"), ("observation", "server", "http-status-policy")},
        ),
        (503, {"code": 503, "message": "busy", "data": None}, {("observation", "server", "http-status-policy")}),
        (200, {"code": 200, "message": "success", "data": None}, {("violation", "server", "envelope")}),
        (200, {"code": 0, "message": "ok", "data": []}, {("violation", "server", "envelope")}),
        (200, {"code": 200, "data": []}, {("violation", "server", "envelope")}),
        (
            200,
            {"code": 200, "message": "success", "data": [{**PLAN, "createTime": "1626944836628"}]},
            {("violation", "server", "fields")},
        ),
        (
            200,
            {"code": 200, "message": "success", "data": [{**PLAN, "createTime": 1626944836}]},
            {("violation", "server", "fields")},
        ),
        (500, b"<html>Whitelabel Error Page</html>", {("violation", "server", "envelope")}),
    ],
)
def test_list_plans_answers(status: int, answer: Any, expected: set[Any]) -> None:
    assert _exchange("GET", LIST, status, answer) == expected


def test_unknown_paths_and_methods() -> None:
    assert _exchange("GET", "/api/other", 404, b"Not Found") == {("observation", "client", "unknown-path")}
    assert _exchange("GET", "/api/other", 200, b"a file") == {("observation", "client", "unknown-path")}
    assert _exchange("GET", "/api/other", 500, b"<html>") == {
        ("observation", "client", "unknown-path"),
        ("violation", "server", "envelope"),
    }
    assert _exchange("DELETE", LIST, 405, {"code": 404, "message": "no", "data": None}) == {
        ("violation", "client", "method")
    }
    assert _exchange("DELETE", LIST, 500, {"code": 404, "message": "no", "data": None}) == {
        ("violation", "client", "method")
    }  # a wrong method is judged only for success
    assert _exchange("DELETE", LIST, 200, {"code": 200, "message": "", "data": []}) == {
        ("violation", "client", "method"),
        ("leniency", "server", "method"),
    }


def test_requests_breaking_the_document() -> None:
    token = "/api/dp/auth/oauth/token"
    ok = {"code": 200, "message": "", "data": {"token_type": "Bearer", "access_token": "a.b.c"}}
    body = json.dumps({"code": "C", "client_id": "i", "client_secret": "s"}).encode()
    assert _exchange("POST", token, 200, ok, body=body) == {
        ("violation", "client", "body"),
        ("leniency", "server", "accepted"),
    }
    execute = "/api/dpa/process//processPlan/opExecutePlanByApi/p1"
    started = {"code": 200, "message": "success", "data": [{"processPlanId": "p1", "planInstanceId": "i"}]}
    assert _exchange("POST", execute, 200, started, body=b'{"processPlanId": "p2"}') >= {
        ("violation", "client", "body")
    }
    assert _exchange(
        "POST", execute, 200, started, body=b'{"processPlanId": "p1"}', headers={"Content-Type": "text/plain"}
    ) >= {("violation", "client", "content-type")}
    assert _exchange(
        "POST", execute, 400, {"code": 400, "message": "x"}, body=b'{"processPlanId": "p1",', policy=False
    ) == {("violation", "client", "body")}
    out = "/api/dpa/process//processPlan/queryPlanRunOutParam"
    assert _exchange("GET", out, 400, {"code": 400, "message": "x"}, query="processPlanId=p1", policy=False) == {
        ("violation", "client", "parameters")
    }


# -- secrets -----------------------------------------------------------------------------------------------
def test_secrets_are_masked_everywhere() -> None:
    secrets = Secrets()
    secrets.learn_fields({"data": {"code": "ABCDEFGHIJ", "access_token": "eyJhbGciOi.eyJzdWIi.sig"}})
    assert secrets.text("code ABCDEFGHIJ was reused") == "code *** was reused"
    body = b'{"code": "XYZXYZXYZ", "client_secret": "s3cr3t!", "grant_type": "authorization_code"}'
    shown = secrets.body(body, "application/json")
    assert "XYZXYZXYZ" not in shown and "s3cr3t!" not in shown and "authorization_code" in shown
    curl = secrets.curl(
        "POST",
        "http://user:pw@h/x",
        {"Authorization": "Bearer eyJhbGciOi.eyJzdWIi.sig", "Content-Type": "application/x-www-form-urlencoded"},
        b"client_secret=abc%2Bdef&code=Q&grant_type=authorization_code",
    )
    assert "pw@" not in curl and "eyJ" not in curl and "abc" not in curl and "Bearer ***" in curl
    assert "grant_type=authorization_code" in curl


def test_deeply_nested_bodies_are_judged_and_shown_without_failing() -> None:
    deep = b"[" * 900 + b"]" * 900
    found = _exchange("POST", "/api/dp/auth/oauth/token", 400, {"code": 400, "message": "x"}, body=deep, policy=False)
    assert found == {("violation", "client", "body")}
    secrets = Secrets()
    secrets.learn_fields(json.loads(deep))
    assert secrets.body(deep, "application/json").startswith("[[[")
    assert secrets.body(b"[" * 100000 + b"]" * 100000, "application/json").startswith("[[[")


# -- the recorder ------------------------------------------------------------------------------------------
def _plan(plan_id: str, steps: int = 1) -> dict[str, Any]:
    return {**PLAN, "processPlanId": plan_id, "stepNums": steps}


def test_the_recorder_merges_users_and_marks_the_failed_node(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    recorder.plans_listed([_plan("p1"), _plan("p2", steps=2)], "U1")
    recorder.plans_listed([_plan("p1")], "U2")
    recorder.models(
        "p1", [{"modelName": "w", "processModelId": "m1", "mapParam": [{"name": "A", "type": "running"}]}], "U1"
    )
    recorder.executed("p1", "in42")
    recorder.outputs(
        "p1",
        "in42",
        [
            {
                "modelName": "w",
                "processModelId": "m1",
                "mapParam": [{"nodeName": "n1", "result": "ok in42"}, {"nodeName": "n2", "result": "boom"}],
            }
        ],
        "U1",
    )
    recorder.status("in42", "FAIL")
    recorder.outputs("p1", "in43", [{"modelName": "w", "processModelId": "m1", "mapParam": []}], "U1")  # fewer: ignored
    plans = {p["processPlanId"]: p for p in yaml.safe_load((tmp_path / "recorded-plans.yaml").read_text())["plans"]}
    assert plans["p1"]["visibleTo"] == ["U1", "U2"] and plans["p2"]["visibleTo"] == ["U1"]
    assert [w["processModelId"] for w in plans["p2"]["workflows"]] == ["p2~step1", "p2~step2"]
    nodes = plans["p1"]["workflows"][0]["nodes"]
    assert [(n["nodeName"], n["result"], n.get("outcome", "succeed")) for n in nodes] == [
        ("n1", "ok ${planInstanceId}", "succeed"),
        ("n2", "boom", "fail"),
    ]
    again = Recorder(tmp_path)  # a second session reads the first one's file
    again.plans_listed([_plan("p1")], None)  # traffic without a readable user: visible to everyone
    plans = {p["processPlanId"]: p for p in yaml.safe_load((tmp_path / "recorded-plans.yaml").read_text())["plans"]}
    assert len(plans) == 2 and "visibleTo" not in plans["p1"] and plans["p1"]["workflows"][0]["nodes"] == nodes


def test_a_recording_that_cannot_be_merged_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recorded-plans.yaml").write_text("plans: [{title: no id}]\n")
    with pytest.raises(RecordingError, match="cannot merge"):
        Recorder(tmp_path)


def test_token_subject() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "U7"}).encode()).decode().rstrip("=")
    assert token_subject(f"Bearer eyJhbGciOiJIUzI1NiJ9.{claims}.sig") == "U7"
    assert token_subject("Bearer opaque") is None and token_subject("") is None


def test_a_retry_overtaking_a_slow_attempt_is_judged_by_arrival() -> None:
    """The platform timed out on attempt 1 and retried while the receiver was still answering attempt 1."""
    judge = CallbackJudge()
    raw = json.dumps({"planInstanceId": "in1", "processPlanId": "p1", "status": "DEFAULT"}).encode()
    first, payload = judge.arrive(None, JSON, raw)
    second, _ = judge.arrive(None, JSON, raw)
    assert first == second == []
    assert judge.answered(payload, 200, b"SUCCESS", "") == []  # the retry, acknowledged at once
    assert judge.answered(payload, 200, b"SUCCESS", "") == []  # the slow first attempt, answered late
    assert _callback(judge, "RUNNING") == set()  # neither "never retried" nor "sent again after the ack"


def test_the_report_folds_one_finding_on_many_exchanges_into_one_row_with_one_curl_line() -> None:
    def finding(exchange: int, check: str, message: str) -> dict[str, Any]:
        return {
            "verdict": "violation",
            "side": "client",
            "check": check,
            "message": message,
            "exchange": exchange,
            "interface": "7",
            "request": f"POST /cb{exchange}",
            "curl": f"curl -X POST http://r/cb{exchange}",
        }

    acks = [finding(i, "callback-ack", "the receiver answered 'success'") for i in range(5, 13)]
    data = {
        "target": "http://t",
        "finished": 0,
        "inFlight": 0,
        "callbackSequences": {},
        "summary": {
            "exchanges": 9,
            "api": 1,
            "callbacks": 8,
            "other": 0,
            "violations": 10,
            "leniencies": 0,
            "observations": 0,
            "keptExchanges": 9,
            "keptFindings": 10,
        },
        "findings": [*acks, finding(20, "double-slash", "single slash"), finding(20, "body", "bad body")],
    }
    lines = markdown(data).splitlines()
    rows = [line for line in lines if line.startswith("| #")]
    assert rows[0].startswith("| #5 `POST /cb5` and 7 more (#6, #7, #8, #9, #10, …) | 7 | callback-ack |")
    assert len(rows) == 3
    curls = [line.strip() for line in lines if line.strip().startswith("curl")]
    assert curls == ["curl -X POST http://r/cb5", "curl -X POST http://r/cb20"]  # one per row, one per exchange
    assert "- #20 (double-slash, body):" in lines
    assert lines[lines.index(rows[-1]) + 1] == ""  # the table ends before the text under it
    assert "- kept" not in "\n".join(lines)  # nothing was dropped


@pytest.mark.parametrize("pad", range(7950, 7990, 3))
def test_a_body_cut_for_display_never_shows_part_of_a_secret(pad: int) -> None:
    secret = "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
    raw = json.dumps({"pad": "x" * pad, "client_secret": secret}).encode()
    shown = Secrets().body(raw, "application/json")
    assert len(shown) <= 8003 and not any(secret[:n] in shown for n in range(4, len(secret)))


def test_a_curl_line_says_when_its_body_was_cut() -> None:
    line = Secrets().curl("POST", "http://t/x", JSON, json.dumps({"a": "y" * 30000}).encode())
    assert line.endswith("' # body cut at 8000 of 30009 bytes")


def test_learned_secrets_are_masked_anywhere_the_longest_first_and_forgotten_oldest_first() -> None:
    secrets = Secrets(limit=3)
    for value in ("abcdef123", "abcdef", "zz9zz9zz", "short"):  # "short" is too short to learn
        secrets.learn(value)
    assert secrets.text("xabcdef123y abcdefQ zz9zz9zzzz9zz9zz short") == "x***y ***Q ****** short"
    secrets.learn("abcdef")  # learnt again: now the newest
    secrets.learn("qqqqqq1")  # evicts the oldest, abcdef123, but not abcdef which shares its start
    assert secrets.text("abcdef123 qqqqqq1") == "***123 ***"
    for n in range(3):
        secrets.learn(f"other-{n}")
    assert secrets.text("abcdef zz9zz9zz qqqqqq1 other-2") == "abcdef zz9zz9zz qqqqqq1 ***"


def test_relays_in_use_outlive_relays_never_called() -> None:
    relays = Relays("http://proxy:1", limit=2)
    tokens = [relays.register(Relay(f"http://r/{n}", "p", "executePlan")).rsplit("/", 1)[1] for n in range(2)]
    assert relays.get(tokens[0]) is not None  # a scene's relay, called again
    relays.register(Relay("http://r/2", "p", "executePlan"))
    assert relays.get(tokens[0]) is not None and relays.get(tokens[1]) is None
