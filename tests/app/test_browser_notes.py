"""Team notes in headless Chromium on a hosted app: a member notes a unit's cluster on the Unit page and sees the
note on that chip in Explore (a marker, the note on hover, as typed: markup shown, not applied); a viewer reads
it, is offered no form, and a callback the viewer forges from the page is refused by the server."""
from __future__ import annotations

import json
import shutil

import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.app.dispatching import request_body
from tests.app.test_browser import _graph_js, idle, js, new_driver, serve_in_thread, wait
from tests.app.test_browser_hosted import _type

pytestmark = pytest.mark.browser

NOTE = "quote <b>detector</b> & more"
UNIT_URL = "/unit?model=tiny-lstm&layer=0&state=h&unit=3&k=4"
EXPLORE_URL = "/explore?model=tiny-lstm&layer=0&state=h&k=4"
CO = "explore-cocluster"


@pytest.fixture(scope="module")
def hosted(tiny_store, tmp_path_factory):
    from analytics.settings import Settings
    from app.hosted.auth import UserStore
    from app.server import create_app

    root = tmp_path_factory.mktemp("notes") / "store"          # its own store: the notes stay out of the others'
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging", ".rnnvis.sqlite*"))
    users_file = root.parent / "users.json"
    UserStore(users_file).add("vic", "viewer-pass-1", "viewer")
    UserStore(users_file).add("mo", "member-pass-1", "member")
    app = create_app(Settings(store=root, auth=True, secret_key="k" * 40, users_file=users_file, cookie_secure=False))
    srv = serve_in_thread(app)
    yield f"http://127.0.0.1:{srv.effective_port}", app, root
    srv.close()


@pytest.fixture(scope="module")
def browser():
    d = new_driver()
    yield d
    d.quit()


def _sign_in(d, base: str, name: str, password: str, path: str) -> None:
    d.delete_all_cookies()
    d.get(base + path)
    wait(d, lambda d: d.find_elements(By.ID, "u"), what="the sign-in page")
    d.find_element(By.ID, "u").send_keys(name)
    d.find_element(By.ID, "p").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: name in d.find_element(By.ID, "app-user").text, what="the user badge")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".notes-panel, .dash-graph"), what="the page")
    idle(d)


def _hover_notes_marker(d) -> str:
    """Move the mouse onto the chip's ✎ marker, as a user does: the hover label's text."""
    locate = f"""(() => {{ const gd = {_graph_js(CO)};
        const t = gd._fullData.find(t => t.name === 'notes');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [r.left + xa.l2p(t.x[0]), r.top + ya.l2p(t.y[0])]; }})()"""
    xy = wait(d, lambda d: js(d, locate), what="the notes marker")
    d.execute_script("window.scrollBy(0, arguments[0])", xy[1] - 300)
    xy = js(d, locate)
    actions = ActionBuilder(d)
    actions.pointer_action.move_to_location(int(xy[0]), int(xy[1]))
    actions.pointer_action.pause(0.3)
    actions.perform()
    return wait(d, lambda d: js(d, "document.querySelector('.hoverlayer .hovertext')?.textContent"),
                what="the hover label")


def test_a_member_notes_a_cluster_and_sees_it_on_the_chip_in_explore(hosted, browser):
    base, _app, _root = hosted
    d = browser
    _sign_in(d, base, "mo", "member-pass-1", UNIT_URL)
    d.find_element(By.CSS_SELECTOR, "#notes-kind input[value='cluster']").click()
    _type(d.find_element(By.ID, "notes-body"), NOTE)
    d.find_element(By.ID, "notes-save").click()
    wait(d, lambda d: "Note added" in d.find_element(By.ID, "notes-msg").text, what="the note saved")
    assert "at k=4" in d.find_element(By.ID, "notes-msg").text          # the k of the address signed in at
    cluster = int(d.find_element(By.ID, "notes-msg").text.split("cluster H")[1].split()[0])
    wait(d, lambda d: NOTE in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".note-body")], what="the note listed")
    assert not d.find_elements(By.CSS_SELECTOR, ".note-body b")             # shown as typed, not as markup
    d.get(base + EXPLORE_URL)
    wait(d, lambda d: js(d, f"{_graph_js(CO)}.data.find(t => t.name === 'notes')"), what="the notes marker")
    idle(d)
    marker = js(d, f"{_graph_js(CO)}.data.find(t => t.name === 'notes')")
    assert marker["customdata"] == [["chip", cluster]] and marker["text"] == ["✎"]
    label = _hover_notes_marker(d)
    assert f"notes on H{cluster}" in label and f"mo: {NOTE}" in label, label


def test_a_viewer_reads_notes_gets_no_form_and_a_forged_save_is_refused(hosted, browser):
    base, app, root = hosted
    from analytics.metadb import notes
    notes.add(root, notes.Target("tiny-lstm", 0, "h", unit=3), "seen by all", "mo")
    d = browser
    _sign_in(d, base, "vic", "viewer-pass-1", UNIT_URL)
    wait(d, lambda d: "seen by all" in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".note-body")],
         what="the note listed")
    assert not d.find_element(By.ID, "notes-save").is_displayed()         # no form offered
    assert not d.find_element(By.ID, "notes-body").is_displayed()
    assert not d.find_elements(By.CSS_SELECTOR, ".notes-list button")     # nor Edit / Remove
    req = request_body(app, "notes-msg", {"notes-save": 1, "notes-body": "forged", "notes-kind": "unit",
                                          "notes-target": {"model_id": "tiny-lstm", "layer": 0, "state": "h",
                                                           "unit": 3}}, "notes-save.n_clicks")
    req["inputs"] = [[] if isinstance(i["id"], str) and i["id"].startswith("{") else i for i in req["inputs"]]
    answer = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: arguments[0]}).then(r => r.text()).then(done, e => done(String(e)));", json.dumps(req))
    assert "Only members and admins can do this; you are signed in as vic (viewer)." in answer, answer
    assert "forged" not in list(notes.query(root)["body"])


def test_models_page_notes_a_model_and_finds_notes_by_search(hosted, browser):
    base, _app, _root = hosted
    d = browser
    _sign_in(d, base, "mo", "member-pass-1", "/")
    wait(d, lambda d: d.find_elements(By.ID, "notes-body"), what="the notes form")
    idle(d)
    _type(d.find_element(By.ID, "notes-body"), "trained on the small corpus")
    d.find_element(By.ID, "notes-save").click()
    wait(d, lambda d: "Note added on model" in d.find_element(By.ID, "notes-msg").text, what="the note saved")
    wait(d, lambda d: "trained on the small corpus" in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".note-body")],
         what="the note listed")
    search = d.find_element(By.ID, "notes-search")
    search.send_keys("SMALL CORPUS")
    search.send_keys(Keys.ENTER)
    wait(d, lambda d: "notes hold “SMALL CORPUS”" in d.find_element(By.ID, "notes-list").text, what="the search")
    assert [e.text for e in d.find_elements(By.CSS_SELECTOR, ".note-body")] == ["trained on the small corpus"]
