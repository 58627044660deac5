"""The UI in a real browser (Debian's Chromium, headless, driven by Selenium through
/usr/bin/chromedriver) against a real `federation server` and a real agent: sign in, submit a
job from the form, watch its allocation turn running without a reload, read its log, stop
it, see it stopped. Screenshots of each page go to $FEDERATION_UI_SCREENSHOTS (the README's
docs/ui/*.png are made this way) or to the test's temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Cluster, ServerProcess, wait_for

CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "browser-test-token-0123456789"
JOB = """\
id: ticker
type: service
groups:
  - name: main
    count: 1
    resources: {cpu: 100, memory: 64}
    task:
      driver: exec
      command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]
"""

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMEDRIVER) and shutil.which("chromium")),
    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    cluster = Cluster(tmp_path / "cluster", size=1, token=TOKEN).start()
    agent = None
    try:
        leader = cluster.servers[0]
        api = httpx.Client(base_url=leader.url, headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=10)
        wait_for(lambda: api.get("/v1/status").json()["leader"], 20, "a leader")
        env = {**os.environ, "FEDERATION_TOKEN": TOKEN, "OTEL_TRACES_EXPORTER": "none"}
        log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 - the child's for its life
        agent = subprocess.Popen(
            [sys.executable, "-m", "federation.cli.main", "agent", "--server", leader.url,
             "--data-dir", str(tmp_path / "agent"), "--name", "rack1-node-1", "--cpu", "2000",
             "--memory", "2048", "--zone", "r1", "--rack", "r1", "--stop-tasks-on-exit"],
            stdout=log, stderr=log, env=env)
        log.close()
        wait_for(lambda: api.get("/v1/nodes").json(), 20, "the agent to register")
        # Something on the pools and queues pages.
        assert api.put("/v1/pools/racks", json={
            "name": "racks", "provider": "local", "preference": 0, "max_nodes": 0}
        ).status_code == 200
        assert api.put("/v1/queues/analytics", json={
            "weight": 2, "quota": {"cpu": 8000, "memory": 16384}}).status_code == 200
        api.close()
        yield leader
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(10)
        cluster.kill_all()


@pytest.fixture
def chrome(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shots_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("FEDERATION_UI_SCREENSHOTS") or tmp_path / "shots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_sign_in_submit_watch_read_the_log_and_stop_in_a_real_browser(
        server, chrome, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = shots_dir(tmp_path)
    # htmx swaps fragments in place, so an element found a moment ago may be gone when its
    # text is read: the wait tries again rather than failing on that.
    wait = WebDriverWait(chrome, 40, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,))

    def text_of(css: str) -> str:
        return chrome.find_element(By.CSS_SELECTOR, css).text

    # Signing in: an unauthenticated visit lands on the sign-in form.
    chrome.get(server.url + "/ui/jobs")
    assert "/ui/login" in chrome.current_url
    chrome.find_element(By.ID, "token").send_keys(TOKEN)
    chrome.save_screenshot(str(shots / "login.png"))
    chrome.find_element(By.ID, "sign-in").click()
    wait.until(lambda d: d.current_url.endswith("/ui/jobs"))
    cookie = chrome.get_cookie("federation_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Submitting a job from the form.
    chrome.find_element(By.ID, "new-job").click()
    wait.until(lambda d: d.find_elements(By.ID, "spec"))
    chrome.find_element(By.ID, "spec").send_keys(JOB)
    chrome.save_screenshot(str(shots / "job-new.png"))
    chrome.find_element(By.ID, "submit-job").click()
    wait.until(lambda d: d.current_url.endswith("/ui/jobs/ticker"))

    # Its allocation turns running while the page stays loaded (htmx polls the live part).
    chrome.execute_script("window.federationMarker = 'same page';")
    wait.until(lambda d: "running" in text_of("#job-status"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-alloc] .status-running"))
    assert chrome.execute_script("return window.federationMarker") == "same page"
    chrome.save_screenshot(str(shots / "job.png"))

    # Its log, streamed live into the allocation page.
    chrome.find_element(By.CSS_SELECTOR, "tr[data-alloc] a").click()
    wait.until(lambda d: "/ui/allocations/" in d.current_url)
    wait.until(lambda d: "tick 3" in text_of("#log"))
    chrome.save_screenshot(str(shots / "allocation.png"))

    # Every other page while the job runs, for the screenshots; and nothing is fetched
    # from anywhere else.
    for name, path in (("overview", "/ui/"), ("jobs", "/ui/jobs"), ("nodes", "/ui/nodes"),
                       ("pools", "/ui/pools"), ("queues", "/ui/queues")):
        chrome.get(server.url + path)
        wait.until(lambda d: d.find_elements(By.ID, "live"))
        chrome.save_screenshot(str(shots / f"{name}.png"))
        resources = chrome.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(r.startswith(server.url) for r in resources), resources

    # Stopping it from the job page; the page shows it stopped without a reload.
    chrome.get(server.url + "/ui/jobs/ticker")
    chrome.execute_script("window.federationMarker = 'same page';")
    chrome.find_element(By.ID, "stop-job").click()
    wait.until(lambda d: "stopped" in text_of("#flash"))
    wait.until(lambda d: "dead" in text_of("#job-status"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-alloc] .status-running"))
    assert chrome.execute_script("return window.federationMarker") == "same page"
    assert chrome.find_elements(By.ID, "start-job")
    problems = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert not problems, problems
