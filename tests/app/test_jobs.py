"""The Jobs page's logic as plain functions (app.logic.jobs, app.logic.jobs_view) on a real store, and the page
as the dashboard registers it. Submitting with a working broker is in tests/workers; clicks in tests/app/
test_browser_jobs.py."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analytics.settings import Settings
from app import ids
from app.hosted.auth import LOCAL, User
from app.logic import jobs as logic
from app.logic import jobs_view as view
from models.config import ModelConfig, TrainConfig
from models.options import declared
from workers import records
from workers.planning import FORM_FIELDS
from workers.settings import JobSettings

REPO = Path(__file__).resolve().parents[2]
JS = JobSettings()
VIEWER = User("vic", "viewer")


def _text(component) -> str:
    import plotly
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def _url(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def test_the_form_is_the_configs_fields_with_their_bounds():
    """Every numeric setting of the configs declares its bounds in models/config.py, and the form offers exactly
    those."""
    bounds = {cls: {d.name: (d.option.low, d.option.high) for d in declared(cls)} for cls in (ModelConfig, TrainConfig)}
    for cls in (ModelConfig, TrainConfig):
        for d in declared(cls):
            if d.kind in (int, float):
                assert None not in bounds[cls][d.name], f"{cls.__name__}.{d.name} has no bounds in models/config.py"
    assert set(logic.FIELDS) == set(FORM_FIELDS) and len(logic.FIELDS) == len(set(logic.FIELDS))
    assert FORM_FIELDS["hidden_size"].high == bounds[ModelConfig]["hidden_size"][1]
    assert FORM_FIELDS["vocab_size"].low == bounds[TrainConfig]["vocab_size"][0]   # the narrower of the two configs'
    assert logic.label("lr") == "Learning rate" and logic.label("layers") == "Layers"
    assert logic.hint("hidden_size") == "whole number, 1 to 8192" and "lstm" in logic.hint("cell")
    values = logic.preset_values("demo-sentiment")
    assert values["cell"] == "gru" and values["corpus"] == "fine_foods"
    assert set(values) == set(logic.FIELDS) | {"corpus"}


def test_form_refuses_bad_values_with_field_messages(tmp_path):
    settings = Settings(store=tmp_path, broker_url="redis://127.0.0.1:1/0")
    values = {**logic.preset_values("demo-lstm"), "hidden_size": 0, "epochs": 10**6, "dropout": None, "layers": 2.5}
    out = logic.submit_train(settings, JS, LOCAL, "demo-lstm", values, "upload", "brown", None, "", "")
    assert "between 1 and 8192" in out.errors["hidden_size"] and "between 1 and 1000" in out.errors["epochs"]
    assert out.errors["dropout"] == "enter a value" and "whole number" in out.errors["layers"]
    assert "choose a built-in corpus or upload" in out.errors["corpus"]
    assert "Not submitted" in _text(out.banner) and not out.queued
    assert not (tmp_path / "jobs").exists()


def test_a_viewer_cannot_submit_upload_import_or_cancel(tmp_path, fixtures):
    settings = Settings(store=tmp_path)
    out = logic.submit_train(settings, JS, VIEWER, "demo-lstm", logic.preset_values("demo-lstm"), "builtin", "brown",
                             None)
    assert "Only members" in _text(out.banner) and not out.queued
    data, status, _ = logic.upload_corpus(settings, JS, VIEWER, [_url((fixtures / "reviews.csv").read_bytes())],
                                          ["reviews.csv"], None)
    assert data is None and "Only members" in _text(status)
    assert "Only members" in _text(logic.submit_import(settings, JS, VIEWER, None, None, None, None, "builtin",
                                                       "brown", None).banner)
    assert "Only members" in logic.cancel(settings, JS, VIEWER, "j00000001")[0]
    assert not (tmp_path / "jobs").exists() and not (tmp_path / "uploads").exists()


def test_upload_refuses_empty_binary_and_csv_without_text(tmp_path, fixtures):
    settings = Settings(store=tmp_path)
    for name, data, fmt, message in (("e.txt", b"", None, "is empty"), ("b.txt", bytes(range(256)), None, "binary"),
                                     ("r.csv", b"id,score\n1,great\n", "csv", "text column")):
        stored, status, _ = logic.upload_corpus(settings, JS, LOCAL, [_url(data)], [name], fmt)
        assert stored is None and message in _text(status), (name, status)
    ok, status, source = logic.upload_corpus(settings, JS, LOCAL, [_url((fixtures / "reviews.csv").read_bytes())],
                                             ["reviews.csv"], None)
    assert ok["task"] == "sentiment" and "uploaded" in _text(status) and source == "upload"
    with pytest.raises(logic.JobValidationError, match="limit"):
        logic.decode_upload(_url(b"x" * 1000), "big.txt", 100, "corpus")


def test_table_progress_curve_and_cancel_from_records(tmp_path):
    settings = Settings(store=tmp_path)
    rec = records.JobRecord("j00000001", "train", "m1", status="running", progress=0.45, submitted_by="ann",
                            started_at=records.utcnow(), heartbeat_at=records.utcnow(), worker="w@h/1", attempts=1,
                            stage="train", detail={"latest": {"stage": "train", "epoch": 2, "epochs": 4, "step": 5,
                                                              "steps": 10, "loss": 4.5, "tokens_per_s": 1234.0},
                                                   "curve": [{"epoch": 1, "train_loss": 5.0, "valid_loss": 5.2}]})
    records.write_job(tmp_path, rec)
    records.write_job(tmp_path, records.JobRecord("j00000002", "train", "m2", status="failed",
                                                  error="ValueError: boom", submitted_by="bob", stage="train"))
    records.write_job(tmp_path, records.JobRecord("j00000003", "train", "gone", status="done", progress=1.0,
                                                  stage="done", detail={"latest": {"stage": "analyze",
                                                                                   "analysis_stage": "publish"}}))
    table, interval, options, selected = view.job_list(settings, JS, None)
    text = _text(table)
    assert interval == view.ACTIVE_POLL_MS and selected == "j00000001" and len(options) == 3
    assert "epoch 2/4, step 5/10" in text and "4.500" in text and "1,234" in text
    assert "ValueError: boom" in text and "ann" in text and '"aria-valuenow": "45"' in text
    assert ids.JOBS_CANCEL in text                       # the running job has a Cancel button
    assert "model deleted" in text and "publish" not in text   # a finished job whose model is gone says so
    fig, style = view.job_curve(logic.read_curve_job(settings, selected))
    assert [t["name"] for t in fig["data"]][:2] == ["train loss", "validation loss"] and fig["data"][0]["x"] == [1]
    assert fig["layout"]["xaxis"]["tickformat"] == "d" and style == {}
    assert "yaxis2" not in fig["layout"]                  # a language model: no accuracy axis
    assert view.job_curve(logic.read_curve_job(settings, None))[1] == {"display": "none"}   # no empty chart
    assert view.job_curve(logic.read_curve_job(settings, "../x"))[1] == {"display": "none"}
    msg, refresh = logic.cancel(settings, JS, LOCAL, rec.job_id)
    assert "cancelling" in msg and refresh == f"cancel:{rec.job_id}"
    assert "cancelling" in _text(view.job_list(settings, JS, selected)[0])
    assert "already failed" in logic.cancel(settings, JS, LOCAL, "j00000002")[0]
    assert "no job" in logic.cancel(settings, JS, LOCAL, "j0000000f")[0]


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
        assert page["name"] == "Jobs" and page["order"] == 3 and page["title"] == "RNNVis · Jobs", page
        c = app.server.test_client()
        assert c.get("/jobs").status_code == 200
        deps = json.loads(c.get("/_dash-dependencies").data)
        assert any("jobs-table" in d["output"] for d in deps)
        assert c.get("/healthz").get_json() == {{"status": "ok"}}   # liveness only, nothing about the store
        print("ok")
    """)
    (tmp_path / "run_app.py").write_text(script)
    out = subprocess.run([sys.executable, str(tmp_path / "run_app.py")], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_a_preset_fills_the_form_with_its_own_training_values():
    """demo presets build a 5,000-word vocabulary: the model config's placeholder 10,000 must not win."""
    values = logic.preset_values("demo-lstm")
    assert values["vocab_size"] == 5000 and values["lr"] == 20.0 and values["hidden_size"] == 64
    assert logic.preset_values("custom")["vocab_size"] == TrainConfig().vocab_size


def _running(root, job_id, by):
    records.write_job(root, records.JobRecord(job_id, "train", f"m-{job_id}", status="running", submitted_by=by,
                                              started_at=records.utcnow(), heartbeat_at=records.utcnow(),
                                              worker="w@h/1", attempts=1, stage="train"))


def test_only_the_submitter_or_an_admin_cancels_a_job(tmp_path):
    settings = Settings(store=tmp_path)
    for job_id in ("j000000a1", "j000000a2", "j000000a3"):
        _running(tmp_path, job_id, "ann")
    msg, refresh = logic.cancel(settings, JS, User("bob", "member"), "j000000a1")
    assert "submitted by ann" in msg and "only they or an admin" in msg and refresh is None
    assert not records.cancel_requested(tmp_path, "j000000a1")
    assert "cancelling" in logic.cancel(settings, JS, User("ann", "member"), "j000000a1")[0]
    assert "cancelling" in logic.cancel(settings, JS, User("root", "admin"), "j000000a2")[0]
    assert "cancelling" in logic.cancel(settings, JS, LOCAL, "j000000a3")[0]      # open mode: the local admin
    # The client API (what the CLI calls) refuses the same way.
    from workers import client
    from workers.errors import NotAllowedError
    _running(tmp_path, "j000000a4", "ann")
    with pytest.raises(NotAllowedError, match="submitted by ann"):
        client.cancel(settings, "j000000a4", by="bob", job_settings=JS)
    assert not records.cancel_requested(tmp_path, "j000000a4")


def test_cli_cancel_of_another_users_job_needs_admin_with_sign_in_on(tmp_path, monkeypatch, capsys):
    from app.cli import main
    _running(tmp_path, "j000000b1", "ann")
    monkeypatch.setenv("RNNVIS_AUTH", "on")
    monkeypatch.setenv("RNNVIS_USER", "bob")
    assert main(["--store", str(tmp_path), "jobs", "cancel", "j000000b1"]) == 3
    assert "only they or an admin" in capsys.readouterr().err
    assert main(["--store", str(tmp_path), "jobs", "cancel", "j000000b1", "--admin"]) == 0
    assert "cancelling" in capsys.readouterr().out
    _running(tmp_path, "j000000b2", "bob")
    assert main(["--store", str(tmp_path), "jobs", "cancel", "j000000b2"]) == 0   # one's own job
    monkeypatch.setenv("RNNVIS_AUTH", "off")                                    # open mode: the CLI user is admin
    _running(tmp_path, "j000000b3", "local")
    assert main(["--store", str(tmp_path), "jobs", "cancel", "j000000b3"]) == 0


def test_cancelling_a_malformed_job_id_is_a_message(tmp_path, capsys):
    from app.cli import main
    settings = Settings(store=tmp_path)
    msg, refresh = logic.cancel(settings, JS, LOCAL, "../../etc")
    assert msg.startswith("invalid job id '../../etc'") and refresh is None
    assert main(["--store", str(tmp_path), "jobs", "cancel", "../../etc"]) == 3
    assert "invalid job id '../../etc'" in capsys.readouterr().err
