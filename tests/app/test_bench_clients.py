"""The load benches' simulated users (bench/bench_load.py, reused by bench/bench_hostile.py) send the requests a
browser sends, built from the server's own /_dash-dependencies: every kind of request must get a real answer here,
or a bench would measure error pages (as it did once when a callback's output was renamed)."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import requests

from tests.app.serving import serve_in_thread

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_load.py"


def _bench_load():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Drawing:
    """A random source whose every choice is ``value``."""

    def __init__(self, value):
        self.value = value

    def choice(self, _seq):
        return self.value


def test_every_request_of_the_load_bench_user_is_answered(app_store):
    from analytics.settings import Settings
    from app.server import create_app

    bl = _bench_load()
    srv = serve_in_thread(create_app(Settings(store=app_store)))
    base = f"http://127.0.0.1:{srv.effective_port}"
    try:
        deps = requests.get(base + "/_dash-dependencies", timeout=30).json()
        stats = bl.Stats()
        stats.recording = True
        user = bl.User(base, deps, bl.store_facts(app_store), stats, random.Random(0))
        user.open_page("/explore", f"?model={user.model}")
        for _ in range(2):
            user.explore_view()
            user.explore_detail()
            user.models_page()
            user.compare()
        for query in bl.SQL_QUERIES:  # each of the bench's console queries, as its user draws one
            user.rng = _Drawing(query)
            user.sql()
        assert not stats.errors, stats.samples
        assert {"GET page", "router callback", "explore co-cluster view", "explore glyphs", "explore url",
                "explore detail", "models curves", "compare co-cluster views", "sql query"} <= set(stats.times)
        assert len(stats.times["sql query"]) == len(bl.SQL_QUERIES)
    finally:
        srv.close()
