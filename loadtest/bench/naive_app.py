"""The naive baseline: how the design documents serve models.

One FastAPI process; each endpoint tokenises or gathers its inputs and calls the PyTorch model
eagerly inside the request (`async def` with blocking work, so one request at a time), with no
batching and no model server. Same request and answer shapes as the gateway, same architectures
and seeded reference weights as the exported models, so the benchmark compares serving, not models.

    python -m uvicorn loadtest.bench.naive_app:app --port 3100
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI

from bentos.settings import DATA
from djserve import api
from djserve.catalogue import Catalogue
from djserve.specs.recommender import item_bucket, user_bucket
from djserve.specs.sentiment import LABELS, MAX_TOKENS
from exporters.hf_onnx import load_hf, reference_checkpoint
from exporters.sources import load_source
from djserve.specs import get

SEED = int(os.environ.get("DJSERVE_NAIVE_SEED", "0"))
SENTIMENT_CHECKPOINT = os.environ.get("DJSERVE_NAIVE_SENTIMENT_CHECKPOINT")
"""An HF directory to serve instead of the seeded reference (the production-size profile's)."""

app = FastAPI(title="naive baseline")
_checkpoint, _tmp = (Path(SENTIMENT_CHECKPOINT), None) if SENTIMENT_CHECKPOINT else reference_checkpoint(SEED)
sentiment = load_hf(get("sentiment"), _checkpoint)
recommender = load_source("recommender", None, SEED)
catalogue = Catalogue.load(DATA / "battles.json", DATA / "users.json")


def _sentiment(texts: list[str]) -> list[dict]:
    out = []
    for text in texts:  # one message at a time, as the design documents' predict() does
        inputs = sentiment.tokenizer(text, return_tensors="pt", truncation=True, padding=True, max_length=MAX_TOKENS)
        with torch.no_grad():
            probs = torch.nn.functional.softmax(sentiment.model.model(**inputs).logits, dim=-1)[0].tolist()
        best = int(np.argmax(probs))
        out.append({"sentiment": LABELS[best], "confidence": probs[best], "scores": dict(zip(LABELS, probs))})
    return out


@app.post(api.SENTIMENT_ROUTE)
async def analyze(body: dict) -> dict:
    return _sentiment([body["text"]])[0]


@app.post(api.SENTIMENT_BATCH_ROUTE)
async def analyze_batch(body: dict) -> dict:
    return {"results": _sentiment([m["text"] for m in body["messages"]])}


@app.post(api.RECOMMENDATIONS_ROUTE)
async def recommend(body: dict) -> dict:
    n = len(catalogue.battles)
    scores = recommender.run(
        {
            "user_ids": np.full((n, 1), user_bucket(body["userId"]), dtype=np.int64),
            "item_ids": np.array([[item_bucket(b.battle_id)] for b in catalogue.battles], dtype=np.int64),
            "audio_features": catalogue.audio_features,
            "genre_ids": catalogue.genre_ids,
        }
    )["score"].reshape(-1)
    order = np.argsort(-scores)[: int(body.get("limit", 10))]
    return {"recommendations": [{"battleId": catalogue.battles[i].battle_id, "score": float(scores[i])} for i in order]}


@app.get(api.HEALTH_ROUTE)
async def health() -> dict:
    return {"status": "healthy"}
