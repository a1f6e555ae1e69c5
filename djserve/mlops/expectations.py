"""What a candidate's live outputs are expected to look like next to the stable version's.

The online output-shift gate fails a canary only on a shift beyond this expectation. It comes from
the offline gate (both versions' predictions on the held-out set) and is replaced by the shadow
phase's pairs (both versions on identical live requests) when there is one. Kept per candidate in
`<state>/expectations/<family>-v<N>.json`, because `promote` and `canary --watch` are separate runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from djserve.files import atomic_write_text
from djserve.mlops.offline_gate import HeldOut
from djserve.mlops.online_gates import ExpectedShift

FOLDER = "expectations"


def _path(state_dir: Path, family: str, version: int) -> Path:
    return Path(state_dir) / FOLDER / f"{family}-v{int(version)}.json"


def save(state_dir: Path, family: str, version: int, expected: ExpectedShift | None) -> None:
    if expected is not None:
        atomic_write_text(_path(state_dir, family, version), expected.model_dump_json())


def load(state_dir: Path, family: str, version: int) -> ExpectedShift | None:
    try:
        return ExpectedShift.model_validate_json(_path(state_dir, family, version).read_bytes())
    except (OSError, ValidationError):
        return None


def summaries(extra: dict[str, Any] | None) -> list[float]:
    """Per held-out item, the mean of the predicted scores (the gateway's summary of a clip model's
    answer); empty when the evaluation kept no score predictions."""
    preds = (extra or {}).get("predictions")
    if not preds:
        return []
    arr = np.asarray(preds, dtype=np.float64)
    return arr.reshape(len(arr), -1).mean(axis=1).tolist()


def from_offline(candidate: HeldOut, champion: HeldOut) -> ExpectedShift | None:
    if not candidate.summaries or not champion.summaries:
        return None
    return ExpectedShift(source="offline", candidate=candidate.summaries, stable=champion.summaries)
