"""Screenshots of every page on a real store (the demo store gives the nicest pictures).

    .venv/bin/rnnvis --store /tmp/dashstore demo --no-serve
    .venv/bin/python bench/screenshots.py --store /tmp/dashstore [--out docs/screenshots]

Serves the app with waitress on a free port, drives headless Debian Chromium
through Models, Explore (a word clicked), Explore with the two sentences of
the RNNVis talk on the sentiment model, and Compare, and writes
``models.png``, ``explore.png``, ``explore-sentences.png``, ``compare.png``, ``jobs.png`` and ``sql.png``.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = ("I love the food though staff is not helpful", "The staff is not helpful though I love the food")
BUSY = "document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--lm", default="demo-lstm", help="language model for Explore and Compare (A)")
    ap.add_argument("--other", default="demo-gru", help="model B on Compare")
    ap.add_argument("--sentiment", default="demo-sentiment", help="classifier for the sentence glyphs")
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

        d.get(base + f"/compare?model={args.lm}&layer=1&b={args.other}&layer_b=0&w={word}")
        settle(2)
        save("compare", 1700)

        d.get(base + "/jobs")
        settle(1)
        save("jobs", 1100)

        d.get(base + "/sql")
        settle(1)
        d.find_element(By.ID, "sql-run").click()
        settle(1)
        save("sql", 1100)
    finally:
        d.quit()
        srv.close()


if __name__ == "__main__":
    main()
