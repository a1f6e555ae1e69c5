"""Drift baselines: the reference output distribution a family's live predictions are compared with.

The contract between MLOps (which sets a baseline when a version becomes the champion) and the
gateway's drift monitor (which reads it on every check). One JSON file per family,
`<baseline_dir>/<family>.json`, written atomically and re-read when it changes (mtime_ns, size), so
a baseline set by `djserve promote` reaches the running gateway without a restart:

    {"family": "judge", "version": 2, "values": [0.61, 0.58, ...],
     "created_at": "2026-12-01T12:00:00Z", "source": "promotion"}

`values` are per-request output summaries (see the gateway's `summarize`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from djserve.files import atomic_write_text

log = logging.getLogger("djserve.drift")

_FAMILY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DriftBaseline(BaseModel):
    model_config = ConfigDict(extra="ignore")

    family: str
    version: Optional[int] = None
    values: list[float] = Field(min_length=1)
    created_at: str = ""
    source: str = ""

    @field_validator("values")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError("baseline values must all be finite")
        return values


class BaselineStore:
    """The baselines folder; thread-safe, reads cached per file version."""

    def __init__(self, baseline_dir: Path) -> None:
        self.dir = Path(baseline_dir)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], DriftBaseline]] = {}

    def path(self, family: str) -> Path:
        if not _FAMILY_NAME.match(family):
            raise ValueError(f"invalid model family name {family!r}")
        return self.dir / f"{family}.json"

    def write(self, family: str, values: list[float], version: int | None = None, source: str = "") -> Path:
        doc = DriftBaseline(family=family, version=version, values=[float(v) for v in values],
                            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), source=source)
        return atomic_write_text(self.path(family), doc.model_dump_json())

    def read(self, family: str) -> DriftBaseline | None:
        """The family's baseline, or None when there is none or it is unreadable (logged)."""
        path = self.path(family)
        try:
            st = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._cache.pop(family, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(family)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            doc = DriftBaseline.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as e:
            log.warning("unreadable drift baseline %s: %s", path, e)
            return None
        with self._lock:
            self._cache[family] = (stamp, doc)
        return doc
