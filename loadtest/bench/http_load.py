"""HTTP endpoints under load: the gateway and the naive baseline answer the same requests.

aiohttp rather than httpx: the load generator shares the two cores with what it measures, and
aiohttp costs less CPU per request.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
from dataclasses import dataclass
from typing import Callable

import aiohttp
import numpy as np

from djserve import api
from loadtest.bench.measure import LoadPoint, closed_loop, paced_streams
from loadtest.samples import CHAT_LINES, click_wav, known_users


class EndpointPoint(LoadPoint):
    target: str
    """gateway (Triton's response cache and the gateway's row cache off) | gateway_cache (both on) |
    gateway_unbatched (the gateway's micro-batching off, caches off) | naive"""
    endpoint: str


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    body: Callable[[int], dict]
    expect: str
    """A key every good answer has."""
    rows: int = 1
    pool: int = 64
    """Distinct bodies the load cycles through (built before the clock starts)."""


def chat_body(i: int) -> dict:
    return {"text": CHAT_LINES[i % len(CHAT_LINES)], "language": "en"}


ZIPF_EXPONENT = 1.0
ZIPF_MESSAGES = 10_000
ZIPF_DRAWS = 200_000
"""A live chat stream: 10,000 distinct messages whose frequencies follow Zipf's law with exponent 1,
as word frequencies in language do: the most common message ("GG", an emote) is ~10% of the stream,
the top 20 ~37%, and half the stream is spread over thousands of rare lines. More draws than any load
point sends, so a repeat is a real repeat of the stream, never the load cycling round."""


@functools.cache
def _zipf_ranks() -> np.ndarray:
    weights = 1.0 / np.arange(1, ZIPF_MESSAGES + 1) ** ZIPF_EXPONENT
    return np.random.default_rng(0).choice(ZIPF_MESSAGES, size=ZIPF_DRAWS, p=weights / weights.sum())


def zipf_chat_body(i: int) -> dict:
    rank = int(_zipf_ranks()[i % ZIPF_DRAWS])
    line = CHAT_LINES[rank % len(CHAT_LINES)]
    return {"text": line if rank < len(CHAT_LINES) else f"{line} #{rank // len(CHAT_LINES)}", "language": "en"}


def chat_batch_body(i: int) -> dict:
    return {"messages": [chat_body(i + k) for k in range(8)]}


def recommend_body(i: int) -> dict:
    users = known_users()
    return {"userId": users[i % len(users)], "limit": 10}


def live_body(i: int) -> dict:
    return {"streamId": f"stream-{i}", "audioData": {"base64": base64.b64encode(click_wav(1.0)).decode(), "format": "wav"}}


ENDPOINTS = {
    e.name: e
    for e in (
        Endpoint("sentiment", api.SENTIMENT_ROUTE, chat_body, "sentiment"),
        Endpoint("sentiment_zipf", api.SENTIMENT_ROUTE, zipf_chat_body, "sentiment", pool=ZIPF_DRAWS),
        Endpoint("sentiment_batch", api.SENTIMENT_BATCH_ROUTE, chat_batch_body, "results", rows=8),
        Endpoint("recommendations", api.RECOMMENDATIONS_ROUTE, recommend_body, "recommendations"),
        Endpoint("live_beats", api.LIVE_BEATS_ROUTE, live_body, "beatProbability"),
    )
}


class BadAnswer(Exception):
    pass


async def _post(session: aiohttp.ClientSession, url: str, body: dict | aiohttp.FormData, expect: str) -> None:
    kwargs = {"data": body} if isinstance(body, aiohttp.FormData) else {"json": body}
    async with session.post(url, **kwargs) as r:
        text = await r.text()
        if r.status != 200:
            raise BadAnswer(f"HTTP {r.status}: {text[:200]}")
        if expect not in json.loads(text):
            raise BadAnswer(f"answer without {expect!r}: {text[:200]}")


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency + 4), timeout=aiohttp.ClientTimeout(total=300)
    )


async def measure_endpoint(base_url: str, target: str, e: Endpoint, concurrencies: list[int], seconds: float, warmup_s: float) -> list[EndpointPoint]:
    points = []
    bodies = [e.body(i) for i in range(e.pool)]  # built before the clock starts
    for c in concurrencies:
        async with _session(c) as session:
            cycle = itertools.cycle(bodies)
            p = await closed_loop(lambda _: _post(session, base_url + e.path, next(cycle), e.expect), c, seconds, warmup_s, items=e.rows)
        points.append(EndpointPoint(**p.model_dump(), target=target, endpoint=e.name))
    return points


def judge_form(clip: bytes, i: int = 0) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("battleId", f"bench-{i}")
    form.add_field("genre", "house")
    form.add_field("tracks", "[]")
    form.add_field("audio", clip, filename="set.wav", content_type="audio/wav")
    return form


async def measure_judge(base_url: str, target: str, clip: bytes, concurrency: int, seconds: float, warmup_s: float) -> EndpointPoint:
    async with _session(concurrency) as session:
        p = await closed_loop(
            lambda i: _post(session, base_url + api.JUDGE_ANALYZE_ROUTE, judge_form(clip, i), "overallScore"),
            concurrency, seconds, warmup_s, min_requests=3,
        )
    return EndpointPoint(**p.model_dump(), target=target, endpoint="judge")


async def measure_live(base_url: str, streams: int, seconds: float) -> EndpointPoint:
    """`streams` concurrent live streams, each sending a 1-second chunk every second."""
    e = ENDPOINTS["live_beats"]
    bodies = [e.body(i) for i in range(streams)]
    async with _session(streams) as session:
        p = await paced_streams(lambda k: _post(session, base_url + e.path, bodies[k], e.expect), streams, seconds)
    return EndpointPoint(**p.model_dump(), target="gateway", endpoint=f"live_beats x{streams}")
