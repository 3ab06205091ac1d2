"""Screenshots of every page on a real store (the demo store gives the nicest pictures).

    .venv/bin/rnnvis --store /tmp/dashstore demo --no-serve
    .venv/bin/python bench/screenshots.py --store /tmp/dashstore [--out docs/screenshots]

Serves the app with waitress on a free port, drives headless Debian Chromium
through Models, Explore (a word clicked), Explore with the two sentences of
the RNNVis talk on the sentiment model, Compare, Jobs and SQL, and writes
``models.png``, ``explore.png``, ``explore-sentences.png``, ``compare.png``, ``jobs.png`` and ``sql.png``;
``projection.png`` and ``projection-compare.png`` show the 2-D maps (``--only projection`` takes just those);
``patterns.png`` a pattern search on the LM's token states (``--only patterns``); ``--only sql`` retakes ``sql.png``;
``compare-losses.png`` is Compare's "where A beats B" panel (``--only losses``); ``--only explore`` retakes
``explore.png`` and ``explore-sentences.png``; ``--only compare`` retakes ``compare.png``; ``unit.png`` is the unit
page of the LM's most NOUN-selective unit in layer 1 (``--only unit``).

``jobs.png`` shows a job submitted through the Jobs page as a user does it: the
demo-sentiment preset shrunk under "More settings" (2 epochs over 60k tokens,
well under a minute on two cores) as model ``ui-demo``, trained by an embedded
worker (as ``rnnvis serve`` runs one), picked in the training-curve selector and
captured once it is done with both epochs on its curve. That job runs on a
throw-away copy of ``--store``, so the store itself gains no job and no model.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = ("I love the food though staff is not helpful", "The staff is not helpful though I love the food")
BUSY = "document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
# The submitted job: the preset, then the form's fields changed by typing (as tests/app/test_browser_jobs.py does).
JOB_PRESET, JOB_HIDDEN = "demo-sentiment", 32
JOB_FIELDS = {"epochs": 2, "max_train_tokens": 60000}
JOB_MODEL = "ui-demo"
JOB_TIMEOUT = 600  # seconds; the job takes well under a minute on two idle cores
# What the embedded worker runs with (fast polling so the page follows the job closely; one thread, CPU).
JOB_ENV = {"RNNVIS_BROKER_POLL_S": "0.1", "RNNVIS_HEARTBEAT_S": "1", "RNNVIS_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}


def wait(d, fn, timeout: float = 60, what: str = "condition"):
    """Poll fn(d) until it returns a truthy value (a poll that raises counts as not yet)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = fn(d)
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - e.g. an element not drawn yet
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def js(d, expr: str):
    return d.execute_script(f"try {{ return {expr}; }} catch (e) {{ return null; }}")


def idle(d, timeout: float = 60) -> None:
    """Wait until Dash has no callback in flight."""
    wait(d, lambda d: js(d, f"{BUSY} === 0 && !document.title.startsWith('Updating')"), timeout,
         "callbacks to finish")


