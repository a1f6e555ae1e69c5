"""Locust scenario: the platform's traffic mix against the gateway's HTTP API.

    locust -f loadtest/gateway_locustfile.py --host http://127.0.0.1:3000     # or: djserve loadtest gateway

Chat sentiment is most of the live traffic, recommendations come with page views, judging a set is
rare (one upload per battle). Task weights come from `loadtest.locust_run.SCENARIOS["gateway"]`,
overridable with DJSERVE_LOADTEST_WEIGHTS="sentiment=1,judge=1,...". A response counts as a failure
unless it is a 200 whose JSON has the endpoint's result field; a judge upload refused 429 (the
gateway's admission control, beyond its capacity) is counted apart, as "<path> (refused 429)".
"""

from __future__ import annotations

import base64
import json
import random
from typing import Callable

from locust import FastHttpUser, between
from urllib3 import encode_multipart_formdata  # FastHttpUser has no `files=`: encode the upload ourselves

from loadtest.locust_run import locust_tasks, scenario
from loadtest.samples import CHAT_LINES, click_wav, known_users

ENDPOINT = scenario("gateway").endpoints
LANGUAGES = ("en", "es", "fr", "de", "it")
BATCH_MESSAGES = 8
JUDGE_CLIP_S = 10.0  # a short clip: two analysis windows, not a whole set
GENRES = ("house", "techno", "deep_house", "drum_and_bass")
TRACKS = json.dumps([{"title": "Strings of Life", "artist": "Rhythim Is Rhythim", "genre": "house"}])


ADMISSION_CONTROLLED = ("judge",)
"""Tasks whose endpoint refuses with 429 + Retry-After beyond its capacity (the gateway's admission control)."""


def refused_name(name: str) -> str:
    """The Locust entry that counts an endpoint's 429 refusals, apart from its answers and failures."""
    return f"{name} (refused 429)"


def has(key: str) -> Callable[[object], bool]:
    return lambda body: isinstance(body, dict) and key in body


def batch_ok(body: object) -> bool:
    results = body.get("results") if isinstance(body, dict) else None
    return isinstance(results, list) and len(results) == BATCH_MESSAGES and all(has("sentiment")(r) for r in results)


class GatewayUser(FastHttpUser):
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.user_ids = known_users()
        self.clip = click_wav(JUDGE_CLIP_S)
        self.chunk = base64.b64encode(click_wav(1.0)).decode("ascii")
        self.stream_id = f"stream-{self.rng.randrange(10**6)}"

    def _post(self, task: str, valid: Callable[[object], bool], expected: str, **kwargs) -> None:
        """POST to the task's endpoint, named by it; a failure unless a 200 whose JSON is `valid`."""
        name = ENDPOINT[task]
        with self.client.post(name, name=name, catch_response=True, **kwargs) as response:
            if response.status_code == 429 and task in ADMISSION_CONTROLLED:
                # the gateway's admission control refused an upload beyond capacity, as designed: counted
                # under its own name, apart from failures (the uploader would retry after Retry-After)
                response.request_meta["name"] = refused_name(name)
                response.success()
                return
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                body = response.json()
            except ValueError:
                response.failure("the body is not JSON")
                return
            if not valid(body):
                response.failure(f"no {expected} in the response")

    def sentiment(self) -> None:
        text, language = self.rng.choice(CHAT_LINES), self.rng.choice(LANGUAGES)
        self._post("sentiment", has("sentiment"), "'sentiment'", json={"text": text, "language": language})

    def sentiment_batch(self) -> None:
        messages = [{"text": t} for t in self.rng.choices(CHAT_LINES, k=BATCH_MESSAGES)]
        self._post("sentiment_batch", batch_ok, f"{BATCH_MESSAGES} results with 'sentiment'", json={"messages": messages})

    def recommendations(self) -> None:
        body = {"userId": self.rng.choice(self.user_ids), "limit": 10}
        self._post("recommendations", has("recommendations"), "'recommendations'", json=body)

    def live_beats(self) -> None:
        body = {"streamId": self.stream_id, "audioData": {"base64": self.chunk, "format": "wav"}}
        self._post("live_beats", has("beatProbability"), "'beatProbability'", json=body)

    def judge(self) -> None:
        fields = {
            "battleId": f"load-{self.rng.randrange(10**6)}",
            "genre": self.rng.choice(GENRES),
            "tracks": self.rng.choice(("[]", TRACKS)),
            "audio": ("set.wav", self.clip, "audio/wav"),
        }
        body, content_type = encode_multipart_formdata(fields)
        self._post("judge", has("overallScore"), "'overallScore'", data=body, headers={"Content-Type": content_type})

    tasks = locust_tasks(
        "gateway",
        {
            "sentiment": sentiment,
            "sentiment_batch": sentiment_batch,
            "recommendations": recommendations,
            "live_beats": live_beats,
            "judge": judge,
        },
    )
