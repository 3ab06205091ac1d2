"""Team notes through Dash's own dispatch on a hosted app, on both backends of the metadata database: who may
write, edit and remove them (the server refuses, whatever the page offered), the limit on a body, a forged
target, the ``notes`` table in every role's SQL console, and a deleted model's notes going with it."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from analytics.metadb import audit, notes
from analytics.settings import Settings
from app import ids
from app.hosted import auth
from app.server import create_app
from tests.app.dispatching import request_body
from tests.metadata_db import metadata_db, postgres_database  # noqa: F401 - fixtures

SECRET = "s" * 48
PASSWORDS = {"vera": ("viewer", "viewer-pass-1"), "mo": ("member", "member-pass-1"),
             "max": ("member", "member-pass-2"), "ada": ("admin", "admin-pass-1")}
MODEL = "tiny-lstm"
UNIT = {"model_id": MODEL, "layer": 0, "state": "h", "k": 4, "cluster": 1, "unit": 3}


@pytest.fixture
def hosted(metadata_db, tiny_store):
    root = metadata_db.root
    shutil.copytree(tiny_store, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".staging", ".rnnvis.sqlite*"))
    users = auth.UserStore(root / "users.json")
    for name, (role, pw) in PASSWORDS.items():
        users.add(name, pw, role, created_by="cli")
    app = create_app(Settings(store=root, auth=True, secret_key=SECRET, users_file=root / "users.json",
                              cookie_secure=False))
    app.server.test_client().get("/healthz")
    return app, root


def _client(app, name):
    c = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": name, "password": PASSWORDS[name][1], "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text[:300]
    return c


def _act(app, client, pressed, *, target=UNIT, kind="unit", body=None, editing=None, search=None) -> dict:
    """Press a button of the notes panel (NOTES_SAVE, or (NOTES_EDIT | NOTES_DELETE, note id)) as the renderer
    does: {prop: value} of the answer (message, list, body, editing)."""
    values = {ids.NOTES_TARGET: target, ids.NOTES_KIND: kind, ids.NOTES_BODY: body, ids.NOTES_EDITING: editing,
              ids.NOTES_SEARCH: search, ids.NOTES_SAVE: 1 if pressed == ids.NOTES_SAVE else None}
    changed = f"{ids.NOTES_SAVE}.n_clicks"
    req = request_body(app, ids.NOTES_MSG, values, changed)
    for i, dep in enumerate(req["inputs"]):               # the pattern inputs: the pressed button, or none
        if isinstance(dep["id"], str) and dep["id"].startswith("{"):
            kind_of = json.loads(dep["id"])["type"]
            req["inputs"][i] = []
            if isinstance(pressed, tuple) and pressed[0] == kind_of:
                button = {"index": pressed[1], "type": kind_of}
                req["inputs"][i] = [{"id": button, "property": "n_clicks", "value": 1}]
                changed = json.dumps(button, sort_keys=True, separators=(",", ":")) + ".n_clicks"
    req["changedPropIds"] = [changed]
    r = client.post("/_dash-update-component", json=req)
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    return {prop: v for props in r.json["response"].values() for prop, v in props.items()} | \
        {"msg": json.dumps(r.json["response"].get(ids.NOTES_MSG, {}).get("children"))}


def _rows(root):
    return notes.query(root)


def test_a_member_writes_a_viewer_reads_and_is_refused_writing(hosted):
    app, root = hosted
    out = _act(app, _client(app, "mo"), ids.NOTES_SAVE, body="fires after <b>negation</b>")
    assert "Note added on tiny-lstm layer 0 h, unit 3" in out["msg"]
    assert "fires after <b>negation</b>" in json.dumps(out["children"])       # as text, in a Div's children
    assert out["value"] == "" and out["data"] is None
    df = _rows(root)
    assert list(zip(df["author"], df["unit"], df["body"])) == [("mo", 3, "fires after <b>negation</b>")]
    out = _act(app, _client(app, "mo"), ids.NOTES_SAVE, kind="cluster", body="quote detector")
    assert "cluster H1 at k=4" in out["msg"]
    vera = _client(app, "vera")
    out = _act(app, vera, ids.NOTES_SAVE, body="a viewer's note")                # a forged request
    assert "Only members and admins can do this; you are signed in as vera (viewer)." in out["msg"]
    listed = json.dumps(_search(app, vera, UNIT, None))                          # a viewer reads them
    assert "quote detector" in listed and "negation" in listed
    assert ids.NOTES_DELETE not in listed and ids.NOTES_EDIT not in listed       # and is offered no button
    assert len(_rows(root)) == 2


def _search(app, client, target, text):
    req = request_body(app, ids.NOTES_LIST, {ids.NOTES_SEARCH: text, ids.NOTES_TARGET: target},
                       f"{ids.NOTES_SEARCH}.value")
    r = client.post("/_dash-update-component", json=req)
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    return r.json["response"][ids.NOTES_LIST]["children"]


def test_members_edit_and_remove_their_own_admins_remove_any(hosted):
    app, root = hosted
    mo, mx, ada = _client(app, "mo"), _client(app, "max"), _client(app, "ada")
    _act(app, mo, ids.NOTES_SAVE, body="mine")
    note = int(_rows(root)["id"][0])
    for button in ((ids.NOTES_EDIT, note), (ids.NOTES_DELETE, note)):
        out = _act(app, mx, button)
        assert "only their own notes" in out["msg"] and "this note is mo's" in out["msg"], out["msg"]
    out = _act(app, mx, ids.NOTES_SAVE, body="hijacked", editing=note)          # a forged edit
    assert "only their own notes" in out["msg"]
    out = _act(app, mo, (ids.NOTES_EDIT, note))
    assert out["value"] == "mine" and out["data"] == note
    out = _act(app, mo, ids.NOTES_SAVE, body="mine, better", editing=note)
    assert "Note saved" in out["msg"]
    assert list(_rows(root)["body"]) == ["mine, better"] and _rows(root)["edited_at"].notna().all()
    out = _act(app, ada, (ids.NOTES_EDIT, note))                                # an admin edits only their own
    assert "only their own notes" in out["msg"]
    out = _act(app, ada, (ids.NOTES_DELETE, note))
    assert "Note removed" in out["msg"] and _rows(root).empty
    log = audit.query(root, action="note removed")
    assert list(zip(log["who"], log["target"])) == [("ada", MODEL)] and "mine, better" in log["details"][0]
    _act(app, mo, ids.NOTES_SAVE, body="again")
    assert "Note removed" in _act(app, mo, (ids.NOTES_DELETE, int(_rows(root)["id"][0])))["msg"]
    assert audit.query(root, action="note removed").shape[0] == 1              # one's own: not audited


def test_a_long_body_is_cut_with_a_message_and_a_forged_target_refused(hosted):
    app, root = hosted
    mo = _client(app, "mo")
    out = _act(app, mo, ids.NOTES_SAVE, body="z" * 2500)
    assert "longer than 2,000 characters and was cut there" in out["msg"]
    assert len(_rows(root)["body"][0]) == 2000
    assert "Write the note first" in _act(app, mo, ids.NOTES_SAVE, body="   ")["msg"]
    for target, kind, said in (({**UNIT, "unit": 999}, "unit", "has units 0 to"),
                               ({**UNIT, "layer": 7}, "unit", "has no layer 7"),
                               ({**UNIT, "cluster": 4}, "cluster", "Pick a cluster"),
                               ({"model_id": "no-such-model"}, "model", "no-such-model")):
        out = _act(app, mo, ids.NOTES_SAVE, target=target, kind=kind, body="x")
        assert said in out["msg"], (target, out["msg"])
    r = mo.post("/_dash-update-component", json=request_body(
        app, ids.NOTES_MSG, {ids.NOTES_SAVE: 1, ids.NOTES_BODY: "x" * 20_001, ids.NOTES_TARGET: UNIT},
        f"{ids.NOTES_SAVE}.n_clicks"))
    assert r.status_code == 400                                                 # past the declared bound
    assert len(_rows(root)) == 1


def _sql(app, client, sql):
    out = client.post("/_dash-update-component", json=request_body(
        app, ids.SQL_TABLE, {ids.SQL_EDITOR: sql, ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")).json["response"]
    names = {c["field"]: c["headerName"] for c in out[ids.SQL_TABLE]["columnDefs"]}
    return [{names[k]: v for k, v in r.items()} for r in out[ids.SQL_TABLE]["rowData"]]


def test_every_role_reads_notes_in_sql_and_searches_them(hosted):
    app, root = hosted
    mo = _client(app, "mo")
    _act(app, mo, ids.NOTES_SAVE, kind="cluster", body="Quote detector")
    _act(app, mo, ids.NOTES_SAVE, target={"model_id": "tiny-gru"}, kind="model", body="the classifier")
    for name in PASSWORDS:
        rows = _sql(app, _client(app, name), "SELECT model_id, layer, state, k, cluster, unit, body, author "
                                             "FROM notes ORDER BY body")
        assert rows == [{"model_id": MODEL, "layer": 0, "state": "h", "k": 4, "cluster": 1, "unit": None,
                         "body": "Quote detector", "author": "mo"},
                        {"model_id": "tiny-gru", "layer": None, "state": None, "k": None, "cluster": None,
                         "unit": None, "body": "the classifier", "author": "mo"}], name
    found = json.dumps(_search(app, _client(app, "vera"), {"model_id": "tiny-gru"}, "QUOTE"))
    assert "1 notes hold" in found and "Quote detector" in found and "the classifier" not in found
    assert "No note holds" in json.dumps(_search(app, mo, None, "nothing like this"))


def test_a_deleted_models_notes_go_with_it(hosted):
    app, root = hosted
    mo, ada = _client(app, "mo"), _client(app, "ada")
    _act(app, mo, ids.NOTES_SAVE, body="on the lstm")
    _act(app, mo, ids.NOTES_SAVE, target={"model_id": "tiny-gru"}, kind="model", body="on the gru")
    req = request_body(app, ids.ADMIN_MSG, {ids.ADMIN_MODEL: MODEL, ids.ADMIN_DELETE_MODEL: 1},
                       f"{ids.ADMIN_DELETE_MODEL}.submit_n_clicks")
    r = ada.post("/_dash-update-component", json=req)
    assert r.status_code == 200 and f"Deleted model {MODEL}" in r.get_data(as_text=True)
    assert list(_rows(root)["body"]) == ["on the gru"]
    assert "1 notes removed" in audit.query(root, action="model deleted")["details"][0]


def test_signing_in_returns_to_the_whole_address_asked_for(hosted):
    """The sign-in keeps every parameter of the page asked for (a unit page's layer, state, unit and k)."""
    app, _ = hosted
    c = app.server.test_client()
    asked = "/unit?model=tiny-lstm&layer=0&state=h&unit=3&k=4"
    r = c.get(asked)
    assert r.status_code == 302
    page = c.get(r.headers["Location"]).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    back = re.search(r'name="next" value="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert back == asked
    r = c.post("/login", data={"username": "mo", "password": PASSWORDS["mo"][1], "csrf": token, "next": back})
    assert r.status_code == 303 and r.headers["Location"].endswith(asked)


def test_open_mode_the_local_user_writes_edits_and_removes(metadata_db, tiny_store):
    """Without sign-in (open mode) the one local user may do everything; the notes carry 'local'."""
    root = metadata_db.root
    shutil.copytree(tiny_store, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".staging", ".rnnvis.sqlite*"))
    app = create_app(Settings(store=root))
    c = app.server.test_client()
    c.get("/healthz")                          # Dash takes in the callbacks at its first request
    assert "Note added" in _act(app, c, ids.NOTES_SAVE, body="local note")["msg"]
    note = int(_rows(root)["id"][0])
    assert _rows(root)["author"][0] == "local"
    assert _act(app, c, (ids.NOTES_EDIT, note))["value"] == "local note"
    assert "Note removed" in _act(app, c, (ids.NOTES_DELETE, note))["msg"] and _rows(root).empty


def test_the_models_page_offers_its_model_picker_and_it_retargets_the_panel(hosted):
    """The Models page's layout holds the picker (a component without children once fell out of the panel, so
    the renderer refused the callback it feeds); picking another model retargets the panel through dispatch."""
    app, _ = hosted
    client = _client(app, "mo")
    assert f"id='{ids.NOTES_MODEL}'" in str(app.validation_layout)       # every page's layout, as the renderer checks
    req = request_body(app, ids.NOTES_TARGET, {ids.NOTES_MODEL: "tiny-gru"}, f"{ids.NOTES_MODEL}.value")
    r = client.post("/_dash-update-component", json=req)
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    out = r.json["response"]
    assert out[ids.NOTES_TARGET]["data"] == {"model_id": "tiny-gru"} and out[ids.NOTES_KIND]["value"] == "model"
