"""Hosted mode over HTTP (Flask's test client): every route refused without a session, roles enforced.

The app is built with ``auth`` on over the tiny store; three users (viewer, member, admin) live in a users
file of their own. Callback requests are built from the app's own callback map, as the browser sends them.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import dash
import pytest

from analytics import metadb, store
from analytics.settings import Settings
from app.cli import main
from app.hosted import auth, checks, security, throttle
from app.server import check_bind, create_app

SECRET = "s" * 48
PASSWORDS = {"vera": "viewer-pass-1", "mo": "member-pass-1", "ada": "admin-pass-1"}
ROLE_OF = {"vera": "viewer", "mo": "member", "ada": "admin"}


@pytest.fixture(scope="module")
def hosted(app_store, tmp_path_factory):
    users_file = tmp_path_factory.mktemp("auth") / "users.json"
    users = auth.UserStore(users_file)
    for name, pw in PASSWORDS.items():
        users.add(name, pw, ROLE_OF[name], created_by="test")
    settings = Settings(store=app_store, auth=True, secret_key=SECRET, users_file=users_file, cookie_secure=False)
    app = create_app(settings)
    app.server.test_client().get("/healthz")  # first request: Dash registers the page callbacks
    return app, users


def _login(app, name, password=None, next_="/"):
    c = app.server.test_client()
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"username": name, "password": password or PASSWORDS[name], "csrf": token,
                               "next": next_})
    return c, r


def _logout(client):
    """Sign out as the Sign out button does: POST /logout with the session's form token."""
    page = client.get("/logout")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/logout", data={"csrf": token})


def _key(app, fragment: str) -> str:
    return next(k for k in app.callback_map if fragment in k)


def _outputs(key: str) -> list[dict] | dict:
    if not key.startswith(".."):  # a single output
        cid, prop = key.rsplit(".", 1)
        return {"id": cid, "property": prop.split("@")[0]}
    outs = []
    for part in key.strip(".").split("..."):
        cid, prop = part.rsplit(".", 1)
        outs.append({"id": cid, "property": prop.split("@")[0]})
    return outs


def _callback(client, app, fragment, inputs, state=(), changed=None):
    key = _key(app, fragment)
    body = {"output": key, "outputs": _outputs(key),
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": changed or [f"{inputs[0][0]}.{inputs[0][1]}"]}
    return client.post("/_dash-update-component", json=body)


def _urls(app) -> list[tuple[str, str]]:
    """(method, url) for every registered route (sample values for variables) and every Dash page."""
    samples = {"path": "explore", "filename": "style.css", "package_name": "dash",
               "fingerprinted_path": "dash-renderer/build/dash_renderer.v4_0_0m1.min.js"}
    out = []
    for rule in app.server.url_map.iter_rules():
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<(?:[a-z]+:)?{arg}>", samples.get(arg, "x"), url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, url))
    out += [("GET", p["relative_path"]) for p in dash.page_registry.values()]
    out += [("GET", "/no-such-page"), ("GET", "/explore?model=tiny-gru"), ("GET", "/_dash-layout"),
            ("POST", "/_dash-update-component")]
    return sorted(set(out))


def test_every_route_is_refused_without_a_session(hosted):
    app, _ = hosted
    c = app.server.test_client()
    urls = _urls(app)
    assert len(urls) >= 15 and ("POST", "/_dash-update-component") in urls
    for method, url in urls:
        r = c.open(url, method=method, json={} if method == "POST" else None)
        if url in auth.PUBLIC_PATHS:
            assert r.status_code in (200, 303, 400), (method, url, r.status_code)
            continue
        assert r.status_code in (302, 401), (method, url, r.status_code)
        if r.status_code == 302:
            assert r.headers["Location"].startswith("/login?next=")
        else:
            assert r.is_json and r.json["error"] == "sign in first"
        assert b"tiny-lstm" not in r.data  # no data leaks in the refusal
    for url in ("/_dash-layout", "/_dash-dependencies", "/_dash-update-component", "/_reload-hash"):
        r = c.open(url, method="POST" if url.endswith("component") else "GET", json={})
        assert r.status_code == 401, url


def test_health_endpoint_stays_open_and_says_only_that_the_app_lives(hosted):
    app, _ = hosted
    r = app.server.test_client().get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}     # no model count without sign-in


