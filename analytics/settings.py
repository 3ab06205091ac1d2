"""One settings object, read from ``RNNVIS_*`` environment variables at the edges
(CLI, app, workers) and passed down as arguments."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    store: Path = field(default_factory=lambda: Path("var/store"))
    broker_url: str | None = None        # None: embedded (no broker server)
    host: str = "127.0.0.1"
    port: int = 8050
    auth: bool = False
    secret_key: str | None = None
    device: str | None = None            # "cpu", "cuda", or None for automatic
    torch_threads: int | None = None     # CPU threads for training/tracing (None: see models.runtime)
    users_file: Path | None = None       # hosted mode's users (None: <store>/users.json)
    cookie_secure: bool = True           # session cookie only over HTTPS (off: plain-HTTP loopback tests)
    proxy_hops: int = 0                  # reverse proxies in front that set X-Forwarded-For / -Proto (trusted)
    ratelimit_url: str | None = None     # hosted mode's sign-in limits (None: the broker's Redis, else in-process)
    ratelimit_prefix: str = "rnnvis"     # their keys' prefix in that Redis (hosts that share users share it)
    # The metadata database (users, sessions, saved queries, job records, audit): postgresql://..., or None for
    # SQLite in the store. analytics.metadb reads the same variable wherever a store is opened (workers, CLI).
    database_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        get = lambda k, d=None: env.get(f"RNNVIS_{k}", d)  # noqa: E731
        try:
            port = int(get("PORT", "8050"))
        except ValueError:
            raise ValueError(f"RNNVIS_PORT must be a port number, got {get('PORT')!r}") from None
        return cls(store=Path(get("STORE", "var/store")), broker_url=get("BROKER_URL") or None,
                   host=get("HOST", "127.0.0.1"), port=port,
                   auth=get("AUTH", "off").lower() in ("1", "on", "true", "yes"),
                   secret_key=get("SECRET_KEY"), device=get("DEVICE"),
                   torch_threads=int(get("TORCH_THREADS")) if get("TORCH_THREADS") else None,
                   users_file=Path(get("USERS_FILE")) if get("USERS_FILE") else None,
                   cookie_secure=get("COOKIE_SECURE", "on").lower() not in ("0", "off", "false", "no"),
                   proxy_hops=_count(get("PROXY_HOPS", "0"), "RNNVIS_PROXY_HOPS"),
                   ratelimit_url=get("RATELIMIT_URL") or None, ratelimit_prefix=get("RATELIMIT_PREFIX", "rnnvis"),
                   database_url=_database_url(get("DATABASE_URL", "")))


def _database_url(raw: str) -> str | None:
    url = raw.strip()
    if url and url.split(":", 1)[0].split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"RNNVIS_DATABASE_URL must be postgresql://user:password@host:port/database (or unset for "
                         f"SQLite inside the store), got {url.split(':', 1)[0]}://...")
    return url or None


def _count(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {raw!r}")
    return value
