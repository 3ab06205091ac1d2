"""The Jobs page in headless Chromium, as a team uses it: clicks and typing only, never a callback function.

One dashboard on a fresh store with its embedded worker (``rnnvis serve``'s file-system broker), so every job
really trains and is analysed. The models are tiny (a few thousand parameters, a slice of a corpus) so the
whole module stays around a minute on two cores. Every wait is for a condition the page shows.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.app.test_browser import (  # skips w/o Chromium
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    serve_in_thread,
    shot,
    texts,
    trace_len,
    wait,
)

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
JOB_TIMEOUT = 180
ENV = {"RNNVIS_BROKER_POLL_S": "0.1", "RNNVIS_HEARTBEAT_S": "1", "RNNVIS_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory):
    """The dashboard and its embedded worker on an empty store, started as `rnnvis serve` starts them."""
    from analytics.settings import Settings
    from app.server import create_app
    from workers.embedded import start_embedded_worker, stop_embedded_worker

    root = tmp_path_factory.mktemp("browser-jobs") / "store"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        mp.delenv("RNNVIS_BROKER_URL", raising=False)
        settings = Settings(store=root, device="cpu")
        worker = start_embedded_worker(settings)
        srv = serve_in_thread(create_app(settings))
        try:
            yield f"http://127.0.0.1:{srv.effective_port}", root
        finally:
            srv.close()
            stop_embedded_worker(worker)


# --------------------------------------------------------------------------- what a user does


def open_jobs(d, server: str) -> None:
    d.get(server + "/jobs")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".jobs-table"), what="the job list")
    idle(d)


def choose(d, dropdown_id: str, text: str) -> None:
    """Open a dropdown and click the option whose label starts with ``text``."""
    d.find_element(By.ID, dropdown_id).click()
    option = wait(d, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-options [role=option]")
                                if o.text.startswith(text)], what=f"option {text!r}")
    option[0].click()
    wait(d, lambda d: d.find_element(By.ID, dropdown_id).text.startswith(text), what=f"{text!r} chosen")


def field(d, name: str):
    return d.find_element(By.ID, "jobs-field-" + name.replace("_", "-"))


def type_in(d, name_or_id: str, text: str) -> None:
    """Replace a field's text as a user would: select all, type."""
    el = field(d, name_or_id) if not name_or_id.startswith("jobs-") else d.find_element(By.ID, name_or_id)
    if not el.is_displayed():
        d.find_element(By.CSS_SELECTOR, ".jobs-more summary").click()   # under "More settings"
        wait(d, lambda d: el.is_displayed(), what="more settings open")
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(str(text))


def fill(d, **values) -> None:
    for name, value in values.items():
        type_in(d, name, value)


def pick_preset(d, preset: str, hidden: int) -> None:
    """Choose a preset and wait until the form shows its settings (its hidden size)."""
    choose(d, "jobs-preset", preset)
    wait(d, lambda d: field(d, "hidden_size").get_attribute("value") == str(hidden), what=f"{preset}'s settings")
    idle(d)


def upload(d, input_css: str, *paths: Path) -> None:
    d.find_element(By.CSS_SELECTOR, f"{input_css} input[type=file]").send_keys("\n".join(str(p) for p in paths))


def submit(d, button: str = "jobs-submit", banner: str = "jobs-banner") -> str:
    """Click a submit button; the job id from the banner that says it was queued."""
    d.find_element(By.ID, button).click()
    text = wait(d, lambda d: (lambda t: t if "Queued job" in t or "Not submitted" in t else None)(
        d.find_element(By.ID, banner).text), what="the submit's answer")
    assert "Queued job" in text, text
    return re.search(r"Queued job (j[0-9a-f]{8})", text).group(1)


def row(d, job_id: str) -> dict[str, str]:
    """What the job list shows of a job: its cells by column name."""
    cells = js(d, f"Array.from(document.querySelectorAll('#jobs-row-{job_id} td')).map(c => c.innerText)")
    if not cells:
        return {}
    heads = js(d, "Array.from(document.querySelectorAll('.jobs-table thead th')).map(c => c.innerText)")
    out = dict(zip(heads, cells))
    out["pct"] = js(d, f"document.querySelector('#jobs-row-{job_id} [role=progressbar]')"
                       ".getAttribute('aria-valuenow')")
    return out


def wait_status(d, job_id: str, *statuses: str, timeout: float = JOB_TIMEOUT) -> dict[str, str]:
    return wait(d, lambda d: (lambda r: r if r.get("Status") in statuses else None)(row(d, job_id)), timeout,
                f"job {job_id} to be {' or '.join(statuses)}")


# --------------------------------------------------------------------------- stories