@pytest.mark.parametrize("name", ["vera", "mo", "ada"])
def test_each_role_can_browse_every_page_and_run_sql(hosted, name):
    app, _ = hosted
    c, r = _login(app, name, next_="/sql")
    assert r.status_code == 303 and r.headers["Location"] == "/sql"
    for method, url in _urls(app):
        if method != "GET" or url in auth.PUBLIC_PATHS or "component-suites" in url or url.startswith("/static"):
            continue
        r = c.get(url)
        if url == "/models":  # an alias of the home page
            assert r.status_code == 302 and r.headers["Location"] == "/"
            continue
        assert r.status_code == 200, (name, url, r.status_code)
    r = _callback(c, app, "sql-table.columnDefs", [("sql-run", "n_clicks", 1)],
                  [("sql-editor", "value", "SELECT model_id FROM models ORDER BY 1")])
    assert r.status_code == 200
    assert [row["c0"] for row in r.json["response"]["sql-table"]["rowData"]] == ["tiny-gru", "tiny-lstm"]
    r = _callback(c, app, "app-user.children", [("app-sign-out", "id", "app-sign-out")])
    assert r.json["response"]["app-user"]["children"] == f"{name} ({ROLE_OF[name]})"


def test_only_members_evaluate_sentences_and_the_sentence_records_who(hosted, app_store):
    app, _ = hosted
    before = set(store.list_partitions(app_store, "sentences"))

    def add(client):
        return _callback(client, app, "explore-sentences.data",
                         [("explore-sentence-add", "n_clicks", 1), ("explore-sentence-clear", "n_clicks", 0)],
                         [("explore-model", "value", "tiny-gru"),
                          ("explore-sentence-text", "value", "the food is good"), ("explore-sentences", "data", [])])

    viewer, _ = _login(app, "vera")
    r = add(viewer)
    assert r.status_code == 200 and "Only members" in r.text
    assert r.json["response"]["explore-sentences"]["data"] == []
    assert set(store.list_partitions(app_store, "sentences")) == before
    member, _ = _login(app, "mo")
    r = add(member)
    assert r.status_code == 200
    ids = r.json["response"]["explore-sentences"]["data"]
    assert len(ids) == 1 and ids[0] not in before
    with store.connect(app_store) as con:
        who = store.query(con, "SELECT created_by FROM sentences WHERE sentence_id = ?", [ids[0]])
    assert who["created_by"].tolist() == ["mo"]


def test_job_actions_need_a_member(hosted):
    app, _ = hosted
    assert auth._callback_role(auth._callback_inputs(app, _key(app, "jobs-banner.children"))) == "member"
    assert auth._callback_role(auth._callback_inputs(app, _key(app, "jobs-cancel-msg.children"))) == "member"
    assert auth._callback_role(auth._callback_inputs(app, _key(app, "jobs-corpus-upload-id.data"))) == "member"
    assert auth._callback_role(auth._callback_inputs(app, _key(app, "jobs-byom-msg.children"))) == "member"
    assert auth._callback_role(auth._callback_inputs(app, _key(app,
                                                               "jobs-table.children"))) is None     # the list: everyone
    viewer, _ = _login(app, "vera")
    cancel_id = {"type": "jobs-cancel", "index": "no-such-job"}
    r = _callback(viewer, app, "jobs-cancel-msg.children", [(cancel_id, "n_clicks", [1])],
                  changed=['{"index":"no-such-job","type":"jobs-cancel"}.n_clicks'])
    assert r.status_code == 200 and "Only members" in r.json["response"]["jobs-cancel-msg"]["children"]
    r = _callback(viewer, app, "jobs-banner.children", [("jobs-submit", "n_clicks", 1)])
    assert "Only members" in r.json["response"]["jobs-banner"]["children"]
    r = _callback(viewer, app, "jobs-corpus-upload-id.data", [("jobs-corpus-upload", "contents", "data:,x")])
    assert "Only members" in r.text