def submit_job_shot(d, store: Path, out: Path) -> None:
    """``jobs.png``: a job submitted on the Jobs page, trained by an embedded worker on a copy of ``store``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from waitress.server import create_server

    from analytics.settings import Settings
    from app.server import create_app
    from workers.embedded import start_embedded_worker, stop_embedded_worker

    def choose(dropdown_id: str, text: str) -> None:
        d.find_element(By.ID, dropdown_id).click()
        option = wait(d, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-options [role=option]")
                                    if o.text.startswith(text)], what=f"option {text!r}")
        option[0].click()
        wait(d, lambda d: d.find_element(By.ID, dropdown_id).text.startswith(text), what=f"{text!r} chosen")
        menu_open = "document.querySelector('.dash-dropdown-options') !== null"
        if js(d, menu_open):  # picking the value it already had leaves the menu open: close it as a user would
            d.switch_to.active_element.send_keys(Keys.ESCAPE)
            wait(d, lambda d: js(d, menu_open) is False, what="the menu closed")

    def type_in(el, text) -> None:
        if not el.is_displayed():
            d.find_element(By.CSS_SELECTOR, ".jobs-more summary").click()  # under "More settings"
            wait(d, lambda d: el.is_displayed(), what="more settings open")
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.DELETE)
        el.send_keys(str(text))

    def row(job_id: str) -> dict:
        cells = js(d, f"Array.from(document.querySelectorAll('#jobs-row-{job_id} td')).map(c => c.innerText)")
        heads = js(d, "Array.from(document.querySelectorAll('.jobs-table thead th')).map(c => c.innerText)")
        return dict(zip(heads or [], cells or []))

    saved = {k: os.environ.get(k) for k in (*JOB_ENV, "RNNVIS_BROKER_URL")}
    os.environ.update(JOB_ENV)
    os.environ.pop("RNNVIS_BROKER_URL", None)  # no broker configured: the embedded worker runs the job
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-shot-"))
    worker = srv = None
    try:
        copy = tmp / "store"
        shutil.copytree(store, copy, ignore=shutil.ignore_patterns(".broker", ".staging", "jobs"))
        settings = Settings(store=copy, device="cpu")
        worker = start_embedded_worker(settings)
        srv = create_server(create_app(settings).server, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=srv.run, daemon=True).start()
        d.get(f"http://127.0.0.1:{srv.effective_port}/jobs")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".jobs-table"), what="the job list")
        idle(d)
        choose("jobs-preset", JOB_PRESET)
        wait(d, lambda d: d.find_element(By.ID, "jobs-field-hidden-size").get_attribute("value") == str(JOB_HIDDEN),
             what=f"{JOB_PRESET}'s settings in the form")
        idle(d)
        for name, value in JOB_FIELDS.items():
            type_in(d.find_element(By.ID, "jobs-field-" + name.replace("_", "-")), value)
        type_in(d.find_element(By.ID, "jobs-model-id"), JOB_MODEL)
        d.find_element(By.ID, "jobs-submit").click()
        banner = wait(d, lambda d: (lambda t: t if "Queued job" in t or "Not submitted" in t else None)(
            d.find_element(By.ID, "jobs-banner").text), what="the submit's answer")
        if "Queued job" not in banner:
            raise RuntimeError(f"the job was not queued: {banner}")
        job = re.search(r"Queued job (j[0-9a-f]{8})", banner).group(1)
        print("submitted", job, "as", JOB_MODEL, flush=True)
        wait(d, lambda d: row(job).get("Status") in ("running", "done", "failed"), JOB_TIMEOUT, "the job to start")
        choose("jobs-curve-job", job)  # the training-curve selector
        done = wait(d, lambda d: (lambda r: r if r.get("Status") in ("done", "failed") else None)(row(job)),
                    JOB_TIMEOUT, f"job {job} to finish")
        if done["Status"] != "done":
            raise RuntimeError(f"job {job} failed: {done}")
        epochs = JOB_FIELDS["epochs"]
        curve = "document.querySelector('#jobs-curve-box .js-plotly-plot')"
        wait(d, lambda d: js(d, f"{curve}.data[0].x.length") == epochs
             and "(done)" in (js(d, f"{curve}.layout.title.text") or ""), JOB_TIMEOUT, "the finished curve")
        idle(d)
        # a window tall enough for the whole page, down to the bottom of the curve (the browser's own bar is
        # the difference between the outer and inner heights)
        bottom = int(js(d, "document.getElementById('jobs-curve-box').getBoundingClientRect().bottom"
                           " + window.scrollY") or 1400) + 24
        bar = int(js(d, "window.outerHeight - window.innerHeight") or 0)
        d.set_window_size(1600, min(bottom, 2400) + bar)
        wait(d, lambda d: js(d, "window.innerHeight") >= min(bottom, 2400), what="the window resized")
        idle(d)
        d.save_screenshot(str(out / "jobs.png"))
        print("wrote", out / "jobs.png", f"({done.get('Duration')} of training and analysis)", flush=True)
        d.set_window_size(1600, 1250)
    finally:
        d.get("about:blank")  # stop the page polling this server before it closes
        if srv is not None:
            srv.close()
        stop_embedded_worker(worker)
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: What ``--only`` can pick.
ONLY = ("projection", "patterns", "sql", "losses", "explore", "compare", "unit")
#: Words selected on the projection map in its screenshot (those the model has).
MAP_WORDS = ("he", "she", "it", "they", "i", "we", "you")


def projection_shots(d, base: str, store: Path, lm: str, other: str, settle, save) -> None:
    """``projection.png``: the t-SNE maps of ``lm``'s last layer with a few pronouns selected;
    ``projection-compare.png``: the same beside ``other``'s first layer, matched units joined."""
    from urllib.parse import urlencode

    from app.reader import Reader

    words = set(Reader(store).clusters(lm, 1, "h", 8).words["word"])
    picked = [w for w in MAP_WORDS if w in words]
    d.get(base + "/projection?" + urlencode([("model", lm), ("layer", 1), ("state", "h"), ("k", 8)]
                                            + [("w", w) for w in picked]))
    settle(2)
    save("projection", 1650)
    d.get(base + "/projection?" + urlencode([("model", lm), ("layer", 1), ("state", "h"), ("k", 8), ("by", "cluster"),
                                             ("b", other), ("layer_b", 0)] + [("w", w) for w in picked]))
    settle(2)
    save("projection-compare", 1650)