def test_invalid_fields_get_their_messages_and_nothing_is_queued(jobs_server, driver):
    server, root = jobs_server
    d = driver
    open_jobs(d, server)
    fill(d, hidden_size=0, epochs=100000, layers=2.5, dropout="", lr_decay=3)
    type_in(d, "jobs-model-id", "../etc")
    d.find_element(By.ID, "jobs-submit").click()
    msg = wait(d, lambda d: d.find_element(By.ID, "jobs-error-hidden-size").text, what="the hidden size's message")
    assert "between 1 and 8192" in msg
    errors = {f: d.find_element(By.ID, f"jobs-error-{f}").text
              for f in ("epochs", "layers", "dropout", "lr-decay", "model-id", "cell", "lr")}
    assert "between 1 and 1000" in errors["epochs"] and "whole number" in errors["layers"]
    assert errors["dropout"] == "enter a value" and "between 1e-06 and 1" in errors["lr-decay"]
    assert errors["model-id"] and not errors["cell"] and not errors["lr"]
    assert "Not submitted" in d.find_element(By.ID, "jobs-banner").text
    assert "No jobs yet" in d.find_element(By.ID, "jobs-table").text and not (root / "jobs").exists()


def test_a_demo_preset_trains_live_and_its_model_appears_in_models_and_explore(jobs_server, driver):
    server, _ = jobs_server
    d = driver
    open_jobs(d, server)
    pick_preset(d, "demo-sentiment", 32)
    assert d.find_element(By.ID, "jobs-corpus-builtin").text == "fine_foods"
    # Enough work (3 epochs over all 290k training tokens, ~20 s here) that the page, polling every second,
    # sees it running part way: over 100k tokens it could finish between two polls on a quiet machine.
    fill(d, hidden_size=16, epochs=3, max_train_tokens=0)
    type_in(d, "jobs-model-id", "ui-demo")
    job = submit(d)
    # live progress: the row shows the job running, part way, with its epoch, before it is done
    running = wait_status(d, job, "running")
    live = wait(d, lambda d: (lambda r: r if r.get("Status") == "done" or (
        r.get("Status") == "running" and 0 < int(r["pct"] or 0) < 100 and r.get("Where")) else None)(row(d, job)),
        JOB_TIMEOUT, "the job's progress")
    assert live["Status"] == "running", f"finished before any progress was shown: {running} then {live}"
    assert re.match(r"(epoch \d/3, step \d+/\d+|analysis: \w+)", live["Where"]), live
    curve = wait(d, lambda d: js(d, "document.querySelector('#jobs-curve-box .js-plotly-plot')"
                                    ".data[0].x.length"), JOB_TIMEOUT, "the training curve's first epoch")
    assert curve >= 1
    done = wait_status(d, job, "done")
    assert done["pct"] == "100" and done["Where"] == "open in Explore" and done["Submitted by"] == "local"
    wait(d, lambda d: js(d, "document.querySelector('#jobs-curve-box .js-plotly-plot').data[0].x.length") == 3,
         what="the three epochs of the curve")
    # a finished job keeps its last epoch's loss and speed in the list
    done = row(d, job)
    assert float(done["Loss"]) > 0 and int(done["Tokens/s"].replace(",", "")) > 0, done
    # the curve is drawn in the house style (white, not plotly's grey), and a classifier's shows its accuracy
    plot = "document.querySelector('#jobs-curve-box .js-plotly-plot')"
    assert js(d, f"{plot}._fullLayout.plot_bgcolor") == "#ffffff"
    acc = js(d, f"{plot}.data.find(t => t.name === 'validation accuracy').y")
    assert len(acc) == 3 and all(0 <= a <= 1 for a in acc)
    assert js(d, f"{plot}._fullLayout.yaxis2.range") == [0, 1]
    assert js(d, f"{plot}._fullLayout.yaxis2.title.text") == "validation accuracy"
    shot(d, "jobs")
    # the new model is listed on the Models page, and opens in Explore
    d.find_element(By.ID, "nav-models").click()
    rows = wait(d, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, ".models-table tbody tr")
                              if r.text.startswith("ui-demo")], what="ui-demo on the Models page")
    assert "GRU" in rows[0].text and "acc" in rows[0].text
    rows[0].find_element(By.LINK_TEXT, "Explore").click()
    wait(d, lambda d: urlparse(d.current_url).path == "/explore", what="Explore")
    assert parse_qs(urlparse(d.current_url).query)["model"] == ["ui-demo"]
    wait(d, lambda d: trace_len(d, "explore-cocluster", "units") == 16, JOB_TIMEOUT, "ui-demo's 16 memory cells")


