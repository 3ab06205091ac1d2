"""Job-system settings: ``RNNVIS_*`` environment variables beyond :class:`analytics.settings.Settings`.

Read at the edges (CLI, app, worker start) with :meth:`JobSettings.from_env`
and passed down. Every value has a default that suits one machine; see
``docs/deployment.md`` for what to change on a cluster.

=============================  =======  ==================================================
variable                       default  meaning
=============================  =======  ==================================================
RNNVIS_BROKER_PREFIX           (none)   prefix of every Redis key Celery uses (several
                                        deployments or test runs on one Redis)
RNNVIS_VISIBILITY_TIMEOUT      300      seconds before a task whose worker vanished (whole
                                        worker killed, machine lost) is handed to another
                                        worker; running tasks renew their claim every
                                        heartbeat, so long trainings are never duplicated
RNNVIS_HEARTBEAT_S             10       seconds between a running job's heartbeats
RNNVIS_STALE_AFTER_S           60       a running job without a heartbeat for this long is
                                        shown as 'lost'
RNNVIS_TRAIN_TIME_LIMIT        86400    soft time limit of a training task (s); the hard
                                        limit is 60 s more
RNNVIS_ANALYZE_TIME_LIMIT      14400    soft time limit of an analysis or import task (s)
RNNVIS_MAX_ATTEMPTS            3        attempts of one task (worker lost, transient error)
                                        before the job is marked failed
RNNVIS_MAX_UPLOAD_MB           50       largest uploaded corpus or model file
RNNVIS_MAX_MODEL_MPARAMS       100      largest model (millions of parameters) an upload may
                                        declare or hold; the 2x1500 LSTM of the large
                                        presets on a 10k vocabulary is 66
RNNVIS_IMPORT_MEMORY_MB        4096     address-space limit of the process that builds and
                                        evaluates an uploaded model (on the worker)
RNNVIS_BROKER_POLL_S           0.2      polling interval of the embedded (file-system) broker
=============================  =======  ==================================================
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class JobSettings:
    broker_prefix: str = ""
    visibility_timeout: float = 300.0
    heartbeat_s: float = 10.0
    stale_after_s: float = 60.0
    train_time_limit: float = 86400.0
    analyze_time_limit: float = 14400.0
    max_attempts: int = 3
    max_upload_bytes: int = 50 * 1024 * 1024
    broker_poll_s: float = 0.2
    max_model_params: int = 100_000_000
    import_memory_bytes: int = 4096 << 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if env is None else env

        def num(name: str, default: float, kind=float):
            raw = env.get(f"RNNVIS_{name}")
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"RNNVIS_{name} must be a number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"RNNVIS_{name} must be positive, got {raw!r}")
            return value

        return cls(
            broker_prefix=env.get("RNNVIS_BROKER_PREFIX", ""),
            visibility_timeout=num("VISIBILITY_TIMEOUT", cls.visibility_timeout),
            heartbeat_s=num("HEARTBEAT_S", cls.heartbeat_s),
            stale_after_s=num("STALE_AFTER_S", cls.stale_after_s),
            train_time_limit=num("TRAIN_TIME_LIMIT", cls.train_time_limit),
            analyze_time_limit=num("ANALYZE_TIME_LIMIT", cls.analyze_time_limit),
            max_attempts=int(num("MAX_ATTEMPTS", cls.max_attempts, int)),
            max_upload_bytes=int(num("MAX_UPLOAD_MB", cls.max_upload_bytes / 2**20) * 2**20),
            broker_poll_s=num("BROKER_POLL_S", cls.broker_poll_s),
            max_model_params=int(num("MAX_MODEL_MPARAMS", cls.max_model_params / 1e6) * 1e6),
            import_memory_bytes=int(num("IMPORT_MEMORY_MB", cls.import_memory_bytes >> 20) * 2**20),
        )
