"""The pytest plugin as an integrator meets it: small suites run through pytester against its fixtures."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LOGIN_AND_RUN = """
import requests

EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/{}"

def start(dpa_platform, plan_id="acf42dd3", callback_url=None):
    body = {"processPlanId": plan_id}
    if callback_url:
        body["callbackUrl"] = callback_url
    answer = requests.post(dpa_platform.base_url + EXECUTE.format(plan_id), json=body,
                           headers=dpa_platform.headers()).json()
    assert answer["code"] == 200, answer
    return answer["data"][0]["planInstanceId"]
"""

CUSTOM_FIXTURES = """
apps:
  - {name: shop, objectId: "1", clientId: "shop-client", clientSecret: "shop-secret",
     validUntil: "2099-12-31 23:59:59", users: [{id: U1}]}
plans:
  - processPlanId: zz000001
    title: 自定义预案
    workflows:
      - processModelId: mdzz1
        modelName: 自定义流程
        nodes:
          - {nodeName: 唯一节点, nodeType: api, duration: 1, result: done}
"""

LISTS_CUSTOM_PLAN = """
import requests

def test_custom_catalogue(dpa_platform):
    assert dpa_platform.credentials == {"client_id": "shop-client", "client_secret": "shop-secret"}
    plans = requests.get(dpa_platform.base_url + "/api/dpa/process/processPlan/queryPlanByUserId",
                         headers=dpa_platform.headers()).json()["data"]
    assert [p["processPlanId"] for p in plans] == ["zz000001"]
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(helpers=LOGIN_AND_RUN)
    return pytester


def test_happy_path_and_isolation_between_tests(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_flow="""
        from helpers import start

        seen = []

        def test_run_to_success(dpa_platform, callback_receiver):
            seen.append(dpa_platform.base_url)
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            assert dpa_platform.wait_for_callback(iid, "DEFAULT")["state"] == "acked"
            dpa_platform.advance(seconds=5)
            delivery = dpa_platform.wait_for_callback(iid, "SUCCESS")
            assert delivery["attempts"][0]["body"] == "SUCCESS"
            assert [p["status"] for p in callback_receiver.payloads()] == ["DEFAULT", "RUNNING", "SUCCESS"]
            assert dpa_platform.run(iid)["status"] == "SUCCESS"
            assert dpa_platform.clock()["offset"] == 5

        def test_next_test_starts_from_a_clean_platform(dpa_platform):
            seen.append(dpa_platform.base_url)
            assert seen[0] == seen[1]  # one emulator per process, reset in between
            assert dpa_platform.runs() == [] and dpa_platform.callbacks() == []
            assert dpa_platform.clock()["offset"] == 0

        def test_admin_helpers(dpa_platform):
            iid = start(dpa_platform, plan_id="d4a8e6f1")
            dpa_platform.advance(seconds=2)
            assert dpa_platform.runs(status="PENDING")[0]["planInstanceId"] == iid
            assert dpa_platform.resume(iid)["status"] == "RUNNING"
            dpa_platform.fault(path="opExecutePlanByApi", code=503, times=1)
            assert len(dpa_platform.faults()) == 1
            try:
                start(dpa_platform)
            except AssertionError as exc:
                assert "503" in str(exc)
            else:
                raise AssertionError("the fault did not answer")
            dpa_platform.fault(path="opExecutePlanByApi", code=503)
            dpa_platform.clear_faults()
            start(dpa_platform)
            assert any(r["path"].endswith("acf42dd3") for r in dpa_platform.journal(limit=5))
    """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_wait_for_callback_failure_lists_what_did_arrive(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_never="""
        from helpers import start

        def test_forgets_to_advance(dpa_platform, callback_receiver):
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            dpa_platform.wait_for_callback(iid, "SUCCESS", timeout=0.5)

        def test_receiver_always_refuses(dpa_platform, callback_receiver):
            callback_receiver.fail()
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            dpa_platform.advance(seconds=1)
            dpa_platform.wait_for_callback(iid, "DEFAULT", timeout=30)
    """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*the SUCCESS callback of in* was not acknowledged within 0.5s.",
            "*The run is DEFAULT (DEFAULT); callbackUrl: http://127.0.0.1:*/callback.",
            "*Callbacks recorded for it (1):",
            "*- DEFAULT: acked after 1 attempt(s)",
            "*#1 -> HTTP 200 'SUCCESS': ack",
            "*The clock is virtual: time passes only through dpa_platform.advance(seconds=...).",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*the DEFAULT callback of in* was given up.",
            "*- DEFAULT: gave_up after 4 attempt(s)",
            "*#1 -> HTTP 500 'FAIL': retry",
            "*#4 -> HTTP 500 'FAIL': gave_up",
        ]
    )
    # A give-up is final: the test failed at once rather than after its 30 s timeout.
    assert result.duration < 30


