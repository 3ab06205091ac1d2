"""Fixtures for the job system: real Redis (DB 15, a key prefix per session), real `celery worker` processes.

Tests that need Redis fail (not skip) with a clear message when it is down:
CI starts it (`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from jobhelpers import FIXTURES, REDIS_URL, Worker, job_env

from analytics.settings import Settings


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as e:
        pytest.fail(f"these tests need Redis at 127.0.0.1:6379 ({e}); start it with: redis-server --daemonize yes "
                    f"--bind 127.0.0.1 --port 6379 --save \"\" --appendonly no", pytrace=False)
    return REDIS_URL


@pytest.fixture(scope="session")
def prefix(redis_url):
    """A Redis key prefix of this test session (Celery's global_keyprefix); its keys are deleted at the end."""
    import redis
    p = f"rnnvis-test-{uuid.uuid4().hex[:8]}:"
    yield p
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=p + "*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture(scope="session")
def redis_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobstore")


@pytest.fixture(scope="session")
def redis_settings(redis_store, redis_url) -> Settings:
    return Settings(store=redis_store, broker_url=redis_url, device="cpu")


@pytest.fixture(scope="session")
def ptb_upload(redis_store) -> str:
    from workers import uploads
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    return "upload:" + uploads.save_corpus_upload(redis_store, files, "ptb", owner="tester").upload_id


class WorkerPool:
    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.workers = {name: Worker(name, env, log_dir) for name in ("w1", "w2")}

    def ensure_running(self) -> None:
        started = [w.start() for w in self.workers.values() if not w.alive()]
        for w in started:
            w.wait_ready()

    def by_node(self, worker_field: str) -> Worker:
        node = worker_field.rpartition("/")[0].partition("@")[0]
        return self.workers[node]

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()


@pytest.fixture(scope="session")
def workers(redis_store, redis_url, prefix, tmp_path_factory) -> WorkerPool:
    """Two Redis workers (both queues, one pool process each) sharing the session store."""
    pool = WorkerPool(job_env(redis_store, redis_url, prefix), tmp_path_factory.mktemp("logs"))
    pool.ensure_running()
    yield pool
    pool.stop()
