"""Where partitions live and the file-system steps that commit them (see :mod:`analytics.store`).

Ids and paths of partitions and checkpoints, fsync, the atomic exchange (``renameat2``), the commit lock
and the retirement of replaced versions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from analytics.schema import KINDS, Kind
from analytics.store.core import StoreError, UnknownModelError, store_root
from models.paths import ID_PATTERN, checkpoint_file

log = logging.getLogger("analytics.store")

STAGING_DIR = ".staging"
LOCK_NAME = "commit.lock"
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"
_ID_RE = ID_PATTERN  # one definition of a valid id, shared with the checkpoints


# --------------------------------------------------------------------------- paths


def default_root() -> Path:
    """The store root: ``$RNNVIS_STORE`` if set, else ``./var/store``."""
    env = os.environ.get("RNNVIS_STORE")
    return Path(env).expanduser() if env else Path.cwd() / "var" / "store"


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe id for a path, else raise ValueError.

    Ids are 1-128 characters of ``A-Za-z0-9._-`` starting with a letter or
    digit, so they can never climb out of the store (``..``, ``/``).
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown partition kind {kind!r}; known kinds: {', '.join(KINDS)}") from None


def partition_path(root: str | os.PathLike[str], kind: str, key: str) -> Path:
    """Directory of partition ``key`` of ``kind`` (whether or not it exists)."""
    k = kind_of(kind)
    validate_id(key, k.key)
    return store_root(root) / k.name / f"{k.key}={key}"


def checkpoint_path(root: str | os.PathLike[str], model_id: str) -> Path:
    """Where the training code keeps the checkpoint of ``model_id`` (not created here)."""
    validate_id(model_id, "model_id")
    return checkpoint_file(store_root(root), model_id)


def list_partitions(root: str | os.PathLike[str], kind: str) -> list[str]:
    """Ids of the committed partitions of ``kind``, sorted."""
    k = kind_of(kind)
    prefix = k.key + "="
    try:
        entries = list(os.scandir(store_root(root) / k.name))
    except FileNotFoundError:
        return []
    keys = [
        e.name[len(prefix) :]
        for e in entries
        if e.name.startswith(prefix) and _ID_RE.fullmatch(e.name[len(prefix) :]) and e.is_dir()
    ]
    return sorted(keys)


def require_model(root: str | os.PathLike[str], model_id: str) -> None:
    """Raise UnknownModelError (listing the known ids) unless ``model_id`` is stored."""
    validate_id(model_id, "model_id")
    if not partition_path(root, "models", model_id).is_dir():
        raise UnknownModelError(model_id, list_partitions(root, "models"))


# --------------------------------------------------------------------------- file system helpers


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc_renameat2: Any = None
_libc_checked = False


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the platform or file system cannot do it.
    """
    global _libc_renameat2, _libc_checked
    if not _libc_checked:
        _libc_checked = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _libc_renameat2 = fn
        except (OSError, AttributeError):
            _libc_renameat2 = None
    if _libc_renameat2 is None:
        return False
    rc = _libc_renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class CommitLock:
    """Exclusive lock on ``<root>/.staging/commit.lock`` while partitions are swapped."""

    def __init__(self, root: Path):
        self.path = root / STAGING_DIR / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> CommitLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


#: Seconds a replaced or deleted partition version stays in staging before it
#: is deleted, so that queries already reading its files finish normally
#: (on Linux an open file survives deletion anyway; on NFS it would not).
RETIRE_GRACE_S = 30.0


def _retire(old: Path) -> None:
    """Delete a replaced partition version after ``RETIRE_GRACE_S``, in the background."""
    os.utime(old)  # mtime = when it was retired, for _sweep_retired
    timer = threading.Timer(RETIRE_GRACE_S, remove_tree, args=(old,))
    timer.daemon = True  # if the process exits first, the next commit's sweep removes it
    timer.start()


def _sweep_retired(root: Path) -> None:
    """Delete retired versions (``.old`` in staging) older than the grace period."""
    now = time.time()
    try:
        entries = list(os.scandir(root / STAGING_DIR))
    except FileNotFoundError:
        return
    for e in entries:
        if e.name.endswith(".old"):
            try:
                if now - e.stat(follow_symlinks=False).st_mtime > RETIRE_GRACE_S:
                    remove_tree(Path(e.path))
            except FileNotFoundError:
                continue


def file_name(table: str, version: str) -> str:
    return f"{table}.{version}.parquet"


def find_table_file(partition: Path, table: str) -> Path | None:
    """The file of ``table`` in a committed partition directory, if any."""
    try:
        with os.scandir(partition) as files:
            for f in files:
                if f.name.startswith(table + ".") and f.name.endswith(".parquet"):
                    return Path(f.path)
    except FileNotFoundError:
        pass
    return None


def partition_version(root: str | os.PathLike[str], kind: str, key: str) -> str | None:
    """The version token of partition ``key`` of ``kind`` (its primary table's file names it), None if absent."""
    f = find_table_file(partition_path(root, kind, key), kind_of(kind).primary)
    return None if f is None else f.name.split(".")[1]


def table_file(root: str | os.PathLike[str], kind: str, key: str, table: str) -> Path | None:
    """Path of ``table``'s Parquet file in partition ``key`` of ``kind`` (None if absent).

    For tools that want the raw file; the name changes at every rewrite.
    """
    if table not in kind_of(kind).views:
        raise StoreError(f"table {table!r} does not belong in a {kind} partition")
    return find_table_file(partition_path(root, kind, key), table)