def pick_pattern(store: Path, lm: str, theta: float = 0.4, length: int = 3, tries: int = 500) -> str:
    """A deep link to a pattern of ``lm``'s last stored layer with many full matches: spans of ``length`` tokens
    early in the text, the units proposed for each (off before), the one whose units match most often."""
    from urllib.parse import urlencode

    from analytics import patterns
    from app.reader import Reader

    r = Reader(store)
    layer, state = r.token_info(lm).keys[-1]
    values = r.token_passage(lm, layer, state, 0, 4000)
    ids, words, _ = r.token_text(lm)
    best = (0, None, None)
    for s in range(40, 4000 - length, (4000 - length - 40) // tries):
        if not all(str(w).isalpha() for w in words[ids[s - 1:s + length]]):   # words only: a pattern of prose
            continue
        units = patterns.propose_units(values, s, s + length, theta, off_before=True, off_after=True, limit=6)
        if len(units) < 3:
            continue
        found = patterns.search(r.unit_series(lm, layer, state, units), theta, length, units=units,
                                off_before=True)
        if found.total > best[0]:
            best = (found.total, s, units)
    n, s, units = best
    if s is None:
        raise RuntimeError(f"no span of {lm} proposes 3 units at θ = {theta}")
    print(f"patterns: span at {s}, units {units}: {n} full matches", flush=True)
    return urlencode([("model", lm), ("layer", layer), ("state", state), *[("u", u) for u in units],
                      ("theta", theta), ("from", s), ("len", length), ("at", max(0, s - 12)), ("ob", 1)])


def pick_unit(reader, lm: str) -> str:
    """The query of the unit page to show: the LM's most NOUN-selective unit of layer 1's h (else unit 0)."""
    found = reader.find_units(lm, "tag", "NOUN", limit=200)
    found = found[(found["layer"] == 1) & (found["state"] == "h")]
    unit = int(found["unit"].iloc[0]) if len(found) else 0
    return f"model={lm}&layer=1&state=h&unit={unit}&k=8&b=demo-gru&layer_b=0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--lm", default="demo-lstm", help="language model for Explore and Compare (A)")
    ap.add_argument("--other", default="demo-gru", help="model B on Compare")
    ap.add_argument("--sentiment", default="demo-sentiment", help="classifier for the sentence glyphs")
    ap.add_argument("--only", nargs="+", choices=ONLY, help="take just these screenshots")
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from waitress.server import create_server

    from analytics.settings import Settings
    from app.reader import Reader
    from app.server import create_app

    app = create_app(Settings(store=args.store))
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=srv.run, daemon=True).start()
    base = f"http://127.0.0.1:{srv.effective_port}"
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1600,1250", "--hide-scrollbars"):
        opts.add_argument(f)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    args.out.mkdir(parents=True, exist_ok=True)

    def settle(extra: float = 1.0) -> None:
        time.sleep(0.5)
        for _ in range(300):
            if d.execute_script(f"return {BUSY}") == 0:
                break
            time.sleep(0.1)
        time.sleep(extra)

    def save(name: str, height: int | None = None) -> None:
        if height:
            d.set_window_size(1600, height)
            settle(0.5)
        d.save_screenshot(str(args.out / f"{name}.png"))
        print("wrote", args.out / f"{name}.png")
        d.set_window_size(1600, 1250)

    try:
        if not args.only or "projection" in args.only:
            projection_shots(d, base, args.store, args.lm, args.other, settle, save)
        if not args.only or "patterns" in args.only:
            d.get(base + "/patterns?" + pick_pattern(args.store, args.lm))
            settle(2)
            save("patterns", 1700)
        if not args.only or "unit" in args.only:
            d.get(base + "/unit?" + pick_unit(Reader(args.store), args.lm))
            settle(2)
            save("unit", 2450)
        if not args.only or "sql" in args.only:
            d.get(base + "/sql")
            settle(1)
            d.find_element(By.ID, "sql-run").click()
            settle(1)
            save("sql", 1100)
        if not args.only or "losses" in args.only:
            d.get(base + f"/compare?model={args.lm}&layer=1&b={args.other}&layer_b=0")
            settle(2)
            d.set_window_size(1600, 1250)
            d.execute_script("document.querySelector('.cmp-losses').scrollIntoView()")
            settle(0.5)
            save("compare-losses")
        if args.only and "compare" in args.only:      # the whole Compare page, its word picked
            d.get(base + f"/compare?model={args.lm}&layer=1&b={args.other}&layer_b=0&w=he")
            settle(2)
            save("compare", 1700)
        if args.only and "explore" not in args.only:
            return
        if not args.only:
            d.get(base + "/")
            settle()
            save("models", 900)

        top = Reader(args.store).clusters(args.lm, 1, "h", 8).words.sort_values("freq", ascending=False)
        word = "he" if "he" in set(top["word"]) else str(top["word"].iloc[0])
        d.get(base + f"/explore?model={args.lm}&layer=1&state=h&k=8&w={word}")
        settle(2)
        save("explore", 1500)

        d.get(base + f"/explore?model={args.sentiment}&k=4")
        settle(1)
        for text in SENTENCES:
            box = d.find_element(By.ID, "explore-sentence-text")
            box.clear()
            box.send_keys(text)
            d.find_element(By.ID, "explore-sentence-add").click()
            settle(1)
        d.execute_script("document.getElementById('explore-sentence-list').scrollIntoView()")
        time.sleep(0.5)
        save("explore-sentences")
        if args.only:
            return

        d.get(base + f"/compare?model={args.lm}&layer=1&b={args.other}&layer_b=0&w={word}")
        settle(2)
        save("compare", 1700)

        submit_job_shot(d, args.store, args.out)
    finally:
        d.quit()
        srv.close()


if __name__ == "__main__":
    main()