def test_only_admins_manage_users_and_delete_models(hosted):
    app, users = hosted
    inputs = [("admin-add", "n_clicks", 1), ("admin-set-role", "n_clicks", 0),
              ("admin-remove", "submit_n_clicks", None), ("admin-delete-model", "submit_n_clicks", None)]
    state = [("admin-new-name", "value", "newbie"), ("admin-new-role", "value", "member"),
             ("admin-new-password", "value", "fresh-start-77"), ("admin-user", "value", None),
             ("admin-role", "value", "member"), ("admin-model", "value", None)]
    for name in ("vera", "mo"):
        c, _ = _login(app, name)
        r = _callback(c, app, "admin-msg.children", inputs, state)
        assert "Only admins" in r.text and "admin-users" not in r.json["response"]
        assert users.user("newbie") is None
    c, _ = _login(app, "ada")
    r = _callback(c, app, "admin-msg.children", inputs, state)
    assert "Added newbie" in r.text and users.user("newbie") == auth.User("newbie", "member")
    assert "vera" in r.text and r.json["response"]["admin-panel"]["style"] == {}
    newbie, r = _login(app, "newbie", "fresh-start-77")
    assert r.status_code == 303 and newbie.get("/_dash-layout").status_code == 200
    # removing a user ends their session at once
    r = _callback(c, app, "admin-msg.children",
                  [("admin-add", "n_clicks", 1), ("admin-set-role", "n_clicks", 0),
                   ("admin-remove", "submit_n_clicks", 1), ("admin-delete-model", "submit_n_clicks", None)],
                  [s if s[0] != "admin-user" else ("admin-user", "value", "newbie") for s in state],
                  changed=["admin-remove.submit_n_clicks"])
    assert "Removed newbie" in r.text and users.user("newbie") is None
    assert newbie.get("/_dash-layout").status_code == 401


def test_sign_in_refusals_logout_and_cookie_flags(hosted):
    app, users = hosted
    c, r = _login(app, "vera", "wrong-password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    c, r = _login(app, "nobody", "whatever-123")
    assert r.status_code == 401
    c = app.server.test_client()
    r = c.post("/login", data={"username": "vera", "password": PASSWORDS["vera"]})    # no form token
    assert r.status_code == 400 and c.get("/_dash-layout").status_code == 401
    c, r = _login(app, "vera", next_="//evil.example.com/x")
    assert r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "rnnvis_session=" in cookie
    assert c.get("/_dash-layout").status_code == 200
    assert _logout(c).status_code == 303
    assert c.get("/_dash-layout").status_code == 401
    # a role change ends the sessions of that user (they sign in again with the new role)
    c, _ = _login(app, "vera")
    users.set_role("vera", "viewer")
    assert c.get("/_dash-layout").status_code == 401


def test_secure_cookie_by_default_and_secret_required(app_store, tmp_path):
    users_file = tmp_path / "users.json"
    auth.UserStore(users_file).add("ada", "admin-pass-1", "admin")
    s = Settings(store=app_store, auth=True, secret_key=SECRET, users_file=users_file)
    assert s.cookie_secure
    app = create_app(s)
    c = app.server.test_client()
    https = "https://localhost"
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login", base_url=https).text).group(1)
    r = c.post("/login", data={"username": "ada", "password": "admin-pass-1", "csrf": token}, base_url=https)
    assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]
    assert c.get("/_dash-layout", base_url=https).status_code == 200
    with pytest.raises(ValueError, match="RNNVIS_SECRET_KEY"):
        create_app(replace(s, secret_key=None))


def test_open_mode_is_local_admin_and_loopback_only(app_store, capsys):
    check_bind(Settings(store=app_store, host="127.0.0.1"))
    check_bind(Settings(store=app_store, host="0.0.0.0", auth=True, secret_key=SECRET))
    with pytest.raises(ValueError, match="RNNVIS_AUTH=on"):
        check_bind(Settings(store=app_store, host="0.0.0.0"))
    assert main(["--store", str(app_store), "serve", "--host", "0.0.0.0", "--port", "8999"]) == 2
    assert "RNNVIS_AUTH=on" in capsys.readouterr().err
    assert auth.current_user() == auth.LOCAL and auth.require_role("admin") == auth.LOCAL


