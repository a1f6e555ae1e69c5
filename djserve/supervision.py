"""How `djserve serve` treats a child (Triton, the gateway) that dies: restart it, with backoff,
a bounded number of times per window; past that, the crash is not transient and the stack stops
with a clear message instead of restarting forever."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pydantic import BaseModel


@dataclass
class RestartBudget:
    max_restarts: int = 5
    """restarts allowed within `window_s`; one more crash in the window ends the stack"""
    window_s: float = 300.0
    backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    """the wait before the n-th restart within the window (the last one repeats)"""
    _restarts: deque = field(default_factory=deque, repr=False)

    def next_delay(self, now: float) -> float | None:
        """The wait before restarting a child that died at `now`; None: give up."""
        while self._restarts and now - self._restarts[0] > self.window_s:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            return None
        delay = self.backoff_s[min(len(self._restarts), len(self.backoff_s) - 1)]
        self._restarts.append(now)
        return delay

    @property
    def recent(self) -> int:
        """restarts within the current window"""
        return len(self._restarts)


# --- the supervisor's record, read by the gateway for /metrics -----------------------------------

SUPERVISION_FILE = "supervision.json"
"""In the state dir: what the supervisor of `djserve serve` did to each child."""


class ChildRecord(BaseModel):
    restarts: int = 0
    """restarts since the stack started"""
    last_exit_code: Optional[int] = None
    last_restart_at: Optional[str] = None


class SupervisionRecord(BaseModel):
    children: dict[str, ChildRecord] = {}

    def write(self, path: Path) -> None:
        """Atomically (the gateway may be reading it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(self.model_dump_json(indent=1))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> "SupervisionRecord":
        """The record, or an empty one when there is none (no supervisor) or it cannot be read."""
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError):
            return cls()
