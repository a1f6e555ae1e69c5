"""The gateway's prediction log and feedback join (formats: djserve.prediction_log).

Every answered model request is recorded under its request id (bentos.request_id): a line in the
rotating prediction log and an entry in a bounded in-memory index (the most recent
`feedback_index_size` ids), so `POST /ai/feedback` can grade the prediction it names. Logging never
fails a request: a failure is logged and counted (`ai_prediction_log_errors_total`).

What each endpoint records (`inputs_sha256` is a digest, never the input itself):

    endpoint                          family        inputs_sha256 of          outputs
    /ai/judge/analyze                 judge         the audio bytes           {"overall_score": s}
    /ai/judge/battle                  judge         both sets' audio bytes    {"winner": dj_id or None}
    /ai/sentiment/analyze[/batch]     sentiment     the message texts         {"labels": [...], "versions": [...]}
    /ai/recommendations/battles       recommender   the user id               {"battle_ids": [...]}
    /ai/live/beats                    beat_tracker  the chunk's audio bytes   {"beat_probability": p, "bpm": b}

A sentiment batch may route its messages to different versions: `versions[i]` is message i's, and
the record's `version` is the first message's. Cold-start recommendations call no model and are
not recorded.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bentos.metrics import prediction_log_errors
from djserve.prediction_log import (
    FEEDBACK_FAMILY,
    FeedbackRecord,
    LabelMismatch,
    PredictionRecord,
    RotatingLog,
    digest,
    now,
    score_label,
)

log = logging.getLogger("djserve.predictions")

__all__ = ["PredictionStore", "UnknownRequest", "LabelMismatch", "KindMismatch", "digest"]


class UnknownRequest(LookupError):
    """No recent prediction has this request id (never seen, or evicted from the index)."""


class KindMismatch(LabelMismatch):
    """The kind of label grades another model family than the named prediction's."""


class PredictionStore:
    def __init__(self, directory: Path, max_bytes: int = 16 * 2**20, keep_files: int = 8, index_size: int = 100_000) -> None:
        if index_size < 1:
            raise ValueError("index_size must be >= 1")
        self.directory = Path(directory)
        self.predictions = RotatingLog(self.directory, "predictions", max_bytes, keep_files)
        self.feedback_log = RotatingLog(self.directory, "feedback", max_bytes, keep_files)
        self.index_size = index_size
        self._index: OrderedDict[str, str] = OrderedDict()
        """request id -> the record's JSON line (compact: an index of 100,000 stays in tens of MB)"""
        self._lock = threading.Lock()
        self.errors = 0
        """records that could not be written or indexed"""

    @classmethod
    def from_settings(cls, settings) -> "PredictionStore":
        return cls(settings.predictions_dir, int(settings.predictions_max_mb * 2**20), settings.predictions_keep_files,
                   settings.feedback_index_size)

    def record(
        self, request_id: str | None, family: str, version: int, endpoint: str, inputs_sha256: str, outputs: dict[str, Any]
    ) -> PredictionRecord | None:
        """Log one answered prediction; never raises (None when it could not be recorded)."""
        try:
            if not request_id:
                raise ValueError("no request id (is the request-id middleware installed?)")
            rec = PredictionRecord(request_id=request_id, time=now(), family=family, version=int(version),
                                   endpoint=endpoint, inputs_sha256=inputs_sha256, outputs=outputs)
            line = rec.model_dump_json()
            with self._lock:
                self._index[request_id] = line
                self._index.move_to_end(request_id)
                while len(self._index) > self.index_size:
                    self._index.popitem(last=False)
            self.predictions.append(rec)
            return rec
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self._failed("predictions", f"recording {family} prediction {request_id}")
            return None

    def lookup(self, request_id: str) -> PredictionRecord | None:
        with self._lock:
            line = self._index.get(request_id)
        return None if line is None else PredictionRecord.model_validate_json(line)

    def grade(self, request_id: str, kind: str, value: float | str, index: int = 0) -> FeedbackRecord:
        """Join a label to its prediction and score it. Raises UnknownRequest or LabelMismatch."""
        pred = self.lookup(request_id)
        if pred is None:
            raise UnknownRequest(
                f"no recent prediction has request id {request_id!r} (unknown, or older than the last "
                f"{self.index_size} predictions)"
            )
        family = FEEDBACK_FAMILY[kind]
        if family != pred.family:
            raise KindMismatch(f"a {kind} label grades {family} predictions; request {request_id} was a {pred.family} prediction")
        metric, score = score_label(kind, pred.outputs, value, index)
        version = pred.version
        versions = pred.outputs.get("versions")
        if kind == "sentiment_label" and isinstance(versions, list) and index < len(versions):
            version = int(versions[index])
        return FeedbackRecord(request_id=request_id, time=now(), family=family, version=version, kind=kind,
                              value=value, index=index, metric=metric, score=score)

    def append_feedback(self, record: FeedbackRecord) -> bool:
        try:
            self.feedback_log.append(record)
            return True
        except Exception:  # noqa: BLE001
            self._failed("feedback", f"logging feedback for {record.request_id}")
            return False

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        self.predictions.close()
        self.feedback_log.close()

    def _failed(self, which: str, what: str) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:  # a full disk must not flood the log
            log.exception("%s failed (the request is unaffected; %d failures so far)", what, self.errors)
        try:
            prediction_log_errors().labels(log=which).inc()
        except Exception:  # noqa: BLE001
            pass
