"""The Jobs page: layout, callbacks as plain functions, and discovery by a ``use_pages`` Dash app."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap

from analytics import jobs
from analytics.settings import Settings
from jobhelpers import REPO


def _text(component) -> str:
    import plotly
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def _ids(component) -> set[str]:
    found = set()

    def walk(c):
        if isinstance(c, (list, tuple)):
            for x in c:
                walk(x)
            return
        cid = getattr(c, "id", None)
        if isinstance(cid, str):
            found.add(cid)
        children = getattr(c, "children", None)
        if children is not None and not isinstance(children, str):
            walk(children)
    walk(component)
    return found


def test_every_callback_id_is_in_the_layout_and_namespaced(dash_app, jobs_page):
    layout_ids = _ids(jobs_page.layout())
    assert all(i.startswith("jobs-") for i in layout_ids)
    deps = json.loads(dash_app.server.test_client().get("/_dash-dependencies").data)
    used = set()
    for d in deps:
        for part in d["output"].strip(".").split("..."):
            used.add(part.split("@")[0].rsplit(".", 1)[0])
        used.update(x["id"] for x in d["inputs"] + d["state"] if isinstance(x["id"], str))
    used = {u for u in used if u.startswith("jobs-")}
    assert used and used <= layout_ids, used - layout_ids


def test_form_refuses_bad_values_with_field_messages(dash_app, jobs_page, tmp_path):
    dash_app.server.config["RNNVIS_SETTINGS"] = Settings(store=tmp_path, broker_url="redis://127.0.0.1:1/0")
    with dash_app.server.test_request_context():
        values = [1, 0, 8, 10**6, 1.0, 4, 10, 0.0]  # hidden size 0, a million epochs
        out = jobs_page.submit_job(1, "demo-lstm", "lstm", {f: v for (f, _, _), v in zip(jobs_page.FIELDS, values)}, "upload", "brown", None, "", "")
    errors = out["errors"]
    assert "between 1 and 8192" in errors["hidden_size"] and "between 1 and 1000" in errors["epochs"]
    assert "choose a built-in corpus or upload" in errors["corpus"]
    assert "Not submitted" in str(out["banner"]) and out["refresh"] is jobs_page.no_update
    assert not (tmp_path / "jobs").exists()


def test_upload_callback_refuses_empty_binary_and_csv_without_text(dash_app, jobs_page, tmp_path, fixtures):
    dash_app.server.config["RNNVIS_SETTINGS"] = Settings(store=tmp_path)

    def url(data: bytes) -> str:
        return "data:application/octet-stream;base64," + base64.b64encode(data).decode()
    with dash_app.server.test_request_context():
        for name, data, fmt, message in (("e.txt", b"", None, "is empty"), ("b.txt", bytes(range(256)), None, "binary"),
                                         ("r.csv", b"id,score\n1,great\n", "csv", "text column")):
            store_data, status, _ = jobs_page.upload_corpus([url(data)], [name], fmt)
            assert store_data is None and message in _text(status), (name, status)
        ok, status, source = jobs_page.upload_corpus([url((fixtures / "reviews.csv").read_bytes())], ["reviews.csv"], None)
    assert ok["task"] == "sentiment" and "uploaded" in _text(status) and source == "upload"


def test_table_progress_and_curve_from_records(dash_app, jobs_page, tmp_path):
    root = tmp_path
    dash_app.server.config["RNNVIS_SETTINGS"] = Settings(store=root)
    rec = jobs.JobRecord("j00000001", "train", "m1", status="running", progress=0.45, submitted_by="ann",
                         started_at=jobs._now(), heartbeat_at=jobs._now(), worker="w@h/1", attempts=1, stage="train",
                         detail={"latest": {"stage": "train", "epoch": 2, "epochs": 4, "step": 5, "steps": 10,
                                            "loss": 4.5, "tokens_per_s": 1234.0},
                                 "curve": [{"epoch": 1, "train_loss": 5.0, "valid_loss": 5.2}]})
    jobs.write_job(root, rec)
    failed = jobs.JobRecord("j00000002", "train", "m2", status="failed", error="ValueError: boom",
                            submitted_by="bob", stage="train")
    jobs.write_job(root, failed)
    with dash_app.server.test_request_context():
        table, interval, options, selected = jobs_page.refresh_jobs(1, None, None)
        fig = jobs_page.show_curve(selected, 1)
    html_text = _text(table)
    assert interval == jobs_page.ACTIVE_POLL_MS and selected == "j00000001"
    assert "epoch 2/4, step 5/10" in html_text and "4.500" in html_text and "1,234" in html_text
    assert "ValueError: boom" in html_text and "ann" in html_text and '"aria-valuenow": "45"' in html_text
    assert "jobs-cancel" in html_text  # the running job has a Cancel button
    assert [t.name for t in fig.data][:2] == ["train loss", "validation loss"] and list(fig.data[0].x) == [1]
    with dash_app.server.test_request_context():  # cancel through the button's callback
        from unittest import mock
        trigger = mock.Mock(triggered_id={"type": jobs_page.IDS.cancel, "index": rec.job_id})
        with mock.patch.object(jobs_page, "ctx", trigger):
            msg, refresh = jobs_page.cancel_job([1])
        table, *_ = jobs_page.refresh_jobs(2, refresh, selected)
    assert "cancelling" in msg and "cancelling" in _text(table)


def test_discovered_by_the_dashboard(tmp_path, tiny_store):
    """The dashboard's create_app (use_pages on app/pages) serves the page at /jobs, listed in the nav
    (in a subprocess: Dash's page registry and callback lists are process-wide)."""
    script = textwrap.dedent(f"""
        import dash, json
        from pathlib import Path
        from analytics.settings import Settings
        from app.server import create_app
        app = create_app(Settings(store=Path({str(tiny_store)!r})))
        page = [p for p in dash.page_registry.values() if p["path"] == "/jobs"][0]
        assert page["name"] == "Jobs" and page["order"] == 3, page
        c = app.server.test_client()
        assert c.get("/jobs").status_code == 200
        deps = json.loads(c.get("/_dash-dependencies").data)
        assert any("jobs-table" in d["output"] for d in deps)
        assert c.get("/healthz").get_json()["models"] == 2
        print("ok")
    """)
    (tmp_path / "run_app.py").write_text(script)
    out = subprocess.run([sys.executable, str(tmp_path / "run_app.py")], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
