"""One JSON object in a file, shared by processes: read cached by (mtime, size, inode), updated atomically
(temporary file, fsync, ``os.replace``) under a lock file, mode 0600.

Used for hosted mode's sign-in throttle (:mod:`app.hosted.throttle`), so that several gunicorn workers never
lose or corrupt one another's writes. (Users, sessions and saved queries moved to :mod:`analytics.metadb`.)
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["JsonFile"]


class JsonFile:
    """One JSON object in a file: read cached by (mtime, size, inode), updated atomically under a lock file.

    A damaged file reads as empty (sessions end, failure counts reset, rather than everyone locked out),
    or with ``strict`` raises the OSError or ValueError.  ``indent``: how the file is written (None: compact).
    """

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False, indent: int | None = None):
        self.path = Path(path)
        self.strict, self.indent = strict, indent
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def read(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            if self.strict:
                raise
            data = {}
        if not isinstance(data, dict):
            if self.strict:
                raise ValueError(f"{self.path} does not hold a JSON object")
            data = {}
        self._cache = (key, data)
        return data

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``fn`` to a private copy of the data and write the result; returns what ``fn`` returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None
            data = json.loads(json.dumps(self.read()))
            result = fn(data)
            tmp = tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=f".{self.path.name}.",  # noqa: SIM115
                                              suffix=".tmp", delete=False, encoding="utf-8")
            try:
                with tmp:
                    os.fchmod(tmp.fileno(), 0o600)
                    json.dump(data, tmp, indent=self.indent, sort_keys=self.indent is not None,
                              separators=None if self.indent is not None else (",", ":"))
                    tmp.flush()
                    os.fsync(tmp.fileno())
                os.replace(tmp.name, self.path)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
            self._cache = None
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
