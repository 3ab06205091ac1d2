"""The audit log: who did what, when, to what; one row of the ``audit`` table per event.

Recorded: every job submitted, cancelled or failed; every model deleted or imported; every user added,
removed or given another role; every sign-in refused by the throttle (a burst of failures); every note an
admin removed that was someone else's. Admins read it on the Admin page (filterable) and in SQL (``audit``,
admins only: :mod:`analytics.sandbox` adds it to an admin's query process and refuses it to anyone else).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.metadb import tables
from analytics.metadb.engine import Database, for_store

log = logging.getLogger(__name__)

__all__ = ["ACTIONS", "COLUMNS", "record", "record_burst", "query", "MAX_ROWS"]

#: Every action the log records.
ACTIONS = ("job submitted", "job cancelled", "job failed", "model deleted", "model imported", "user added",
           "user removed", "user role changed", "sign-in throttled", "note removed")
COLUMNS = ("happened_at", "who", "action", "target", "details")
#: The most rows one read returns (the Admin page, an admin's SQL query).
MAX_ROWS = 100_000
_EPOCH = dt.datetime(1970, 1, 1)


def _db(where: str | os.PathLike | Database) -> Database:
    return where if isinstance(where, Database) else for_store(where)


def record(where: str | os.PathLike | Database | Connection, who: str, action: str, target: str | None = None,
           details: Any = None) -> None:
    """Add one event. ``where``: a store root or a :class:`Database` (a transaction of its own; never
    raises: a failed write is logged as an error, and what was audited goes on), or the connection of a
    write transaction (the event commits with the change it records). ``details``: text, or anything JSON
    can write."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(ACTIONS)}")
    if details is not None and not isinstance(details, str):
        details = json.dumps(details, default=str, sort_keys=True)
    now = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - _EPOCH) // dt.timedelta(microseconds=1)
    stmt = tables.audit.insert().values(happened_at=now, who=str(who or "?")[:200], action=action,
                                        target=None if target is None else str(target)[:500],
                                        details=None if details is None else details[:4000])
    if isinstance(where, Connection):
        where.execute(stmt)
        return
    try:
        with _db(where).write() as con:
            con.execute(stmt)
    except (sa.exc.SQLAlchemyError, OSError):
        log.error("audit: could not record %s %s by %s", action, target, who, exc_info=True)


_bursts: dict[tuple[str, str, str, str | None], float] = {}


def record_burst(where: str | os.PathLike | Database, who: str, action: str, target: str | None = None,
                 details: Any = None, *, within_s: float = 60.0) -> None:
    """Record a burst once: nothing when this (who, action, target) was recorded less than ``within_s`` seconds
    ago (by this process, from memory, or by any, from the table), so a flood of refused sign-ins adds one row
    per throttle period, not one per request."""
    db = _db(where)
    key = (db.url, str(who or "?")[:200], action, None if target is None else str(target)[:500])
    now = time.time()
    if _bursts.get(key, 0.0) > now:
        return
    _bursts[key] = now + within_s
    if len(_bursts) > 10_000:  # forget the oldest half (a flood of distinct names)
        for k in sorted(_bursts, key=_bursts.get)[:5_000]:
            del _bursts[k]
    since = int((now - within_s) * 1e6)
    a = tables.audit.c
    try:
        with db.read() as con:
            seen = con.execute(sa.select(a.id).where(a.action == action, a.who == key[1], a.target == key[3],
                                                     a.happened_at > since).limit(1)).first()
    except (sa.exc.SQLAlchemyError, OSError):
        seen = None
    if seen is None:
        record(db, who, action, target, details)


def query(where: str | os.PathLike | Database, *, action: str | None = None, who: str | None = None,
          text: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Events, newest first, as a frame of :data:`COLUMNS` (``happened_at`` a naive UTC datetime), filtered by exact
    ``action`` and ``who`` and by ``text`` anywhere in target or details (case-insensitive)."""
    a = tables.audit.c
    stmt = sa.select(a.happened_at, a.who, a.action, a.target, a.details).order_by(a.happened_at.desc(), a.id.desc())
    if action:
        stmt = stmt.where(a.action == action)
    if who:
        stmt = stmt.where(a.who == who)
    if text:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        stmt = stmt.where(sa.or_(sa.func.lower(a.target).like(like, escape="\\"),
                                 sa.func.lower(a.details).like(like, escape="\\")))
    with _db(where).read() as con:
        rows = con.execute(stmt.limit(max(1, min(int(limit), MAX_ROWS)))).all()
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["happened_at"] = pd.to_datetime(df["happened_at"].astype("int64"), unit="us")
    return df
