"""Chat sentiment: tokenise in the gateway, batch by padded length, one Triton call per group.

The tokenizer is the one shipped inside the routed `sentiment` version, so a canary with another
vocabulary still gets its own. Messages are padded to the same length buckets as the Triton text
pipeline (sentiment_tokenize), so equal-bucket messages share one request. A request mirrored to a
shadow version (bentos.shadow) is re-tokenised with the shadow's tokenizer when it differs.
"""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from bentos.backend import ModelBackend
from bentos.errors import GatewayError, InvalidInput
from bentos.metrics import stage, track
from djserve.traffic import Route
from djserve.schemas import SentimentBatchResult, SentimentRequest, SentimentResult
from djserve.specs import sentiment

BATCH = sentiment.SPEC.batching.max_batch_size


@functools.lru_cache(maxsize=8)
def load_tokenizer(repository: Path, version: int) -> tuple[Tokenizer, int]:
    path = repository / sentiment.SPEC.name / str(version) / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        raise GatewayError("tokenizer_unavailable", f"no tokenizer for sentiment version {version} at {path}", status=503)
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(sentiment.MAX_TOKENS)
    pad = tok.token_to_id("<pad>")
    return tok, 1 if pad is None else pad


def check_text(text: str, max_chars: int, field: str = "text") -> str:
    if not text.strip():
        raise InvalidInput("empty_text", "text is empty", field=field)
    if len(text) > max_chars:
        raise InvalidInput("text_too_long", f"text has {len(text)} characters; the limit is {max_chars}", field=field)
    return text


def routing_key(text: str) -> str:
    """Chat messages carry no user id: route by the message itself (stable per message)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


async def analyze(
    backend: ModelBackend, messages: list[SentimentRequest], max_chars: int, pinned: int | None = None
) -> SentimentBatchResult:
    start = time.perf_counter()
    for i, m in enumerate(messages):
        check_text(m.text, max_chars, field="text" if len(messages) == 1 else f"messages[{i}].text")
    routes = [backend.route("sentiment", routing_key(m.text), pinned) for m in messages]
    results: list[SentimentResult | None] = [None] * len(messages)
    for version in sorted({r.version for r in routes}):
        idx = [i for i, r in enumerate(routes) if r.version == version]
        await _run_version(backend, routes[idx[0]], [messages[i] for i in idx], idx, results)
    return SentimentBatchResult(results=results, processing_time_ms=round((time.perf_counter() - start) * 1000, 1))


async def _run_version(backend, route: Route, messages, positions, results) -> None:
    try:
        tok, pad = load_tokenizer(backend.settings.repository, route.version)
    except GatewayError:
        if route.pinned:  # the caller asked for a version that does not exist
            raise GatewayError(
                "unknown_model_version", f"sentiment version {route.version} is not loaded", field="X-Model-Version", status=404
            ) from None
        raise
    repository = backend.settings.repository
    with track("sentiment", route.version):
        with stage("preprocess"):
            encodings = [e.ids for e in tok.encode_batch([m.text for m in messages])]
            groups: dict[int, list[int]] = {}
            for i, ids in enumerate(encodings):
                groups.setdefault(_bucket(len(ids)), []).append(i)
            own_tokens = route.shadow is not None and not same_tokenizer(repository, route.version, route.shadow)
        for width, members in groups.items():
            for chunk in (members[k : k + BATCH] for k in range(0, len(members), BATCH)):
                with stage("preprocess"):
                    inputs = _pack([encodings[i] for i in chunk], width, pad)
                shadow_inputs = None
                if own_tokens:  # made by the mirror's worker, off the caller's path
                    shadow_inputs = functools.partial(encode_for, repository, route.shadow, [messages[i].text for i in chunk])
                out = await backend.infer("sentiment", inputs, route, shadow_inputs=shadow_inputs)
                with stage("postprocess"):
                    for row, i in enumerate(chunk):
                        results[positions[i]] = _result(out["logits"][row], messages[i].language, route.version)


def _pack(encodings: list[list[int]], width: int, pad: int) -> dict[str, np.ndarray]:
    ids = np.full((len(encodings), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc)] = enc
        mask[row, : len(enc)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def encode_for(repository: Path, version: int, texts: list[str]) -> dict[str, np.ndarray]:
    """The model inputs of `texts` (one row each, in order) with that version's own tokenizer."""
    tok, pad = load_tokenizer(repository, version)
    encodings = [e.ids for e in tok.encode_batch(texts)]
    return _pack(encodings, _bucket(max(len(e) for e in encodings)), pad)


_TOKENIZER_DIGESTS: dict[tuple[Path, int], str] = {}


def same_tokenizer(repository: Path, a: int, b: int) -> bool:
    """Versions a and b ship byte-identical tokenizers (False when either is missing)."""

    def digest(version: int) -> str | None:
        key = (repository, version)
        if key not in _TOKENIZER_DIGESTS:  # versions never change once exported; misses are not cached
            path = repository / sentiment.SPEC.name / str(version) / "tokenizer" / "tokenizer.json"
            try:
                _TOKENIZER_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return None
        return _TOKENIZER_DIGESTS[key]

    da = digest(a)
    return da is not None and da == digest(b)


def _bucket(length: int) -> int:
    return next((b for b in sentiment.LENGTH_BUCKETS if b >= length), length)


def _result(logits: np.ndarray, language: str | None, version: int) -> SentimentResult:
    shifted = np.exp(logits - logits.max())
    probs = shifted / shifted.sum()
    best = int(np.argmax(probs))
    return SentimentResult(
        sentiment=sentiment.LABELS[best],
        confidence=round(float(probs[best]), 6),
        scores={label: round(float(p), 6) for label, p in zip(sentiment.LABELS, probs)},
        language=language,
        model_version=version,
    )
