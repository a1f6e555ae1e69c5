"""Score a DJ set from an audio file: python examples/score_set.py set.wav [genre] [battle-id]"""

import os
import sys

from clients import GatewayClient

path, genre, battle = sys.argv[1], (sys.argv[2:3] or ["house"])[0], (sys.argv[3:4] or ["battle-1"])[0]
with GatewayClient(os.environ.get("DJ_GATEWAY_URL", "http://127.0.0.1:3000")) as gateway:
    sheet = gateway.analyze_set(path, battle_id=battle, genre=genre)
print(f"overall {sheet.overall_score:.3f} at {sheet.tempo.bpm:.1f} BPM ({len(sheet.tempo.beats)} beats)")
for name, score in {**sheet.components, **sheet.technical, **sheet.creative}.items():
    print(f"  {name:20s} {score:.3f}")
print(f"models {sheet.model_versions}, {sheet.processing_time_ms:.0f} ms")
