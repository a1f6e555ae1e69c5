"""The gateway's prediction log and feedback join (formats: djserve.prediction_log).

Every answered model request is recorded under its request id (bentos.request_id): a line in the
rotating prediction log and an entry in a bounded in-memory index, so `POST /ai/feedback` can grade
the prediction it names. Logging never fails a request: a failure is logged and counted
(`ai_prediction_log_errors_total`).

The index keeps only what grading reads (family, version, outputs), packed into one bytes object per
id, and is bounded twice: the most recent `feedback_index_size` ids (100,000) and at most
`feedback_index_max_mb` (32 MiB) of estimated memory, whichever is reached first; the oldest ids go
first. An entry costs about 230 bytes (a chat message: id 81, packed record 81, the ordered dict's
slot and node ~70; measured with tracemalloc), so 100,000 chat predictions take ~23 MB (the full
JSON lines kept before took ~570 bytes an entry); a 64-message batch ~1 KB. The estimate the byte
bound counts (`PredictionStore._cost`) is a little above what is measured.

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

import json
import logging
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
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

__all__ = ["PredictionStore", "IndexedPrediction", "UnknownRequest", "LabelMismatch", "KindMismatch", "digest"]


class UnknownRequest(LookupError):
    """No recent prediction has this request id (never seen, or evicted from the index)."""


class KindMismatch(LabelMismatch):
    """The kind of label grades another model family than the named prediction's."""


#: Memory of one index entry beyond its key and packed value: the OrderedDict's hash-table slot
#: (with its spare room) and its linked-list node (~70 bytes measured with tracemalloc, CPython 3.11).
ENTRY_OVERHEAD_BYTES = 100
_SEP = b"\x1f"


@dataclass(frozen=True)
class IndexedPrediction:
    """What the feedback index keeps of a prediction: what grading reads."""

    request_id: str
    family: str
    version: int
    outputs: dict[str, Any]


def _pack(family: str, version: int, outputs: dict[str, Any]) -> bytes:
    body = json.dumps(outputs, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"%s\x1f%d\x1f%s" % (family.encode("ascii"), int(version), body)


def _unpack(request_id: str, packed: bytes) -> IndexedPrediction:
    family, version, body = packed.split(_SEP, 2)
    return IndexedPrediction(request_id, family.decode("ascii"), int(version), json.loads(body))


class PredictionStore:
    def __init__(self, directory: Path, max_bytes: int = 16 * 2**20, keep_files: int = 8, index_size: int = 100_000,
                 index_max_bytes: int = 32 * 2**20) -> None:
        if index_size < 1 or index_max_bytes < 1:
            raise ValueError("index_size and index_max_bytes must be >= 1")
        self.directory = Path(directory)
        self.predictions = RotatingLog(self.directory, "predictions", max_bytes, keep_files)
        self.feedback_log = RotatingLog(self.directory, "feedback", max_bytes, keep_files)
        self.index_size = index_size
        self.index_max_bytes = index_max_bytes
        self._index: OrderedDict[str, bytes] = OrderedDict()
        """request id -> family, version and outputs packed (`_pack`); the oldest first"""
        self._index_bytes = 0
        """estimated memory of the index (`_cost` of every entry)"""
        self._lock = threading.Lock()
        self.errors = 0
        """records that could not be written or indexed"""

    @classmethod
    def from_settings(cls, settings) -> "PredictionStore":
        return cls(settings.predictions_dir, int(settings.predictions_max_mb * 2**20), settings.predictions_keep_files,
                   settings.feedback_index_size, int(settings.feedback_index_max_mb * 2**20))

    @staticmethod
    def _cost(request_id: str, packed: bytes) -> int:
        return sys.getsizeof(request_id) + sys.getsizeof(packed) + ENTRY_OVERHEAD_BYTES

    @property
    def index_bytes(self) -> int:
        """Estimated memory the index holds now (at most `index_max_bytes`)."""
        return self._index_bytes

    def record(
        self, request_id: str | None, family: str, version: int, endpoint: str, inputs_sha256: str, outputs: dict[str, Any]
    ) -> PredictionRecord | None:
        """Log one answered prediction; never raises (None when it could not be recorded)."""
        try:
            if not request_id:
                raise ValueError("no request id (is the request-id middleware installed?)")
            rec = PredictionRecord(request_id=request_id, time=now(), family=family, version=int(version),
                                   endpoint=endpoint, inputs_sha256=inputs_sha256, outputs=outputs)
            packed = _pack(family, rec.version, outputs)
            cost = self._cost(request_id, packed)
            with self._lock:
                old = self._index.pop(request_id, None)
                if old is not None:
                    self._index_bytes -= self._cost(request_id, old)
                self._index[request_id] = packed
                self._index_bytes += cost
                while len(self._index) > self.index_size or (self._index_bytes > self.index_max_bytes and len(self._index) > 1):
                    gone, value = self._index.popitem(last=False)
                    self._index_bytes -= self._cost(gone, value)
            self.predictions.append(rec)
            return rec
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self._failed("predictions", f"recording {family} prediction {request_id}")
            return None

    def lookup(self, request_id: str) -> IndexedPrediction | None:
        with self._lock:
            packed = self._index.get(request_id)
        return None if packed is None else _unpack(request_id, packed)

    def grade(self, request_id: str, kind: str, value: float | str, index: int = 0) -> FeedbackRecord:
        """Join a label to its prediction and score it. Raises UnknownRequest or LabelMismatch."""
        pred = self.lookup(request_id)
        if pred is None:
            raise UnknownRequest(
                f"no recent prediction has request id {request_id!r} (unknown, or older than the last "
                f"{len(self)} predictions)"
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