def test_users_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNVIS_USERS_FILE", str(tmp_path / "u.json"))
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["users", "add", "kim", "--role", "member", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "lee", "--password-stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["users", "set-role", "kim", "admin"]) == 0
    assert main(["users", "list"]) == 0
    out = capsys.readouterr().out
    assert "kim" in out and "admin" in out
    assert main(["users", "remove", "nobody"]) == 2 and "no user 'nobody'" in capsys.readouterr().err
    users = auth.UserStore(tmp_path / "u.json")
    assert users.verify("kim", "a-long-password")[0] == auth.User("kim", "admin")
    assert users.verify("kim", "wrong-password") is None
    db_file = metadb.sqlite_path(tmp_path)   # the users file's folder holds the (SQLite) user database
    assert b"a-long-password" not in db_file.read_bytes()
    assert db_file.stat().st_mode & 0o077 == 0
    assert main(["users", "remove", "kim"]) == 0 and len(users) == 0


# --------------------------------------------------------------------------- sessions that end


@pytest.fixture
def fresh(app_store, tmp_path):
    """A hosted app with its own users, sessions and sign-in counts (the throttle tests fill them)."""
    users_file = tmp_path / "users.json"
    users = auth.UserStore(users_file)
    for name, pw in PASSWORDS.items():
        users.add(name, pw, ROLE_OF[name], created_by="test")
    app = create_app(Settings(store=app_store, auth=True, secret_key=SECRET, users_file=users_file,
                              cookie_secure=False))
    app.server.test_client().get("/healthz")
    return app, users


def _cookie(client) -> str:
    return client.get_cookie("rnnvis_session").value


def _replay(app, cookie: str):
    """A new client (another browser) that presents a saved copy of a session cookie."""
    c = app.server.test_client()
    c.set_cookie("rnnvis_session", cookie)
    return c


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_damaged_users_file_of_an_older_version_stops_the_import_and_is_never_overwritten(tmp_path, content):
    """Importing a damaged users.json as empty would lock every user out: the start fails with its path, the
    file stays as it is, and once it is repaired the next start imports it."""
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(auth.AuthError, match="cannot import the users file .*users.json"):
        auth.UserStore(path)
    assert path.read_text() == content
    path.write_text(json.dumps({"version": 1, "users": {"ada": {"role": "admin", "hash": "$argon2id$x",
                                                                "session": "s1", "created_by": "cli"}}}))
    users = auth.UserStore(path)
    assert users.user("ada") == auth.User("ada", "admin") and users.user("ada", "s1") is not None
    assert len(auth.UserStore(path)) == 1                     # imported once


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(fresh):
    app, _ = fresh
    c, _ = _login(app, "vera", next_="/sql")
    saved = _cookie(c)
    assert _replay(app, saved).get("/sql").status_code == 200
    # GET /logout only shows the form; a POST without this session's token ends nothing
    assert c.get("/logout").status_code == 200 and c.post("/logout", data={"csrf": "forged"}).status_code == 400
    assert _replay(app, saved).get("/sql").status_code == 200
    assert _logout(c).status_code == 303
    stolen = _replay(app, saved)
    assert stolen.get("/sql").status_code == 302 and stolen.get("/_dash-layout").status_code == 401
    r = _callback(stolen, app, "sql-table.columnDefs", [("sql-run", "n_clicks", 1)],
                  [("sql-editor", "value", "SELECT model_id FROM models")])
    assert r.status_code == 401


def test_the_sign_out_button_posts_the_form_token(fresh):
    app, _ = fresh
    c, _ = _login(app, "vera")
    layout = json.dumps(c.get("/_dash-layout").json)
    form = re.search(r'\{"props": \{"children": \{"props": \{"children": "Sign out".*?"type": "Form"', layout)
    assert form and '"method": "post"' in form.group(0) and '"action": "/logout"' in form.group(0)
    button = json.loads(form.group(0) + "}")["props"]["children"]["props"]   # submits csrf=<its value>
    assert button["type"] == "submit" and button["name"] == "csrf"
    token = button["value"]
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    assert c.get("/_dash-layout").status_code == 401


def test_a_session_ends_at_its_lifetime_whatever_its_use(fresh):
    app, _ = fresh
    c, _ = _login(app, "mo")
    db, table = app.server.config[auth.SESSIONS_KEY].db, metadb.tables.sessions
    with db.read() as con:
        (rec,) = con.execute(table.select()).mappings().all()
    assert rec["expires"] - rec["created"] == auth.SESSION_HOURS * 3600
    for _ in range(3):  # using the session neither re-sends the cookie nor moves the end
        r = c.get("/_dash-layout")
        assert r.status_code == 200 and "Set-Cookie" not in r.headers
    with db.read() as con:
        assert con.execute(table.select()).mappings().one()["expires"] == rec["expires"]
    saved = _cookie(c)
    # 12 hours pass: the record says so (as it will after that time)
    with db.write() as con:
        con.execute(table.update().where(table.c.key == rec["key"]).values(expires=time.time() - 1))
    assert c.get("/_dash-layout").status_code == 401 and _replay(app, saved).get("/sql").status_code == 302


# --------------------------------------------------------------------------- sign-in throttling


def _login_from(app, address: str, name: str, password: str):
    c = app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return c.post("/login", data={"username": name, "password": password, "csrf": token, "next": "/"})


@pytest.fixture
def limits_clock(monkeypatch):
    """The clock of the in-process rate-limit storage that ``fresh`` apps use (no Redis configured) and of the
    throttle reading it, stopped: ``clock[0]`` is its time, moved by the test."""
    import limits.storage.memory
    clock = [time.time()]
    stopped = types.SimpleNamespace(time=lambda: clock[0])
    monkeypatch.setattr(limits.storage.memory, "time", stopped)
    monkeypatch.setattr(throttle, "time", stopped)
    return clock


def test_ten_failures_lock_the_account_from_that_address_and_slow_it_down_elsewhere(fresh, limits_clock):
    """Ten wrong guesses from one address lock that (account, address) pair, not the account: from another
    address its owner waits a second (back-off), then signs in."""
    app, _ = fresh
    for _ in range(throttle.PAIR_MAX_FAILURES):
        assert _login_from(app, "10.0.1.1", "vera", "wrong-password-x").status_code == 401
    r = _login_from(app, "10.0.1.1", "vera", PASSWORDS["vera"])        # the right password, the guesser's address
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert 60 < int(r.headers["Retry-After"]) <= 15 * 60
    r = _login_from(app, "10.0.1.99", "vera", PASSWORDS["vera"])       # the owner, elsewhere, at once: slowed down
    assert r.status_code == 429 and "slowed down" in r.text and r.headers["Retry-After"] == "1"
    limits_clock[0] += 1
    assert _login_from(app, "10.0.1.99", "vera", PASSWORDS["vera"]).status_code == 303
    assert _login_from(app, "10.0.1.1", "mo", PASSWORDS["mo"]).status_code == 303      # other accounts: fine


def test_an_account_guessed_from_many_addresses_backs_off_exponentially_and_boundedly(fresh, limits_clock):
    app, _ = fresh
    for i in range(throttle.ACCOUNT_FREE_FAILURES):
        assert _login_from(app, f"10.0.6.{i}", "mo", "wrong-password-x").status_code == 401
    waits = []
    for i in range(12):
        r = _login_from(app, f"10.0.7.{i}", "mo", "wrong-password-x")
        assert r.status_code == 429 and "slowed down" in r.text
        waits.append(int(r.headers["Retry-After"]))
        limits_clock[0] += waits[-1]
        assert _login_from(app, f"10.0.7.{i}", "mo", "wrong-password-x").status_code == 401
    assert waits == [min(2 ** i, int(throttle.BACKOFF_MAX_S)) for i in range(12)]
    limits_clock[0] += throttle.BACKOFF_MAX_S
    assert _login_from(app, "10.0.8.1", "mo", PASSWORDS["mo"]).status_code == 303
    assert _login_from(app, "10.0.8.2", "mo", "wrong-password-x").status_code == 401   # the count starts again


def test_failures_from_one_address_lock_the_address_for_any_account(fresh):
    app, _ = fresh
    for i in range(throttle.ADDRESS_MAX_FAILURES):
        assert _login_from(app, "10.0.2.1", f"guess{i}", "wrong-password-x").status_code == 401
    assert _login_from(app, "10.0.2.1", "ada", PASSWORDS["ada"]).status_code == 429
    assert _login_from(app, "10.0.2.2", "ada", PASSWORDS["ada"]).status_code == 303


def test_a_success_clears_the_account_count(fresh):
    app, _ = fresh
    for i in range(9):
        assert _login_from(app, f"10.0.3.{i}", "mo", "wrong-password-x").status_code == 401
    assert _login_from(app, "10.0.3.50", "mo", PASSWORDS["mo"]).status_code == 303
    for i in range(9):
        assert _login_from(app, f"10.0.4.{i}", "mo", "wrong-password-x").status_code == 401
    assert _login_from(app, "10.0.4.50", "mo", PASSWORDS["mo"]).status_code == 303


def test_password_checks_are_capped_on_the_machine(fresh, app_store):
    """With every password-check slot held (by another process), a sign-in is answered 429 without checking."""
    app, _ = fresh
    n = checks.argon2_slots()
    code = ("import sys; from analytics.sandbox import slots as s\n"
            f"d = s.run_dir({str(app_store)!r}); fds = [s.try_slot(d, 'argon2', {n}) for _ in range({n})]\n"
            "print('held' if all(f is not None for f in fds) else 'not held', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == "held"
        r = _login_from(app, "10.0.5.1", "vera", PASSWORDS["vera"])
        assert r.status_code == 429 and "busy" in r.text and r.headers["Retry-After"]
    finally:
        holder.stdin.close()
        holder.wait()
    assert _login_from(app, "10.0.5.1", "vera", PASSWORDS["vera"]).status_code == 303


# --------------------------------------------------------------------------- password policy


@pytest.mark.parametrize("name,password,why", [
    ("kim", "password", "most common"), ("kim", "Password123!", "most common"), ("kim", "qwertyuiop", "most common"),
    ("kim", "aaaaaaaa", "repeats"), ("kim", "abababab", "repeats"), ("kim", "87654321", "run of"),
    ("kim", "abcdefghij", "run of"), ("kimberly", "kimberly", "user name"), ("kimberly", "Kimberly-2024", "user name"),
    ("kim", "rnnvis-2024", "application's name"), ("kim", "short1", "at least 8"),
])
def test_common_and_trivial_passwords_are_refused(tmp_path, name, password, why):
    users = auth.UserStore(tmp_path / "u.json")
    with pytest.raises(auth.AuthError, match=why):
        users.add(name, password, "viewer")
    users.add(name, "tulip-anvil-river", "viewer")
    with pytest.raises(auth.AuthError, match=why):
        users.set_password(name, password)


def test_the_admin_page_and_cli_give_the_policy_message(fresh, tmp_path, monkeypatch, capsys):
    app, users = fresh
    c, _ = _login(app, "ada")
    r = _callback(c, app, "admin-msg.children",
                  [("admin-add", "n_clicks", 1), ("admin-set-role", "n_clicks", 0),
                   ("admin-remove", "submit_n_clicks", None), ("admin-delete-model", "submit_n_clicks", None)],
                  [("admin-new-name", "value", "lee"), ("admin-new-role", "value", "member"),
                   ("admin-new-password", "value", "password1"), ("admin-user", "value", None),
                   ("admin-role", "value", "member"), ("admin-model", "value", None)])
    assert "most common" in r.text and users.user("lee") is None
    monkeypatch.setenv("RNNVIS_USERS_FILE", str(tmp_path / "cli.json"))
    monkeypatch.setattr("sys.stdin", io.StringIO("letmein1\n"))
    assert main(["users", "add", "lee", "--password-stdin"]) == 2
    assert "most common" in capsys.readouterr().err


# --------------------------------------------------------------------------- request size, headers


def test_bodies_over_the_cap_of_the_role_are_refused_before_parsing(fresh):
    app, _ = fresh
    anon = app.server.test_client()
    big_form = {"username": "x" * (security.ANONYMOUS_MAX_BODY + 10), "password": "y", "csrf": "z"}
    r = anon.post("/login", data=big_form)
    assert r.status_code == 413 and r.headers["Connection"] == "close"
    assert anon.post("/_dash-update-component", data=b"{" * (64 << 10),
                     content_type="application/json").status_code == 413
    viewer, _ = _login(app, "vera")
    key = _key(app, "sql-table.columnDefs")
    body = {"output": key, "outputs": _outputs(key), "inputs": [{"id": "sql-run", "property": "n_clicks", "value": 1}],
            "state": [{"id": "sql-editor", "property": "value", "value": "SELECT 1 -- " + "x" * (2 << 20)}],
            "changedPropIds": ["sql-run.n_clicks"]}
    r = viewer.post("/_dash-update-component", json=body)
    assert r.status_code == 413 and r.is_json and "limit" in r.json["error"]
    member, _ = _login(app, "mo")    # members upload files: the same body is read (and the query refused by its
    r = member.post("/_dash-update-component", json=body)  # declared bound, app.inputs, before the console runs)
    assert r.status_code == 400 and "sql-editor.value: expected at most 100,000 characters" in r.text


def test_security_headers_on_every_response(fresh, app_store):
    app, _ = fresh
    c, _ = _login(app, "vera")
    for url in ("/", "/sql", "/_dash-layout", "/login", "/healthz", "/assets/style.css"):
        h = c.get(url).headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        assert app.csp_hashes() and all(x in script_src.split() for x in app.csp_hashes())  # Dash's inline scripts
        assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in h                          # cookies are not Secure here
    secure = create_app(Settings(store=app_store, auth=True, secret_key=SECRET,
                                 users_file=app.server.config[auth.USERS_KEY].path))
    h = secure.server.test_client().get("/login", base_url="https://localhost").headers
    assert h["Strict-Transport-Security"].startswith("max-age=") and "Content-Security-Policy" in h
    assert "Content-Security-Policy" in create_app(Settings(store=app_store)).server.test_client().get("/").headers


def test_behind_a_proxy_addresses_come_from_x_forwarded_for(app_store, tmp_path):
    users_file = tmp_path / "users.json"
    auth.UserStore(users_file).add("vera", PASSWORDS["vera"], "viewer")
    app = create_app(Settings(store=app_store, auth=True, secret_key=SECRET, users_file=users_file,
                              cookie_secure=False, proxy_hops=1))

    def login(client_address: str, password: str, peer: str = "127.0.0.1"):
        c = app.server.test_client()
        c.environ_base["REMOTE_ADDR"] = peer                           # the proxy, on this machine
        headers = {"X-Forwarded-For": client_address}
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login", headers=headers).text).group(1)
        return c.post("/login", headers=headers, data={"username": f"guess-{password}", "password": password,
                                                       "csrf": token})

    for i in range(throttle.ADDRESS_MAX_FAILURES):
        assert login("203.0.113.7", f"wrong-{i}").status_code == 401
    assert login("203.0.113.7", "wrong-x").status_code == 429        # that client is locked out ...
    assert login("198.51.100.1", "wrong-y").status_code == 401       # ... not everyone behind the proxy
    # a client reaching gunicorn directly (not from loopback) is counted by its own address, whatever it forwards
    for i in range(throttle.ADDRESS_MAX_FAILURES):
        assert login(f"198.51.100.{i + 2}", f"direct-{i}", peer="192.0.2.50").status_code == 401
    assert login("198.51.100.200", "direct-x", peer="192.0.2.50").status_code == 429


def test_console_queries_faster_than_the_rate_are_answered_by_the_gate(hosted, limits_clock):
    """A client re-sending queries in a tight loop cost a Dash dispatch each (bench_hostile: other users' p95
    7.5x quiet): past CONSOLE_BURST queries in CONSOLE_BURST / CONSOLE_RATE seconds, queries are answered with a
    message by the access gate, per user, and never run."""
    app, _ = hosted
    limits_clock[0] += 60                                               # earlier tests' queries: out of the window
    vera, _ = _login(app, "vera")
    query = [("sql-editor", "value", "SELECT 42 AS answer")]
    answers = [_callback(vera, app, "sql-table.columnDefs", [("sql-run", "n_clicks", i)], query) for i in range(6)]
    assert all(r.status_code == 200 for r in answers)
    ran = [r for r in answers if "sql-table" in r.json["response"]]
    assert len(ran) == throttle.CONSOLE_BURST
    assert all(r.json["response"]["sql-table"]["rowData"][0]["c0"] == 42 for r in ran)
    for r in answers[throttle.CONSOLE_BURST:]:
        (message,) = [v["children"] for v in r.json["response"].values()]
        assert message.startswith("You are sending queries faster than 2 a second")
    mo, _ = _login(app, "mo")                                            # another user: a window of their own
    r = _callback(mo, app, "sql-table.columnDefs", [("sql-run", "n_clicks", 1)], query)
    assert r.json["response"]["sql-table"]["rowData"][0]["c0"] == 42
    limits_clock[0] += 1.0                                               # a second later: the window is still full
    again = _callback(vera, app, "sql-table.columnDefs", [("sql-run", "n_clicks", 8)], query)
    assert "sql-table" not in again.json["response"]
    limits_clock[0] += 1.5                                               # a window later: a burst again
    again = [_callback(vera, app, "sql-table.columnDefs", [("sql-run", "n_clicks", 9)], query) for _ in range(5)]
    assert ["sql-table" in r.json["response"] for r in again] == [True] * throttle.CONSOLE_BURST + [False]


def test_the_jobs_page_offers_and_accepts_uploads_by_role_through_dispatch(hosted):
    """The corpus box of the Jobs page, rendered and used as the browser does (the pages callback, then the
    dropdown's callback): a member is offered and may reuse only their own uploads, a viewer none, an admin
    everyone's, labelled with the uploader."""
    import shutil

    from app import context
    from workers import uploads
    app, _ = hosted
    folder = Path(app.server.config[context.SETTINGS_KEY].store) / uploads.UPLOAD_DIR
    before = set(folder.iterdir()) if folder.exists() else set()
    try:
        _offers_and_accepts_uploads_by_role(app, folder.parent)
    finally:                                                            # the session's shared store: as it was
        for new in (set(folder.iterdir()) if folder.exists() else set()) - before:
            shutil.rmtree(new)


def _offers_and_accepts_uploads_by_role(app, root: Path) -> None:
    from workers import uploads
    files = [(p.name, p.read_bytes()) for p in sorted((Path(__file__).parents[1] / "fixtures" / "ptb").glob("*.txt"))]
    mine = uploads.save_corpus_upload(root, files, "ptb", owner="mo")
    theirs = uploads.save_corpus_upload(root, files, "ptb", owner="someone-else")

    def offered(client) -> list[dict]:
        r = _callback(client, app, "_pages_content.children",
                      [("_pages_location", "pathname", "/jobs"), ("_pages_location", "search", "")])
        assert r.status_code == 200
        found: list = []

        def walk(node):
            if isinstance(node, dict):
                if node.get("props", {}).get("id") == "jobs-corpus-mine":
                    found.append(node["props"].get("options") or [])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(r.json["response"])
        (options,) = found
        return options

    (reuse_key,) = [k for k, cb in app.callback_map.items() if cb["inputs"] == [{"id": "jobs-corpus-mine",
                                                                                   "property": "value"}]]

    def reuse(client, upload_id):
        r = _callback(client, app, reuse_key, [("jobs-corpus-mine", "value", upload_id)])
        assert r.status_code == 200
        return r.json["response"]

    vera, _ = _login(app, "vera")
    mo, _ = _login(app, "mo")
    ada, _ = _login(app, "ada")
    assert offered(vera) == []
    assert [o["value"] for o in offered(mo)] == [mine.upload_id]
    by = {o["value"]: o["label"].rsplit(" by ", 1)[1] for o in offered(ada)}
    assert (by[mine.upload_id], by[theirs.upload_id]) == ("mo", "someone-else")
    assert reuse(mo, mine.upload_id)["jobs-corpus-upload-id"]["data"]["upload_id"] == mine.upload_id
    refused = reuse(mo, theirs.upload_id)                               # a forged pick of another user's id
    assert refused["jobs-corpus-upload-id"]["data"] is None and "belongs to another user" in json.dumps(refused)
    assert "Only members" in json.dumps(reuse(vera, mine.upload_id))
    assert reuse(ada, theirs.upload_id)["jobs-corpus-upload-id"]["data"]["upload_id"] == theirs.upload_id
