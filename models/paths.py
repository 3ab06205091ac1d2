"""Model ids and where a checkpoint lives in a store: no torch here, so that the store, the command
line and the web app can name checkpoints without importing it (``rnnvis models`` starts in well under
a second; torch alone takes 2-3 s to import on the development machine)."""
from __future__ import annotations

import os
import re
from pathlib import Path

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # ids of models, jobs, sentences


def check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not ID_PATTERN.fullmatch(model_id):
        raise ValueError(f"invalid model id {model_id!r}: use letters, digits, '.', '_' or '-' "
                         f"(at most 128 characters, starting with a letter or digit)")
    return model_id


def checkpoint_file(store_root: str | os.PathLike, model_id: str) -> Path:
    """Where the checkpoint of ``model_id`` lives in a store."""
    return Path(store_root) / "checkpoints" / f"{check_model_id(model_id)}.pt"
