"""Recommend battles to a user: python examples/recommend.py test-user-123 [limit]"""

import os
import sys

from clients import GatewayClient

user, limit = sys.argv[1], int((sys.argv[2:3] or ["5"])[0])
with GatewayClient(os.environ.get("DJ_GATEWAY_URL", "http://127.0.0.1:3000")) as gateway:
    recs = gateway.recommend_battles(user, limit=limit)
print(f"{user}: {'cold start (most popular)' if recs.cold_start else f'recommender v{recs.model_version}'}")
for battle in recs.recommendations:
    print(f"  {battle.score:.3f}  {battle.battle_id}  {battle.title} [{battle.genre}]")
