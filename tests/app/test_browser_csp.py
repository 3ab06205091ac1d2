"""The Content-Security-Policy in headless Chromium: every page renders and its callbacks run, and the
browser reports no violation (scripts only from the server and Dash's own inline scripts by hash)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from tests.app.test_browser import CHROMEDRIVER, CHROMIUM, FLAGS, idle, serve_in_thread, wait  # skips without Chromium

pytestmark = pytest.mark.browser
SECRET = "c" * 40


@pytest.fixture(scope="module")
def console_browser():
    """Chromium whose console messages the test can read (CSP violations are logged there)."""
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Content-Security-Policy" in e["message"]]


def test_the_dashboard_renders_and_calls_back_under_its_csp(app_store, console_browser):
    from analytics.settings import Settings
    from app.server import create_app

    d = console_browser
    srv = serve_in_thread(create_app(Settings(store=app_store)))
    base = f"http://127.0.0.1:{srv.effective_port}"
    try:
        d.get(base + "/explore?model=tiny-lstm")
        # callbacks ran: the co-cluster figure is drawn and the URL carries the chosen layer, state and k
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".cocluster-graph .js-plotly-plot .main-svg"),
             what="the co-cluster figure")
        wait(d, lambda d: {"layer", "state", "k"} <= set(parse_qs(urlparse(d.current_url).query)), what="URL state")
        idle(d)
        for path in ("/", "/compare", "/jobs", "/sql"):
            d.get(base + path)
            wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".topbar .nav-link"), what=f"{path} rendered")
            idle(d)
        d.find_element(By.ID, "sql-run").click()                  # on /sql: the default query
        wait(d, lambda d: "rows in" in d.find_element(By.ID, "sql-msg").text, what="a query result")
        assert _violations(d) == []
    finally:
        srv.close()


def test_hosted_sign_in_and_sign_out_under_the_csp(app_store, tmp_path, console_browser):
    from analytics.settings import Settings
    from app.hosted.auth import UserStore
    from app.server import create_app

    d = console_browser
    UserStore(tmp_path / "users.json").add("vic", "viewer-pass-1", "viewer")
    app = create_app(Settings(store=app_store, auth=True, secret_key=SECRET, users_file=tmp_path / "users.json",
                              cookie_secure=False))
    srv = serve_in_thread(app)
    base = f"http://127.0.0.1:{srv.effective_port}"
    try:
        d.get(base + "/sql")
        wait(d, lambda d: urlparse(d.current_url).path == "/login", what="the sign-in page")
        d.find_element(By.ID, "u").send_keys("vic")
        d.find_element(By.ID, "p").send_keys("viewer-pass-1")
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(d, lambda d: "vic (viewer)" in d.find_element(By.ID, "app-user").text, what="the user badge")
        idle(d)
        d.find_element(By.ID, "app-sign-out").click()             # a form POST with the session's token
        wait(d, lambda d: urlparse(d.current_url).path == "/login", what="signed out")
        d.get(base + "/sql")
        wait(d, lambda d: urlparse(d.current_url).path == "/login", what="the session ended")
        assert _violations(d) == []
    finally:
        srv.close()
