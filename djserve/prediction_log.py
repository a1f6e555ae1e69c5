"""The prediction log and the feedback log: what the gateway answered, and what the platform later
learned was right. Written by the gateway, read by `/admin/stats` (online quality per version) and,
as the replay set of a future training run, by training.

Both are JSON lines in rotating files under one folder (`<state>/predictions/`):

    predictions-000041.jsonl   {"request_id": "9f1c...", "time": 1764590000.1, "family": "sentiment",
                                "version": 2, "endpoint": "/ai/sentiment/analyze",
                                "inputs_sha256": "ab12...", "outputs": {"labels": ["positive"]}}
    feedback-000007.jsonl      {"request_id": "9f1c...", "time": 1764590600.0, "family": "sentiment",
                                "version": 2, "kind": "sentiment_label", "value": "neutral", "index": 0,
                                "metric": "accuracy", "score": 0.0}

A file is closed at `max_bytes` and the oldest files beyond `keep_files` are deleted, so the log is
bounded on disk. Inputs are kept as a digest only (no audio, no chat text: privacy, and size); a
replay joins a digest back to the platform's own copy of the input.

`outputs` holds what an answer decided, per endpoint family:

    judge         {"overall_score": 0.71}  or, for a battle, {"winner": "dj-a"}
    sentiment     {"labels": ["positive", "neutral", ...],   one per message, in order, and the
                   "versions": [1, 2, ...]}                 version each message was routed to
    recommender   {"battle_ids": ["b-12", "b-7", ...]}        in ranked order

and a label's `score` (higher is better) is computed from them by `score_label`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Literal, Union

from pydantic import BaseModel

FeedbackKind = Literal["judge_score", "battle_winner", "sentiment_label", "recommendation_click"]

FEEDBACK_FAMILY: dict[str, str] = {
    "judge_score": "judge",
    "battle_winner": "judge",
    "sentiment_label": "sentiment",
    "recommendation_click": "recommender",
}
"""The model family whose predictions a kind of label grades."""

LABEL_METRIC: dict[str, str] = {
    "judge_score": "neg_abs_error",
    "battle_winner": "accuracy",
    "sentiment_label": "accuracy",
    "recommendation_click": "reciprocal_rank",
}


class PredictionRecord(BaseModel):
    request_id: str
    time: float
    family: str
    version: int
    endpoint: str
    inputs_sha256: str
    outputs: dict[str, Any]


class FeedbackRecord(BaseModel):
    request_id: str
    time: float
    family: str
    version: int
    kind: FeedbackKind
    value: Union[float, str]
    index: int = 0
    metric: str
    score: float


class LabelMismatch(ValueError):
    """The label does not fit the prediction it names (wrong kind, index out of range, bad value)."""


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def score_label(kind: str, outputs: dict[str, Any], value: float | str, index: int = 0) -> tuple[str, float]:
    """(metric, score) of one label against the prediction's outputs; higher is better."""
    metric = LABEL_METRIC[kind]
    if kind == "judge_score":
        if "overall_score" not in outputs:
            raise LabelMismatch("this request has no overall score (a battle? send battle_winner)")
        if isinstance(value, str) or not 0.0 <= float(value) <= 1.0:
            raise LabelMismatch("judge_score value must be the judges' overall score in [0, 1]")
        return metric, -abs(float(outputs["overall_score"]) - float(value))
    if kind == "battle_winner":
        if "winner" not in outputs:
            raise LabelMismatch("this request was not a battle (send judge_score for one set)")
        return metric, float(str(value) == str(outputs["winner"]))
    if kind == "sentiment_label":
        labels = outputs.get("labels") or []
        if not 0 <= index < len(labels):
            raise LabelMismatch(f"index {index} is out of range: the request had {len(labels)} message(s)")
        if value not in ("negative", "neutral", "positive"):
            raise LabelMismatch("sentiment_label value must be negative, neutral or positive")
        return metric, float(value == labels[index])
    ranked = [str(b) for b in outputs.get("battle_ids") or []]
    return metric, 1.0 / (ranked.index(str(value)) + 1) if str(value) in ranked else 0.0


class RotatingLog:
    """Append-only JSON lines in `<dir>/<prefix>-NNNNNN.jsonl`, bounded in size and file count."""

    def __init__(self, directory: Path, prefix: str, max_bytes: int = 16 * 2**20, keep_files: int = 8) -> None:
        if not re.fullmatch(r"[a-z]+", prefix):
            raise ValueError(f"invalid log prefix {prefix!r}")
        self.dir, self.prefix = Path(directory), prefix
        self.max_bytes, self.keep_files = max_bytes, max(1, keep_files)
        self._lock = threading.Lock()
        self._file = None
        self._size = 0

    def files(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.prefix}-*.jsonl"))

    def append(self, record: BaseModel) -> None:
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            if self._file is None or self._size + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            self._size += len(line)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = self.files()
        number = int(existing[-1].stem.rsplit("-", 1)[1]) + 1 if existing else 1
        path = self.dir / f"{self.prefix}-{number:06d}.jsonl"
        self._file, self._size = open(path, "ab"), 0
        for old in self.files()[: -self.keep_files]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read(directory: Path, prefix: str, model: type[BaseModel]) -> Iterator[BaseModel]:
    """Every record still on disk, oldest first; a torn last line (a crash mid-write) is skipped."""
    for path in sorted(Path(directory).glob(f"{prefix}-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                yield model.model_validate_json(line)
            except ValueError:
                continue


def now() -> float:
    return time.time()
