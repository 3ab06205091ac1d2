"""Whether a process of this machine still runs: the one check that staging clean-up, password-check tickets and
lost-job detection share."""
from __future__ import annotations

import os

__all__ = ["process_alive"]


def process_alive(pid: int) -> bool:
    """True while process ``pid`` of this machine exists (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
