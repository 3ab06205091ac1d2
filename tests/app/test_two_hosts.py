"""Two web hosts, one team (issue 24 section 3): two gunicorn servers, each with its own working directory,
run directory and temporary directory (nothing local shared; only the store mount), one Celery worker, a real
PostgreSQL (a throwaway database) and Redis.

Checked over HTTP, as browsers behind a load balancer would do it: a cookie made on A works on B; signing out
on B ends it on A; ten wrong passwords spread over A and B give a 429; a job submitted on A shows its progress
on B, where another member cannot cancel it (an admin can); A killed mid-session, B keeps serving the same
signed-in user.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil

import pytest
import requests

from analytics import metadb
from app import ids
from app.hosted import auth
from tests.app.hosted_gunicorn import HostedGunicorn, free_port, sign_in
from tests.app.test_dispatch import Layout, _body, _walk
from tests.metadata_db import throwaway_postgres
from tests.workers.jobhelpers import REDIS_URL, Worker, job_env, wait_for
from workers import records

PASSWORDS = {"ada": ("admin", "admin-pass-1"), "mo": ("member", "member-pass-1"), "kim": ("member", "member-pass-2"),
             "tom": ("viewer", "viewer-pass-1")}


@pytest.fixture(scope="module")
def team(tiny_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-hosts")
    store = tmp / "shared-mount" / "store"
    shutil.copytree(tiny_store, store, ignore=shutil.ignore_patterns(".staging", ".rnnvis.sqlite*"))
    prefix = f"rnnvis-two-hosts-{secrets.token_hex(3)}:"
    with throwaway_postgres() as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv(metadb.URL_ENV, url)
        users = auth.UserStore(store / "users.json")
        for name, (role, pw) in PASSWORDS.items():
            users.add(name, pw, role, created_by="cli")
        env = job_env(store, REDIS_URL, prefix, RNNVIS_DATABASE_URL=url)
        worker = Worker("two-hosts", env, tmp).start()
        hosts = {}
        try:
            for name in ("A", "B"):
                home = tmp / f"host-{name}"
                for d in ("run", "tmp"):
                    (home / d).mkdir(parents=True)
                port = free_port()
                hosts[name] = (HostedGunicorn(store, store / "users.json", f"127.0.0.1:{port}", workers=2, cwd=home,
                                              prefix=prefix + "limits",   # one deployment: shared sign-in limits
                                              **{k: v for k, v in env.items() if k.startswith("RNNVIS_")},
                                              RNNVIS_RUN_DIR=str(home / "run"), TMPDIR=str(home / "tmp"),
                                              HOME=str(home)), f"http://127.0.0.1:{port}")
            for g, base in hosts.values():
                g.wait_until_up(base)
            worker.wait_ready()
            yield {"store": store, "url": url, "A": hosts["A"], "B": hosts["B"], "worker": worker}
        finally:
            for g, _ in hosts.values():
                g.close()
            worker.stop()


def _session(base, name) -> requests.Session:
    http = requests.Session()
    r = sign_in(base, name, PASSWORDS[name][1], http=http)
    assert r.status_code == 303, r.text[:300]
    return http


def _with_cookie(cookie: str) -> requests.Session:
    http = requests.Session()
    http.cookies.set("rnnvis_session", cookie)
    return http


def _sign_out(base, http) -> requests.Response:
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/logout", timeout=60).text).group(1)
    return http.post(base + "/logout", data={"csrf": token}, allow_redirects=False, timeout=60)


def test_a_cookie_made_on_a_works_on_b_and_signing_out_on_b_ends_it_on_a(team):
    (_, a), (_, b) = team["A"], team["B"]
    http = _session(a, "mo")
    cookie = http.cookies.get("rnnvis_session")
    assert _with_cookie(cookie).get(b + "/_dash-layout", timeout=60).status_code == 200
    assert _sign_out(b, _with_cookie(cookie)).status_code == 303
    assert _with_cookie(cookie).get(a + "/_dash-layout", timeout=60).status_code == 401
    assert _with_cookie(cookie).get(b + "/_dash-layout", timeout=60).status_code == 401


def test_ten_wrong_passwords_spread_over_a_and_b_give_a_429(team, monkeypatch):
    (_, a), (_, b) = team["A"], team["B"]
    monkeypatch.setenv(metadb.URL_ENV, team["url"])
    codes = [sign_in((a, b)[i % 2], "tom", "wrong-password-x").status_code for i in range(10)]
    assert codes == [401] * 10
    assert sign_in(a, "tom", PASSWORDS["tom"][1]).status_code == 429     # even with the right password now
    assert sign_in(b, "tom", PASSWORDS["tom"][1]).status_code == 429
    burst = metadb.audit.query(team["store"], action="sign-in throttled", who="tom")   # one burst, one row
    assert list(burst["target"]) == ["127.0.0.1"]


@pytest.fixture(scope="module")
def local_app(tiny_store, tmp_path_factory):
    """The same dashboard in this process (open mode, its own store): only to build callback bodies."""
    from analytics.settings import Settings
    from app.server import create_app
    app = create_app(Settings(store=tmp_path_factory.mktemp("layout-only")))
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    components = {}
    _walk(app.validation_layout, components)
    return deps, Layout(components)


def _post(base, http, body) -> dict:
    r = http.post(base + "/_dash-update-component", json=body, timeout=120)
    assert r.status_code == 200, r.text[:500]
    return r.json()["response"]


def _submit_body(local_app) -> dict:
    deps, layout = local_app
    body = _body(next(d for d in deps if "jobs-banner.children" in d["output"]), layout)
    tiny = {"cell": "gru", "layers": 1, "hidden_size": 8, "embed_size": 8, "epochs": 30, "batch_size": 32,
            "bptt": 20, "vocab_size": 500}
    for entry in body["state"]:
        field = next((f for f in tiny if entry["id"] == ids.jobs_field(f)), None)
        if field:
            entry["value"] = tiny[field]
        elif entry["id"] == ids.JOBS_CORPUS_SOURCE:
            entry["value"] = "builtin"
        elif entry["id"] == ids.JOBS_CORPUS_BUILTIN:
            entry["value"] = "brown"
        elif entry["id"] == ids.JOBS_MODEL_ID:
            entry["value"] = "team-job"
    return body


def _cancel_body(local_app, job_id) -> dict:
    deps, _ = local_app
    dep = next(d for d in deps if "jobs-cancel-msg.children" in d["output"])
    outs = [{"id": p.rsplit(".", 1)[0], "property": p.rsplit(".", 1)[1].split("@")[0]}
            for p in dep["output"].strip(".").split("...")]
    button = {"index": job_id, "type": ids.JOBS_CANCEL}
    return {"output": dep["output"], "outputs": outs,
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]], "state": [],
            "changedPropIds": [json.dumps(button, sort_keys=True, separators=(",", ":")) + ".n_clicks"]}


def _jobs_table(local_app, base, http) -> str:
    deps, layout = local_app
    return json.dumps(_post(base, http, _body(next(d for d in deps if "jobs-table.children" in d["output"]),
                                               layout)))


def test_a_job_submitted_on_a_shows_progress_on_b_where_another_member_cannot_cancel_it(team, local_app,
                                                                                        monkeypatch):
    (_, a), (_, b) = team["A"], team["B"]
    monkeypatch.setenv(metadb.URL_ENV, team["url"])
    out = json.dumps(_post(a, _session(a, "mo"), _submit_body(local_app)))
    job_id = re.search(r"Queued job (j[0-9a-f]{8})", out)
    assert job_id, out[:1000]
    job_id = job_id.group(1)
    mo_on_b = _session(b, "mo")

    def progress_on_b():
        table = _jobs_table(local_app, b, mo_on_b)
        shown = re.search(r'"aria-valuenow": "(\d+)"', table)
        return job_id in table and "running" in table and shown and int(shown.group(1)) > 0 and table
    wait_for(progress_on_b, 240, f"job {job_id} to show progress on host B", poll=1.0)
    msg = json.dumps(_post(b, _session(b, "kim"), _cancel_body(local_app, job_id)))
    assert "submitted by mo" in msg and "only they or an admin" in msg
    assert records.read_job(team["store"], job_id).status == "running"
    assert not records.cancel_requested(team["store"], job_id)
    assert "cancelling" in json.dumps(_post(b, _session(b, "ada"), _cancel_body(local_app, job_id)))
    wait_for(lambda: records.read_job(team["store"], job_id).status == "cancelled", 120, "the cancel")
    events = [(e.who, e.action) for e in metadb.audit.query(team["store"], text=job_id).itertuples()]
    assert ("mo", "job submitted") in events and ("ada", "job cancelled") in events
    assert ("kim", "job cancelled") not in events


def test_b_keeps_serving_the_signed_in_user_when_a_is_killed(team, local_app):
    (host_a, a), (_, b) = team["A"], team["B"]
    http = _session(a, "ada")
    assert http.get(a + "/_dash-layout", timeout=60).status_code == 200
    host_a.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(a + "/healthz", timeout=10)
    cookie = http.cookies.get("rnnvis_session")
    on_b = _with_cookie(cookie)
    assert on_b.get(b + "/sql", timeout=60).status_code == 200
    deps, layout = local_app
    body = _body(next(d for d in deps if "sql-table.columnDefs" in d["output"]), layout)
    for entry in body["state"]:
        if entry["id"] == ids.SQL_EDITOR:
            entry["value"] = "SELECT count(*) AS n FROM jobs"
    rows = _post(b, on_b, body)[ids.SQL_TABLE]["rowData"]
    assert rows and rows[0]["c0"] >= 1
