"""Sign-in on its libraries: Jinja pages that escape what they show, Dash's JSON posts as its CSRF defence, the
sign-in limits shared by hosts through a real Redis, and sign-in failing closed when that Redis is down."""
from __future__ import annotations

import re
import uuid

import pytest

from analytics.settings import Settings
from app.hosted import auth, throttle
from app.server import create_app
from tests.app.hosted_gunicorn import LIMITS_URL

SECRET = "t" * 48
PASSWORD = "viewer-pass-1"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages") / "users.json"
    auth.UserStore(path).add("vera", PASSWORD, "viewer", created_by="test")
    return path


def _app(app_store, users_file, **settings):
    app = create_app(Settings(store=app_store, auth=True, secret_key=SECRET, users_file=users_file,
                              cookie_secure=False, **settings))
    app.server.test_client().get("/healthz")  # first request: Dash registers the page callbacks
    return app


def _sign_in(client, name: str, password: str, address: str = "127.0.0.1"):
    client.environ_base["REMOTE_ADDR"] = address
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post("/login", data={"username": name, "password": password, "csrf": token, "next": "/"})


def test_the_sign_in_page_escapes_what_it_shows_and_has_no_script(app_store, users_file):
    app = _app(app_store, users_file)
    c = app.server.test_client()
    r = _sign_in(c, '"><script>alert(1)</script>', "wrong-password-x")
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    assert "<script" not in r.text and '&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;' in r.text
    page = c.get('/login?next="><img src=x onerror=alert(1)>').text
    assert 'name="next" value="/"' in page and "<img" not in page        # not a local path: home instead
    assert "script-src 'self'" in c.get("/login").headers["Content-Security-Policy"]


def test_dash_posts_must_be_json_so_a_cross_site_form_cannot_send_one(app_store, users_file):
    """A page elsewhere can post a form (urlencoded, multipart or text/plain) with the user's cookie where
    SameSite allows it, but never JSON without a CORS preflight: the gate refuses any other body type."""
    app = _app(app_store, users_file)
    c = app.server.test_client()
    assert _sign_in(c, "vera", PASSWORD).status_code == 303
    for kind in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        r = c.post("/_dash-update-component", data='{"output": "x.children"}', content_type=kind)
        assert r.status_code == 415, kind
    assert c.post("/_dash-update-component", json={"output": "x.children"}).status_code != 415


def test_two_hosts_on_one_redis_add_up_the_failures(app_store, users_file):
    """Failures spread over two web hosts (two apps, each with its own memory, one Redis) add up to the lock."""
    shared = {"ratelimit_url": LIMITS_URL, "ratelimit_prefix": f"test-{uuid.uuid4().hex}"}
    a, b = _app(app_store, users_file, **shared), _app(app_store, users_file, **shared)
    for i in range(throttle.PAIR_MAX_FAILURES):
        host = a if i % 2 else b
        assert _sign_in(host.server.test_client(), "vera", "wrong-password-x", "10.9.0.1").status_code == 401
    for host in (a, b):
        r = _sign_in(host.server.test_client(), "vera", PASSWORD, "10.9.0.1")
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text and int(r.headers["Retry-After"]) > 60
    other = {"ratelimit_url": LIMITS_URL, "ratelimit_prefix": f"test-{uuid.uuid4().hex}"}   # another team's Redis
    assert _sign_in(_app(app_store, users_file, **other).server.test_client(), "vera", PASSWORD,
                    "10.9.0.1").status_code == 303


def test_sign_in_fails_closed_when_redis_is_down_and_sessions_go_on(app_store, users_file):
    up = _app(app_store, users_file, ratelimit_url=LIMITS_URL, ratelimit_prefix=f"test-{uuid.uuid4().hex}")
    signed = up.server.test_client()
    assert _sign_in(signed, "vera", PASSWORD).status_code == 303
    down = _app(app_store, users_file, ratelimit_url="redis://127.0.0.1:1/0")      # nothing listens on port 1
    r = _sign_in(down.server.test_client(), "vera", PASSWORD)
    assert r.status_code == 503 and "Signing in is unavailable for a moment" in r.text and r.headers["Retry-After"]
    again = down.server.test_client()                                    # a session made elsewhere still works here
    again.set_cookie("rnnvis_session", signed.get_cookie("rnnvis_session").value)
    assert again.get("/_dash-layout").status_code == 200


def test_the_limits_live_in_the_named_redis_else_the_brokers_else_in_the_process():
    assert throttle.storage_url(Settings(ratelimit_url="redis://a:6379/3", broker_url="redis://b:6379/0")) \
        == "redis://a:6379/3"
    assert throttle.storage_url(Settings(broker_url="redis://b:6379/0")) == "redis://b:6379/0"
    assert throttle.storage_url(Settings()) == throttle.storage_url(Settings(broker_url="filesystem")) == "memory://"


def test_a_burst_that_fills_a_limit_is_reported_once(app_store, users_file, caplog):
    """The one place a throttled burst is seen (signin._burst): the failure that fills a limit, not every one."""
    app = _app(app_store, users_file, ratelimit_url=LIMITS_URL, ratelimit_prefix=f"test-{uuid.uuid4().hex}")
    with caplog.at_level("WARNING", logger="app.hosted.signin"):
        for _ in range(throttle.PAIR_MAX_FAILURES):
            assert _sign_in(app.server.test_client(), "vera", "wrong-password-x", "10.8.0.1").status_code == 401
        assert _sign_in(app.server.test_client(), "vera", "wrong-password-x", "10.8.0.1").status_code == 429
    bursts = [r.getMessage() for r in caplog.records if "filled the" in r.getMessage()]
    assert bursts == ["sign-in failures for 'vera' from 10.8.0.1 filled the pair and account limit: further "
                      "attempts are throttled"]
