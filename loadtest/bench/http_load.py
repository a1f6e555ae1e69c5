"""HTTP endpoints under load: the gateway and the naive baseline answer the same requests.

aiohttp rather than httpx: the load generator shares the two cores with what it measures, and
aiohttp costs less CPU per request.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass
from typing import Callable

import aiohttp

from djserve import api
from loadtest.bench.measure import LoadPoint, closed_loop, paced_streams
from loadtest.samples import CHAT_LINES, click_wav, known_users


class EndpointPoint(LoadPoint):
    target: str
    """gateway | naive"""
    endpoint: str


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    body: Callable[[int], dict]
    expect: str
    """A key every good answer has."""
    rows: int = 1


def chat_body(i: int) -> dict:
    return {"text": CHAT_LINES[i % len(CHAT_LINES)], "language": "en"}


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
    bodies = [e.body(i) for i in range(64)]  # built before the clock starts
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