def test_fixtures_dir_from_a_marker(pytester: pytest.Pytester) -> None:
    pytester.mkdir("shop_fixtures").joinpath("catalog.yaml").write_text(CUSTOM_FIXTURES, encoding="utf-8")
    pytester.makepyfile(
        test_marked="import pytest\n\npytestmark = pytest.mark.dpa_fixtures('shop_fixtures')\n" + LISTS_CUSTOM_PLAN
    )
    pytester.makepyfile(
        test_unmarked="""
        def test_bundled_in_the_same_session(dpa_platform):
            assert dpa_platform.client_id == "JhYhK/XcFKuVlpVijwLCkw=="
            assert dpa_platform.fixtures is None
            assert {r["processPlanId"] for r in dpa_platform.runs()} == set()
    """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")  # the marker is registered
    result.assert_outcomes(passed=2)


def test_fixtures_dir_from_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.mkdir("fx").joinpath("all.yml").write_text(CUSTOM_FIXTURES, encoding="utf-8")
    pytester.makeini("[pytest]\ndpa_fixtures = fx\n")
    pytester.mkdir("sub")
    pytester.path.joinpath("sub", "test_ini.py").write_text(LISTS_CUSTOM_PLAN, encoding="utf-8")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_unloadable_fixtures_fail_with_the_loader_message(pytester: pytest.Pytester) -> None:
    pytester.mkdir("broken").joinpath("apps.yaml").write_text("apps:\n  - {name: x}\n", encoding="utf-8")
    pytester.makepyfile(
        test_broken="""
        import pytest

        @pytest.mark.dpa_fixtures("broken")
        def test_uses_broken(dpa_platform):
            pass
    """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*dpa_platform: cannot load the fixtures: *apps.yaml: apps[[]0[]]: *"])


def test_receiver_scripting_fail_twice_then_ack(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_receiver="""
        from helpers import start

        def test_fail_twice(dpa_platform, callback_receiver):
            callback_receiver.fail(times=2)
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            dpa_platform.advance(seconds=0.5)  # backoff 0.1 s then 0.2 s of platform time
            delivery = dpa_platform.wait_for_callback(iid, "DEFAULT")
            assert [a["verdict"] for a in delivery["attempts"]] == ["retry", "retry", "ack"]
            defaults = [d for d in callback_receiver.for_instance(iid) if d.json["status"] == "DEFAULT"]
            assert [d.answered_status for d in defaults] == [500, 500, 200]

        def test_wrong_body_then_timeout_then_ack(dpa_platform, callback_receiver):
            callback_receiver.body("WRONG", times=1).timeout(seconds=3, times=1)
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            dpa_platform.advance(seconds=0.5)
            attempts = dpa_platform.wait_for_callback(iid, "DEFAULT")["attempts"]
            assert [(a["body"], a["verdict"]) for a in attempts] == [("WRONG", "retry"), (None, "retry"),
                                                                     ("SUCCESS", "ack")]
            assert "timed out" in attempts[1]["error"].lower()
            assert callback_receiver.wait_for(lambda ds: len(ds) >= 3, timeout=5)
    """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_projects_not_using_the_fixtures_start_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys
        import threading

        def test_plain(request):
            assert request.config.pluginmanager.hasplugin("dpa_mock")  # loaded through the entry point
            assert "mock_server.app" not in sys.modules
            assert not [t for t in threading.enumerate() if t.name.startswith("dpa-")]
    """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None,
    reason="pytest-xdist is not installed: pip install -e '.[test]' (or pip install pytest-xdist)",
)
def test_each_xdist_worker_gets_its_own_emulator(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.makepyfile(
        test_parallel="""
        import os
        import pathlib

        import pytest
        from helpers import start

        @pytest.mark.parametrize("n", range(4))
        def test_run(dpa_platform, n):
            assert dpa_platform.runs() == []
            iid = start(dpa_platform)
            dpa_platform.advance(seconds=5)
            assert dpa_platform.run(iid)["status"] == "SUCCESS"
            out = pathlib.Path(os.environ["PORTS_DIR"]) / os.environ["PYTEST_XDIST_WORKER"]
            with out.open("a") as f:
                f.write(dpa_platform.base_url + "\\n")
    """
    )
    ports = suite.mkdir("ports")
    monkeypatch.setenv("PORTS_DIR", str(ports))
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    by_worker = {f.name: set(f.read_text().split()) for f in ports.iterdir()}
    assert sorted(by_worker) == ["gw0", "gw1"]
    assert all(len(urls) == 1 for urls in by_worker.values())  # one emulator per worker, reused
    assert by_worker["gw0"] != by_worker["gw1"]


def test_the_guide_s_first_test_passes_verbatim(pytester: pytest.Pytester) -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "integrators.md").read_text(encoding="utf-8")
    [first] = [block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if "def test_" in block][:1]
    pytester.makepyfile(test_guide=first)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_fixture_members_return_what_the_guide_says(suite: pytest.Pytester) -> None:
    # docs/integrators.md's tables: dpa_platform gives plain JSON values, the receiver Delivery objects.
    suite.makepyfile(
        test_returns="""
        from helpers import start
        from mock_server.testing.receiver import Delivery

        def test_returns(dpa_platform, callback_receiver):
            assert isinstance(dpa_platform.token(), str)
            assert set(dpa_platform.headers()) == {"Authorization"}
            assert callback_receiver.fail(times=1) is callback_receiver
            assert callback_receiver.ack() is callback_receiver
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            clock = dpa_platform.advance(seconds=5)
            assert set(clock) == {"mode", "now", "nowMs", "offset", "timezone"} == set(dpa_platform.clock())
            assert dpa_platform.reset() is None
            iid = start(dpa_platform, callback_url=callback_receiver.url)
            dpa_platform.advance(seconds=5)
            [run] = dpa_platform.runs()
            assert run["planInstanceId"] == iid and dpa_platform.run(iid) == run
            assert [h["status"] for h in run["history"]] == ["DEFAULT", "RUNNING", "SUCCESS"]
            delivery = dpa_platform.wait_for_callback(iid, "SUCCESS")
            assert delivery in dpa_platform.callbacks(iid) and delivery["state"] == "acked"
            mine = callback_receiver.for_instance(iid)
            assert all(isinstance(d, Delivery) for d in mine)
            assert [d.json["status"] for d in mine] == ["DEFAULT", "RUNNING", "SUCCESS"]
            assert all(d.answered_status == 200 and d.answered_body == "SUCCESS" for d in mine)
            assert callback_receiver.wait_for(lambda ds: len(ds) >= 3, timeout=1) is True
            assert callback_receiver.wait_for(lambda ds: False, timeout=0.01) is False
            fault = dpa_platform.fault(path="queryPlanByUserId", code=503, times=1)
            assert dpa_platform.faults() == [fault] and fault["remaining"] == 1
            assert dpa_platform.clear_faults() is None and dpa_platform.faults() == []
            journal = dpa_platform.journal(limit=2)
            assert len(journal) == 2 and {"at", "method", "path", "status", "code"} <= set(journal[0])
            assert callback_receiver.clear() is None and callback_receiver.deliveries == []
    """
    )
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


STAGING_SHAPED = """
import requests

def test_staging_shaped(dpa_platform):
    unknown = requests.get(dpa_platform.base_url + "/api/dpa/process//processPlan/queryPlanRunOutParam",
                           params={"processPlanId": "nope0000", "planInstanceId": "in1"},
                           headers=dpa_platform.headers())
    assert (unknown.status_code, unknown.json()) == (200, {"code": %(code)d, "message": unknown.json()["message"]})
"""

DOCUMENT_SHAPED = """
import requests

def test_document_shaped(dpa_platform):
    unknown = requests.get(dpa_platform.base_url + "/api/dpa/process//processPlan/queryPlanRunOutParam",
                           params={"processPlanId": "nope0000", "planInstanceId": "in1"},
                           headers=dpa_platform.headers())
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["data"]) == (404, 404, None)
"""


def test_profile_from_the_command_line_option(pytester: pytest.Pytester) -> None:
    """`--dpa-profile gateway`: the bundled profile by name; the fixture's emulator answers as that gateway."""
    pytester.makepyfile(test_gw=STAGING_SHAPED % {"code": 999})
    result = pytester.runpytest("-p", "no:cacheprovider", "--dpa-profile", "gateway")
    result.assert_outcomes(passed=1)
    # Without the option, the same suite meets the document's defaults and fails.
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)


def test_profile_file_from_the_ini_option_and_a_marker(pytester: pytest.Pytester) -> None:
    """`dpa_profile = staging.yaml` relative to the ini file; a marker picks another profile for one test."""
    pytester.makeini("[pytest]\ndpa_profile = conf/staging.yaml\n")
    pytester.mkdir("conf").joinpath("staging.yaml").write_text(
        "http_status: always200\nunknown_plan_code: 500\nerror_data: absent\n", encoding="utf-8"
    )
    pytester.mkdir("sub")
    pytester.path.joinpath("sub", "test_ini.py").write_text(STAGING_SHAPED % {"code": 500}, encoding="utf-8")
    pytester.path.joinpath("sub", "test_marked.py").write_text(
        "import pytest\npytestmark = pytest.mark.dpa_profile('document')\n" + DOCUMENT_SHAPED, encoding="utf-8"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_a_bad_profile_fails_the_test_naming_file_key_and_reason(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("bad.yaml").write_text("unknown_plan_code: 405\n", encoding="utf-8")
    pytester.makepyfile(test_bad="def test_uses(dpa_platform):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--dpa-profile", "bad.yaml")
    result.assert_outcomes(errors=1)  # in the fixture's setup, before the test runs
    result.stdout.fnmatch_lines(["*cannot use the profile*bad.yaml*unknown_plan_code: 405 is not one of*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--dpa-profile", "no-such-profile")
    result.stdout.fnmatch_lines(["*neither a bundled profile (document, gateway) nor a readable file*"])
