"""The dashboard in a real headless Chromium against `dpa-mock serve --clock virtual`: loads clean, follows a run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SELENIUM = True
except ImportError:  # pragma: no cover - only without the test extra; the tests are skipped then, never reach them
    SELENIUM = False

REPORTS = Path(__file__).resolve().parents[1] / "reports"
POC = {"client_id": "JhYhK/XcFKuVlpVijwLCkw==", "client_secret": "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="}
EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/{}"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromedriver: apt-get install -y chromium chromium-driver",
    ),
    pytest.mark.skipif(not SELENIUM, reason="needs selenium: pip install -e '.[test]'"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("dashboard") / "dpa-mock.log"
    with ServerProcess("--clock", "virtual", log=log) as srv:
        yield srv


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1440,1900",
        "--lang=zh-CN",
    ):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="dpa-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def bearer(base: str) -> dict[str, str]:
    code = requests.get(
        base + "/api/dp/auth/oauth/authorize",
        timeout=5,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
    ).json()["data"]["code"]
    token = requests.post(
        base + "/api/dp/auth/oauth/token", timeout=5, json={**POC, "code": code, "grant_type": "authorization_code"}
    ).json()["data"]["access_token"]
    return {"Authorization": f"Bearer {token}"}


def start(base: str, headers: dict[str, str], plan_id: str, callback_url: str) -> str:
    body = requests.post(
        base + EXECUTE.format(plan_id),
        headers=headers,
        timeout=5,
        json={"processPlanId": plan_id, "callbackUrl": callback_url},
    ).json()
    assert body["code"] == 200, body
    instance: str = body["data"][0]["planInstanceId"]  # interface 5's data: [{planInstanceId}]
    return instance


def text(driver: Any, selector: str) -> str | None:
    """The element's visible text, read in one script call: the page re-renders every second, so a
    WebElement found a moment earlier may already be stale."""
    found: str | None = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", selector
    )
    return found


def row_status(driver: Any, instance_id: str) -> str | None:
    return text(driver, f'#runs tr[data-instance="{instance_id}"] td .status')


def test_run_started_over_the_api_reaches_success_on_the_page(server: ServerProcess, browser: Any) -> None:
    base = server.base_url
    assert requests.post(base + "/__admin/reset", timeout=5).json()["code"] == 200
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    browser.get(base + "/__admin/ui")
    assert browser.title == "dpa-mock 控制台"
    wait.until(lambda d: "实时" in (text(d, "#conn") or ""))
    assert text(browser, "#clock-mode") == "虚拟时钟"
    assert console_errors(browser) == []

    with CallbackReceiver() as receiver:
        headers = bearer(base)
        receiver.fail(times=2)  # the DEFAULT callback of the first run is retried twice before its ack
        instance_id = start(base, headers, "acf42dd3", receiver.url)
        failing = start(base, headers, "c3d9f4e5", receiver.url)
        scene = requests.post(
            base + "/api/dpa/process/processPlan/saveTimingParam",
            headers=headers,
            timeout=5,
            data={
                "processPlanId": "acf42dd3",
                "callbackUrl": receiver.url,
                "dimension": "minutes",
                "intervals": "5",
                "executeStrategy": "cycle",
                "sceneName": "每五分钟巡检",
            },
        ).json()
        assert scene["code"] == 200, scene

        # The page picks the runs up by itself; virtual time has not moved, so they wait in DEFAULT.
        wait.until(lambda d: row_status(d, instance_id) == "DEFAULT" and row_status(d, failing) == "DEFAULT")
        wait.until(lambda d: text(d, f'#scenes tr[data-scene="{scene["data"]["instanceId"]}"]') is not None)

        # Advance the clock with the page's own control.
        field = browser.find_element(By.ID, "advance-seconds")
        field.clear()
        field.send_keys("5")
        browser.find_element(By.ID, "advance-submit").click()
        wait.until(lambda d: row_status(d, instance_id) == "SUCCESS")
        assert row_status(browser, failing) == "FAIL"
        timeline = text(browser, f'#runs tr[data-instance="{instance_id}"] .timeline') or ""
        assert [s for s in ("DEFAULT", "RUNNING", "SUCCESS") if s in timeline] == ["DEFAULT", "RUNNING", "SUCCESS"]
        assert "3/3 节点" in (text(browser, f'#runs tr[data-instance="{instance_id}"]') or "")
        assert "已推进 5 秒" in (text(browser, "#clock-offset") or "")

        # The ledger shows the retried DEFAULT delivery with each attempt's answer and verdict.
        wait.until(lambda d: d.execute_script("return document.querySelectorAll('#callbacks tbody tr').length") == 6)
        ledger = text(browser, "#callbacks") or ""
        assert ledger.count('HTTP 500 "FAIL"') == 2 and "已确认" in ledger
        wait.until(lambda d: "saveTimingParam" in (text(d, "#journal") or ""))

    REPORTS.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(REPORTS / "dashboard.png"))
    assert (REPORTS / "dashboard.png").stat().st_size > 10_000
    assert console_errors(browser) == []


def test_admin_token_page_works_through_the_query_token(browser: Any, tmp_path: Path) -> None:
    with ServerProcess("--clock", "virtual", "--admin-token", "s3cret", log=tmp_path / "dpa-mock.log") as srv:
        browser.get(srv.base_url + "/__admin/ui?token=s3cret")
        WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda d: "实时" in (text(d, "#conn") or ""))
        assert console_errors(browser) == []
        browser.get(srv.base_url + "/__admin/ui")  # without the token: the admin guard's 403 envelope
        assert '"code": 403' in browser.page_source.replace('"code":403', '"code": 403')
