"""Hosted mode in headless Chromium: sign in, run a query in the SQL console, sort and page the grid,
save it, see a viewer refused an action, sign out."""
from __future__ import annotations

import threading
import time
from urllib.parse import urlparse

import pytest

from tests.app.test_browser import CHROMEDRIVER, CHROMIUM, FLAGS, idle, wait  # skips here too without Chromium

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hosted_server(app_store, tmp_path_factory):
    from waitress.server import create_server

    from analytics.settings import Settings
    from app.auth import UserStore
    from app.server import create_app

    users_file = tmp_path_factory.mktemp("hosted") / "users.json"
    UserStore(users_file).add("vic", "viewer-pass-1", "viewer")
    app = create_app(Settings(store=app_store, auth=True, secret_key="k" * 40, users_file=users_file,
                              cookie_secure=False))
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=srv.run, daemon=True).start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


@pytest.fixture(scope="module")
def browser():
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _type(element, text: str) -> None:
    """Replace a React-controlled field's text as a user would (select all, type)."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)


def test_sign_in_then_query_sort_page_and_save(hosted_server, browser):
    d = browser
    d.get(hosted_server + "/sql")
    wait(d, lambda d: urlparse(d.current_url).path == "/login", what="redirect to sign-in")
    d.find_element(By.ID, "u").send_keys("vic")
    d.find_element(By.ID, "p").send_keys("viewer-pass-1")
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: urlparse(d.current_url).path == "/sql", what="back on /sql")
    wait(d, lambda d: "vic (viewer)" in d.find_element(By.ID, "app-user").text, what="user badge")
    idle(d)
    editor = d.find_element(By.ID, "sql-editor")
    _type(editor, "SELECT range AS n, range % 7 AS r FROM range(60)")
    d.find_element(By.ID, "sql-run").click()
    wait(d, lambda d: "60 rows" in d.find_element(By.ID, "sql-msg").text, what="result message")
    def cells() -> list[str]:
        return [c.text for c in d.find_elements(By.CSS_SELECTOR, "#sql-table td[data-dash-column='c0']")]
    wait(d, lambda d: cells()[:3] == ["0", "1", "2"], what="first page")
    assert len(cells()) == 25                                    # paged by 25
    sort = d.find_elements(By.CSS_SELECTOR, "#sql-table th[data-dash-column='c0'] .column-header--sort")
    sort[0].click()
    sort = d.find_elements(By.CSS_SELECTOR, "#sql-table th[data-dash-column='c0'] .column-header--sort")
    sort[0].click()                                              # none -> ascending -> descending
    wait(d, lambda d: cells()[:2] == ["59", "58"], what="sorted descending")
    # a refused query says why, and the app goes on
    _type(editor, "COPY models TO '/tmp/x.csv'")
    d.find_element(By.ID, "sql-run").click()
    wait(d, lambda d: "not COPY" in d.find_element(By.ID, "sql-msg").text, what="refusal message")
    # save the query under a name; it is listed for this user
    d.find_element(By.ID, "sql-save-name").send_keys("copy attempt")
    d.find_element(By.ID, "sql-save").click()
    wait(d, lambda d: "saved" in d.find_element(By.ID, "sql-save-msg").text, what="saved")
    # a viewer cannot evaluate sentences
    d.get(hosted_server + "/explore?model=tiny-gru")
    box = wait(d, lambda d: d.find_element(By.ID, "explore-sentence-text"), what="sentence box")
    idle(d)
    box.send_keys("the food is good")
    d.find_element(By.ID, "explore-sentence-add").click()
    wait(d, lambda d: "Only members" in d.find_element(By.ID, "explore-sentence-msg").text, what="refused")
    d.find_element(By.ID, "app-sign-out").click()
    wait(d, lambda d: urlparse(d.current_url).path == "/login", what="signed out")
    d.get(hosted_server + "/explore")
    time.sleep(0.3)
    assert urlparse(d.current_url).path == "/login"
