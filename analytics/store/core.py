"""The store's base: its errors and the checks of a store root (see :mod:`analytics.store`).

Imports nothing of ours but the standard library, so the SQL sandbox's processes can use the store's
read side without loading torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["StoreError", "SchemaMismatchError", "UnknownPartitionError", "UnknownModelError"]


class StoreError(Exception):
    """Anything wrong with reading or writing the store."""


class SchemaMismatchError(StoreError):
    """A frame handed to the writer does not match the view's schema."""


class UnknownPartitionError(StoreError, KeyError):
    """No partition of this kind with this id."""

    def __init__(self, kind: str, key: str, known: Sequence[str] = ()):
        self.kind, self.key, self.known = kind, key, list(known)
        shown = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        super().__init__(f"no {kind} partition {key!r} in the store; known: {shown or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownModelError(UnknownPartitionError):
    """No model with this id in the store."""

    def __init__(self, model_id: str, known: Sequence[str] = ()):
        super().__init__("models", model_id, known)
        self.model_id = model_id
        shown = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        self.args = (f"unknown model {model_id!r}; known models: {shown or '(none)'}",)


def store_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser().absolute()
    if any(ch in str(path) for ch in "*?[]{}'"):
        raise StoreError(f"store root {str(path)!r} must not contain any of * ? [ ] {{ }} '")
    return path


def quote_ident(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
