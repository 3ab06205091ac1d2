"""Job-system benchmarks.

1. Submit -> start latency on an idle worker: ``--n`` ping tasks sent one at a
   time (each writes the time it started), p50/p95/max, with Redis and with the
   embedded file-system broker; plus the latency of a real tiny job (submit ->
   its record says running).
2. End to end: one demo model trained and analysed through the Jobs page's
   submit callback and a (warm) embedded worker, against the same training +
   analysis run by ``rnnvis train`` in a fresh process. Reports the overhead.
3. Job records (alone with ``--records``, which needs no Redis): listing 1,000 jobs
   (``records.list_jobs``, what the Jobs page does every second) and one
   progress update and one status change (``records.write_job``), in the job
   database, against the old path measured in the same run on a copy of
   the same records: one Parquet partition per job, rewritten at every
   update and listed through the store's DuckDB view.

    .venv/bin/python bench/bench_jobs.py [--n 20] [--preset demo-rnn] [--skip-e2e] [--json out.json]
    .venv/bin/python bench/bench_jobs.py --records [--jobs 1000] [--repeats 50]

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
    with open(log, "wb") as out:
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
    print(f"{label:10s} ping task submit->start over {len(lat)}: p50 {res['p50_ms']:.1f} ms, "
          f"p95 {res['p95_ms']:.1f} ms, max {res['max_ms']:.1f} ms | tiny training job submit->running: "
          f"p50 {res['submit_to_running_p50_ms']:.0f} ms, "
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
        to_running.append(r.started_at.replace(tzinfo=dt.UTC).timestamp() - t0)
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
            from app.hosted.auth import LOCAL
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


def _sample_records(n: int) -> list:
    """``n`` finished training jobs with a realistic detail (a 10-epoch curve, the latest step, the result)."""
    import datetime as dt

    from workers.records import JobRecord
    t0 = dt.datetime(2026, 1, 1)
    curve = [{"epoch": e, "train_loss": 5.0 - e / 10, "valid_loss": 5.1 - e / 10, "valid_perplexity": 160.0 - e,
              "valid_accuracy": None, "tokens_per_s": 2100.0, "lr": 1.0} for e in range(1, 11)]
    return [JobRecord(f"j{i:08x}", "train", f"m{i}", status="done", progress=1.0, submitted_by=f"user{i % 7}",
                      submitted_at=t0 + dt.timedelta(seconds=i), finished_at=t0 + dt.timedelta(seconds=i + 60),
                      started_at=t0 + dt.timedelta(seconds=i + 1), heartbeat_at=t0 + dt.timedelta(seconds=i + 60),
                      worker="bench@host/1", attempts=1, stage="done",
                      params={"preset": "demo-lstm", "model": {"cell": "lstm", "hidden_size": 200},
                              "train": {"epochs": 10, "lr": 1.0}, "corpus": {"source": "builtin", "name": "brown"}},
                      detail={"curve": curve, "latest": {"stage": "analyze", "analysis_stage": "publish"},
                              "result": {"tokens": 104448, "words": 9999, "states": 4}})
            for i in range(n)]


def _ms(xs: list[tuple[float, float]]) -> dict:
    """p50/p95 of the wall times and p50 of the CPU times (this process) of (wall, cpu) pairs: on a loaded
    machine the wall time includes waiting for a core, the CPU time what an idle machine would take."""
    wall, cpu = [w for w, _ in xs], [c for _, c in xs]
    return {"p50_ms": 1000 * statistics.median(wall), "p95_ms": 1000 * _pct(wall, 0.95),
            "cpu_p50_ms": 1000 * statistics.median(cpu)}


def job_records(n_jobs: int, repeats: int) -> dict:
    """List ``n_jobs`` jobs and update one: the job database against one Parquet partition per job."""
    import pandas as pd

    from analytics import store
    from workers import records
    recs = _sample_records(n_jobs)
    with tempfile.TemporaryDirectory() as tmp:
        new_root, old_root = Path(tmp) / "sqlite", Path(tmp) / "parquet"
        for rec in recs:
            records.write_job(new_root, rec)
            with store.write_partition(old_root, "jobs", rec.job_id) as w:  # as write_job did before
                w.write("jobs", pd.DataFrame([rec.row()]))

        def old_list() -> pd.DataFrame:  # as list_jobs did before: the jobs view through DuckDB
            con = store.connect(old_root)
            try:
                return store.query(con, "SELECT * FROM jobs ORDER BY submitted_at DESC, job_id LIMIT ?", [n_jobs])
            finally:
                con.close()

        def timed(fn, k: int) -> list[float]:
            fn()  # warm: imports, caches, the first connection
            out = []
            for _ in range(k):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                out.append((time.perf_counter() - t0, time.process_time() - c0))
            return out

        assert len(records.list_jobs(new_root, limit=n_jobs)) == len(old_list()) == n_jobs
        job = recs[n_jobs // 2]

        def new_update():
            job.progress = (job.progress + 0.01) % 1.0  # a progress update: not a status change
            records.write_job(new_root, job)

        def old_update():
            with store.write_partition(old_root, "jobs", job.job_id) as w:
                w.write("jobs", pd.DataFrame([job.row()]))

        def new_status_change():
            job.status = "running" if job.status != "running" else "queued"
            records.write_job(new_root, job)

        res = {"jobs": n_jobs,
               "list": {"sqlite": _ms(timed(lambda: records.list_jobs(new_root, limit=n_jobs), repeats)),
                        "parquet": _ms(timed(old_list, max(5, repeats // 5)))},
               "update": {"sqlite": _ms(timed(new_update, repeats * 4)),
                          "parquet": _ms(timed(old_update, repeats))},
               "status_change": {"sqlite": _ms(timed(new_status_change, repeats))}}
    for what in ("list", "update"):
        a, b = res[what]["sqlite"], res[what]["parquet"]
        res[what]["ratio_p50"] = b["p50_ms"] / a["p50_ms"]
        print(f"job records, {what + ' ' + str(n_jobs) + ' jobs' if what == 'list' else 'one job update'}: "
              f"job database p50 {a['p50_ms']:.2f} ms, p95 {a['p95_ms']:.2f} ms (CPU p50 {a['cpu_p50_ms']:.2f} ms) | "
              f"Parquet partition per job p50 {b['p50_ms']:.2f} ms, p95 {b['p95_ms']:.2f} ms "
              f"(CPU p50 {b['cpu_p50_ms']:.2f} ms) | {res[what]['ratio_p50']:.0f}x faster")
    sc = res["status_change"]["sqlite"]
    print(f"job records, one status change (database row + its archive partition): p50 {sc['p50_ms']:.2f} ms, "
          f"p95 {sc['p95_ms']:.2f} ms (CPU p50 {sc['cpu_p50_ms']:.2f} ms)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--preset", default="demo-rnn")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--records", action="store_true", help="only the job-record benchmark (part 3; no Redis)")
    ap.add_argument("--jobs", type=int, default=1000, help="jobs to list in part 3")
    ap.add_argument("--repeats", type=int, default=50, help="timed repeats in part 3")
    args = ap.parse_args()
    if args.records:
        results = job_records(args.jobs, args.repeats)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return 0
    results: dict = {"latency": []}
    if not args.skip_redis:
        results["latency"].append(latency(REDIS_URL, args.n, "redis"))
    results["latency"].append(latency(None, args.n, "embedded"))
    if not args.skip_e2e:
        results["end_to_end"] = end_to_end(args.preset)
    results["records"] = job_records(args.jobs, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
