"""How many console queries run at once, and the private directory the sandbox works from.

**Slots.** A query holds a slot while its process runs: one of ``total`` slots of the machine and,
for a signed-in user, one of ``per_user`` slots of that user. A slot is an exclusive ``flock`` on a
file in the run directory, so the caps hold across every gunicorn worker of the machine (and the
command line), and the kernel releases a slot when its holder dies, however it dies. Nothing
waits in line: a query that finds no free slot is refused at once with :class:`SlotsBusy`
("try again in a moment"), so a flood of queries costs the server nothing but the refusals.

**Run directory.** ``<tmp>/rnnvis-sql-<hash>/`` (mode 0700, owned by us; ``<hash>`` digests the
user id and the store path): the slot files and ``store``, a symbolic link to the store root.
Query processes open the store through that link, so whatever a query can see of the paths DuckDB
uses (``duckdb_settings()``, the views' SQL, an error message) shows the link, never where the
store really lives or whose home directory is used.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SlotsBusy", "run_dir", "store_link", "query_slot", "try_slot", "held_slots"]


class SlotsBusy(Exception):
    """No free slot; ``str(e)`` is a message for the user."""


def run_dir(store_root: str | os.PathLike[str]) -> Path:
    """This store's private run directory (created on first use); OSError if it is not safely ours."""
    root = Path(store_root).expanduser().absolute()
    digest = hashlib.sha256(f"{os.getuid()}:{root}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    base = Path(os.environ.get("RNNVIS_RUN_DIR") or tempfile.gettempdir())
    path = base / f"rnnvis-sql-{digest}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=False)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{path} is not a private directory of this user (mode {stat.filemode(st.st_mode)}); "
                      "remove it or set RNNVIS_RUN_DIR")
    return path


def store_link(store_root: str | os.PathLike[str]) -> Path:
    """``<run dir>/store``, a symbolic link to ``store_root`` (made or corrected atomically)."""
    target = str(Path(store_root).expanduser().resolve())
    link = run_dir(store_root) / "store"
    try:
        current = os.readlink(link)
    except (FileNotFoundError, OSError):
        current = None
    if current != target:
        tmp = link.with_name(f".store.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return link


def try_slot(directory: Path, prefix: str, n: int) -> int | None:
    """A descriptor holding an exclusive lock on one of ``<prefix>-0..n-1.lock``, or None if all are held.

    Close the descriptor to free the slot (the kernel does it if the process dies)."""
    for i in range(n):
        fd = os.open(directory / f"{prefix}-{i}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


def held_slots(store_root: str | os.PathLike[str]) -> int:
    """How many of the machine's query slots of this store are held now: console queries running."""
    held = 0
    for lock in run_dir(store_root).glob("slot-*.lock"):
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held += 1
        finally:
            os.close(fd)        # (closing also drops the lock taken just now)
    return held


@contextlib.contextmanager
def query_slot(store_root: str | os.PathLike[str], user: str | None, *, per_user: int,
               total: int) -> Iterator[None]:
    """Hold a slot for one query (a user slot too when ``user`` is given); SlotsBusy when none is free."""
    if per_user < 1 or total < 1:
        raise ValueError("per_user and total must be at least 1")
    directory = run_dir(store_root)
    held: list[int] = []
    try:
        if user is not None:
            tag = hashlib.sha256(user.encode("utf-8", "surrogateescape")).hexdigest()[:16]
            fd = try_slot(directory, f"user-{tag}", per_user)
            if fd is None:
                raise SlotsBusy(f"You already have {per_user} {'query' if per_user == 1 else 'queries'} running; "
                                "wait for one to finish, then run this one again.")
            held.append(fd)
        fd = try_slot(directory, "slot", total)
        if fd is None:
            raise SlotsBusy(f"Too many queries are running on this server ({total} at once); try again in a "
                            "moment.")
        held.append(fd)
        yield
    finally:
        for fd in held:
            os.close(fd)  # releases the lock
