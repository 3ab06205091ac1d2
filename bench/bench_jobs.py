"""Job-system benchmarks.

1. Submit -> start latency on an idle worker: ``--n`` ping tasks sent one at a
   time (each writes the time it started), p50/p95/max, with Redis and with the
   embedded file-system broker; plus the latency of a real tiny job (submit ->
   its record says running).
2. End to end: one demo model trained and analysed through the Jobs page's
   submit callback and a (warm) embedded worker, against the same training +
   analysis run by ``rnnvis train`` in a fresh process. Reports the overhead.

    .venv/bin/python bench/bench_jobs.py [--n 20] [--preset demo-rnn] [--skip-e2e] [--json out.json]

Needs Redis at 127.0.0.1:6379 for part 1 (uses DB 14 and its own key prefix).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics.settings import Settings  # noqa: E402
from workers.settings import JobSettings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/14"


def _env(store: Path, broker: str | None, prefix: str) -> dict[str, str]:
    env = dict(os.environ, RNNVIS_STORE=str(store), RNNVIS_BROKER_PREFIX=prefix, RNNVIS_BROKER_POLL_S="0.1",
               PYTHONPATH=str(REPO))
    env.pop("RNNVIS_BROKER_URL", None)
    if broker:
        env["RNNVIS_BROKER_URL"] = broker
    return env


def _start_worker(store: Path, broker: str | None, prefix: str, log: Path) -> subprocess.Popen:
    from workers.embedded import worker_argv
    out = open(log, "wb")
    proc = subprocess.Popen(worker_argv(hostname=f"bench-{uuid.uuid4().hex[:4]}@%h"),
                            env=_env(store, broker, prefix), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    import signal
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def latency(broker: str | None, n: int, label: str) -> dict:
    from workers.celery_app import TASK_PING
    from workers.client import celery_for
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        proc = _start_worker(store, broker, prefix, store / "worker.log")
        try:
            js = JobSettings(broker_prefix=prefix, broker_poll_s=0.1)
            app = celery_for(Settings(store=store, broker_url=broker), js)
            pings = store / ".broker" / "pings"
            lat = []
            for i in range(n + 2):  # the first two warm up connections and the pool process
                marker = f"p{i}"
                t0 = time.time()
                app.send_task(TASK_PING, args=(marker,), queue="analyze", retry=False)
                path = pings / marker
                deadline = time.monotonic() + 30
                while not path.exists():
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{label}: ping {i} never started")
                    time.sleep(0.002)
                time.sleep(0.002)
                if i >= 2:
                    lat.append(float(path.read_text()) - t0)
            job_latency = _tiny_job_latency(Settings(store=store, broker_url=broker), js)
        finally:
            _stop(proc)
            if broker:
                import redis
                r = redis.Redis.from_url(broker)
                keys = list(r.scan_iter(match=prefix + "*"))
                if keys:
                    r.delete(*keys)
    res = {"broker": label, "n": len(lat), "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 0.95),
           "max_ms": 1000 * max(lat), **job_latency}
    print(f"{label:10s} ping task submit->start over {len(lat)}: p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, "
          f"max {res['max_ms']:.1f} ms | tiny training job submit->running: p50 {res['submit_to_running_p50_ms']:.0f} ms, "
          f"max {res['submit_to_running_max_ms']:.0f} ms (submit call p50 {res['submit_call_p50_ms']:.0f} ms; "
          f"first job of a fresh process {res['first_submit_to_running_ms']:.0f} ms)")
    return res


def _tiny_job_latency(settings: Settings, js: JobSettings, n: int = 5) -> dict:
    """Tiny real jobs, one at a time: how long ``submit_train`` takes (validation, record, publish) and how
    long until the worker's record says running. The first one pays this process's one-time imports."""
    import datetime as dt

    from workers import client, records, uploads
    fixtures = REPO / "tests" / "fixtures" / "ptb"
    up = uploads.save_corpus_upload(settings.store, [(p.name, p.read_bytes()) for p in sorted(fixtures.glob("*.txt"))],
                                 "ptb")
    req = {"preset": "demo-lstm", "hidden_size": 8, "layers": 1, "epochs": 1, "vocab_size": 300, "batch_size": 4,
           "bptt": 10, "corpus": f"upload:{up.upload_id}", "analysis": {"states": "h", "gradient_k": 0}}
    calls, to_running = [], []
    for _ in range(n + 1):
        t0 = time.time()
        rec = client.submit_train(settings, req, submitted_by="bench", job_settings=js)
        calls.append(time.time() - t0)
        while (r := records.read_job(settings.store, rec.job_id)).started_at is None:
            time.sleep(0.002)
        to_running.append(r.started_at.replace(tzinfo=dt.timezone.utc).timestamp() - t0)
        while records.read_job(settings.store, rec.job_id).status not in records.TERMINAL:
            time.sleep(0.05)
    return {"first_submit_to_running_ms": 1000 * to_running[0],
            "submit_call_p50_ms": 1000 * statistics.median(calls[1:]),
            "submit_to_running_p50_ms": 1000 * statistics.median(to_running[1:]),
            "submit_to_running_max_ms": 1000 * max(to_running[1:])}


def end_to_end(preset: str) -> dict:
    """The same demo model through the UI (the Jobs page's submit logic, embedded worker) and through `rnnvis train`."""
    from workers import records
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # CLI: a fresh process, as a user would run it (imports included).
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "app.cli", "--store", str(tmp / "cli"), "train", "--preset", preset,
                        "--model-id", "bench-cli"], check=True, cwd=REPO, env=_env(tmp / "cli", None, ""),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cli_s = time.perf_counter() - t0
        # UI: the page's submit callback; the embedded worker was started with the server (warm).
        os.environ.update({k: v for k, v in _env(tmp / "ui", None, "").items() if k.startswith("RNNVIS_")})
        os.environ.pop("RNNVIS_BROKER_URL", None)
        settings = Settings(store=tmp / "ui")
        proc = _start_worker(tmp / "ui", None, "", tmp / "ui-worker.log")
        try:
            from app.auth import LOCAL
            from app.logic import jobs as logic
            v = logic.preset_values(preset)
            t0 = time.perf_counter()
            out = logic.submit_train(settings, JobSettings.from_env(), LOCAL, preset, v, "builtin", v["corpus"], None,
                                     "bench-ui")
            job_id = out.job_id
            while (rec := records.read_job(settings.store, job_id)).status not in records.TERMINAL:
                time.sleep(0.1)
            ui_s = time.perf_counter() - t0
            assert rec.status == "done", rec.error
        finally:
            _stop(proc)
    res = {"preset": preset, "cli_s": cli_s, "ui_s": ui_s, "overhead_pct": 100 * (ui_s - cli_s) / cli_s,
           "train_s_in_job": rec.detail.get("train_result", {}).get("wall_s"),
           "analysis_s_in_job": rec.detail.get("result", {}).get("analysis_wall_s")}
    print(f"end to end {preset}: UI (submit -> done) {ui_s:.1f} s, CLI (`rnnvis train`, new process) {cli_s:.1f} s, "
          f"overhead {res['overhead_pct']:+.1f}% (training {res['train_s_in_job']} s, analysis "
          f"{res['analysis_s_in_job']} s inside the job)")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--preset", default="demo-rnn")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    results: dict = {"latency": []}
    if not args.skip_redis:
        results["latency"].append(latency(REDIS_URL, args.n, "redis"))
    results["latency"].append(latency(None, args.n, "embedded"))
    if not args.skip_e2e:
        results["end_to_end"] = end_to_end(args.preset)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