def test_cancel_a_running_job(jobs_server, driver):
    server, root = jobs_server
    d = driver
    open_jobs(d, server)
    pick_preset(d, "demo-sentiment", 32)
    fill(d, hidden_size=8, epochs=1000, patience=0, max_train_tokens=20000)
    type_in(d, "jobs-model-id", "ui-long")
    job = submit(d)
    wait(d, lambda d: row(d, job).get("Where", "").startswith("epoch"), JOB_TIMEOUT, "the job to be training")
    d.find_element(By.CSS_SELECTOR, f"#jobs-row-{job} button").click()
    wait(d, lambda d: f"Job {job}: cancell" in d.find_element(By.ID, "jobs-cancel-msg").text, what="the cancel")
    r = wait_status(d, job, "cancelled", timeout=60)
    assert r["Where"] == "" and not d.find_elements(By.CSS_SELECTOR, f"#jobs-row-{job} button")
    assert not (root / "models" / "model_id=ui-long").exists()


def test_upload_a_corpus_and_train_on_it(jobs_server, driver):
    server, _ = jobs_server
    d = driver
    open_jobs(d, server)
    upload(d, "#jobs-corpus-upload", *sorted((FIXTURES / "ptb").glob("*.txt")))
    status = wait(d, lambda d: d.find_element(By.ID, "jobs-corpus-upload-status").text, what="the upload's status")
    assert status.startswith("uploaded") and "(ptb)" in status
    assert js(d, "document.querySelector('#jobs-corpus-source input[value=upload]').checked")
    fill(d, layers=1, hidden_size=8, embed_size=8, epochs=1, batch_size=4, bptt=10, vocab_size=500)
    type_in(d, "jobs-model-id", "ui-ptb")
    job = submit(d)
    assert wait_status(d, job, "done", "failed")["Status"] == "done", row(d, job)
    d.find_element(By.CSS_SELECTOR, f"#jobs-row-{job} a.jobs-open").click()
    wait(d, lambda d: trace_len(d, "explore-cocluster", "units") == 8, JOB_TIMEOUT, "ui-ptb in Explore")


def test_import_a_model(jobs_server, driver, tmp_path):
    import torch
    from torch import nn

    from models.corpora import load_corpus

    words = sorted(set(load_corpus(str(FIXTURES / "ptb")).tokens("train")))
    torch.manual_seed(1)
    lm = nn.Module()
    lm.encoder, lm.rnn, lm.decoder = nn.Embedding(len(words), 6), nn.LSTM(6, 5, 1), nn.Linear(5, len(words))
    torch.save(lm.state_dict(), tmp_path / "lm.pt")
    (tmp_path / "vocab.txt").write_text("\n".join(words))
    server, _ = jobs_server
    d = driver
    open_jobs(d, server)
    upload(d, "#jobs-corpus-upload", *sorted((FIXTURES / "ptb").glob("*.txt")))
    wait(d, lambda d: d.find_element(By.ID, "jobs-corpus-upload-status").text.startswith("uploaded"),
         what="the corpus upload")
    d.find_element(By.CSS_SELECTOR, "#jobs-byom summary").click()
    upload(d, "#jobs-byom-weights", tmp_path / "lm.pt")
    upload(d, "#jobs-byom-vocab", tmp_path / "vocab.txt")
    wait(d, lambda d: d.find_element(By.ID, "jobs-byom-vocab-status").text == "vocabulary: vocab.txt",
         what="the vocabulary chosen")
    type_in(d, "jobs-byom-model-id", "ui-byo")
    job = submit(d, "jobs-byom-submit", "jobs-byom-msg")
    r = wait_status(d, job, "done", "failed")
    assert r["Status"] == "done" and r["Kind"] == "import", r
    d.find_element(By.ID, "nav-models").click()
    wait(d, lambda d: any(r.text.startswith("ui-byo") for r in d.find_elements(By.CSS_SELECTOR,
                                                                                 ".models-table tbody tr")),
         what="ui-byo on the Models page")


def test_sql_console_runs_a_query(jobs_server, driver):
    server, _ = jobs_server
    d = driver
    d.get(server + "/sql")
    editor = wait(d, lambda d: d.find_element(By.ID, "sql-editor"), what="the editor")
    idle(d)
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys("SELECT count(*) AS n, count(DISTINCT submitted_by) AS users FROM jobs")
    d.find_element(By.ID, "sql-run").click()
    wait(d, lambda d: "1 row" in d.find_element(By.ID, "sql-msg").text, what="the query's result")
    cells = texts(d, "#sql-table .ag-cell")
    assert len(cells) == 2 and all(c.isdigit() for c in cells), cells
