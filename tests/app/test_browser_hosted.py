"""Hosted mode in headless Chromium: sign in, run a query in the SQL console, sort and page the grid,
save it, see a viewer refused an action, sign out; a viewer's job submit is refused and a member's queued."""
from __future__ import annotations

from urllib.parse import urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.app.test_browser import idle, js, new_driver, serve_in_thread, wait  # skips here too without Chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hosted_server(app_store, tmp_path_factory):
    from analytics.settings import Settings
    from app.hosted.auth import UserStore
    from app.server import create_app

    users_file = tmp_path_factory.mktemp("hosted") / "users.json"
    UserStore(users_file).add("vic", "viewer-pass-1", "viewer")
    UserStore(users_file).add("mo", "member-pass-1", "member")
    UserStore(users_file).add("ada", "admin-pass-1", "admin")
    app = create_app(Settings(store=app_store, auth=True, secret_key="k" * 40, users_file=users_file,
                              cookie_secure=False))
    srv = serve_in_thread(app)
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


@pytest.fixture(scope="module")
def browser():
    d = new_driver()
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
    def cells() -> list[str]:                                    # the first column, top to bottom, read in one go
        return js(d, "Array.from(document.querySelectorAll('#sql-table .ag-row'))"
                     ".sort((a, b) => a.getAttribute('row-index') - b.getAttribute('row-index'))"
                     ".map(r => r.querySelector(\"[col-id='c0']\").innerText)")
    wait(d, lambda d: cells()[:3] == ["0", "1", "2"], what="first page")
    assert len(cells()) == 25                                    # paged by 25
    # the columns fit their content (AG Grid's default would be 200 px each)
    wait(d, lambda d: js(d, "document.querySelector(\"#sql-table .ag-header-cell[col-id='c1']\")"
                            ".getBoundingClientRect().width") < 120, what="columns sized to their content")
    header = "#sql-table .ag-header-cell[col-id='c0']"
    d.find_element(By.CSS_SELECTOR, header + " .ag-header-cell-label").click()
    wait(d, lambda d: d.find_element(By.CSS_SELECTOR, header).get_attribute("aria-sort") == "ascending",
         what="sorted ascending")
    d.find_element(By.CSS_SELECTOR, header + " .ag-header-cell-label").click()   # then descending
    wait(d, lambda d: cells()[:2] == ["59", "58"], what="sorted descending")
    # a refused query says why, and the app goes on
    _type(editor, "COPY models TO '/tmp/x.csv'")
    d.find_element(By.ID, "sql-run").click()
    wait(d, lambda d: "not COPY" in d.find_element(By.ID, "sql-msg").text, what="refusal message")
    # save the query under a name; it is listed for this user
    d.find_element(By.ID, "sql-save-name").send_keys("copy attempt")
    d.find_element(By.ID, "sql-save").click()
    wait(d, lambda d: "saved" in d.find_element(By.ID, "sql-save-msg").text, what="saved")
    # a viewer cannot evaluate sentences: the button is not offered, and its tooltip says why
    d.get(hosted_server + "/explore?model=tiny-gru")
    wait(d, lambda d: d.find_element(By.ID, "explore-sentence-text"), what="sentence box")
    idle(d)
    add = d.find_element(By.ID, "explore-sentence-add")
    assert not add.is_enabled()
    assert add.get_attribute("title") == "Only members and admins can add sentences; you are signed in as vic (viewer)."
    assert not d.find_elements(By.ID, "nav-admin")                    # nor is the Admin page
    d.find_element(By.ID, "app-sign-out").click()
    wait(d, lambda d: urlparse(d.current_url).path == "/login", what="signed out")
    d.get(hosted_server + "/explore")      # the server redirects; get() returns once that page has loaded
    assert urlparse(d.current_url).path == "/login"


def _sign_in(d, server: str, name: str, password: str, path: str) -> None:
    d.get(server + "/logout")              # signed in: a page whose button signs out (a POST with the form token)
    for button in d.find_elements(By.CSS_SELECTOR, "form[action='/logout'] button"):
        button.click()
        # click() returns before the POST lands: wait for its redirect, or the next page still sees the session
        wait(d, lambda d: urlparse(d.current_url).path == "/login", what="signed out")
    d.get(server + path)
    wait(d, lambda d: urlparse(d.current_url).path == "/login", what="the sign-in page")
    d.find_element(By.ID, "u").send_keys(name)
    d.find_element(By.ID, "p").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: urlparse(d.current_url).path == path, what=f"back on {path}")
    wait(d, lambda d: name in d.find_element(By.ID, "app-user").text, what="the user badge")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".jobs-table"), what="the job list")
    idle(d)


def test_a_viewer_cannot_submit_a_job_and_a_member_can(hosted_server, browser):
    d = browser
    _sign_in(d, hosted_server, "vic", "viewer-pass-1", "/jobs")
    submit = d.find_element(By.ID, "jobs-submit")
    assert not submit.is_enabled() and "Only members and admins can train models" in submit.get_attribute("title")
    assert not d.find_element(By.ID, "jobs-byom-submit").is_enabled()
    assert "No jobs yet" in d.find_element(By.ID, "jobs-table").text
    _sign_in(d, hosted_server, "mo", "member-pass-1", "/jobs")
    assert d.find_element(By.ID, "jobs-submit").is_enabled() and not d.find_element(By.ID, "jobs-submit").get_attribute(
        "title")
    assert d.find_elements(By.ID, "nav-jobs") and not d.find_elements(By.ID, "nav-admin")   # a member: no Admin
    d.find_element(By.ID, "jobs-field-epochs").send_keys(Keys.CONTROL, "a")
    d.find_element(By.ID, "jobs-field-epochs").send_keys("1")
    d.find_element(By.ID, "jobs-submit").click()
    queued = wait(d, lambda d: (lambda t: t if "Queued job" in t else None)(d.find_element(By.ID, "jobs-banner").text),
                  what="the job queued")
    job = queued.split()[2].rstrip(":")
    row = wait(d, lambda d: d.find_elements(By.ID, f"jobs-row-{job}"), what="the job in the list")[0]
    assert "queued" in row.text and "mo" in row.text     # no worker serves this test's store: it waits
    row.find_element(By.TAG_NAME, "button").click()      # a member may cancel it too
    wait(d, lambda d: "cancelled" in d.find_element(By.ID, f"jobs-row-{job}").text, what="the job cancelled")


def test_only_an_admin_is_offered_the_admin_page(hosted_server, browser):
    d = browser
    _sign_in(d, hosted_server, "ada", "admin-pass-1", "/jobs")
    link = d.find_element(By.ID, "nav-admin")
    assert link.is_displayed() and link.text == "Admin"
    assert d.find_element(By.ID, "jobs-submit").is_enabled()
    # every field of the Admin page has a visible label above it (not only a placeholder)
    link.click()
    wait(d, lambda d: d.find_element(By.ID, "admin-panel").is_displayed(), what="the admin panel")
    fields = {"admin-new-name": "New user", "admin-new-role": "Role", "admin-new-password": "Password",
              "admin-user": "User", "admin-role": "New role", "admin-model": "Model"}
    for fid, text in fields.items():
        label = d.find_element(By.CSS_SELECTOR, f"label[for='{fid}']")
        field = d.find_element(By.ID, fid)
        assert label.is_displayed() and label.text == text, fid
        assert label.rect["y"] + label.rect["height"] <= field.rect["y"] + 1, fid         # above its field
        assert abs(label.rect["x"] - field.rect["x"]) < 2, fid
