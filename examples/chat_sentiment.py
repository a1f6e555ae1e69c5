"""Analyse chat lines: python examples/chat_sentiment.py "what a drop!" "¡qué aburrido!" """

import os
import sys

from clients import GatewayClient

with GatewayClient(os.environ.get("DJ_GATEWAY_URL", "http://127.0.0.1:3000")) as gateway:
    batch = gateway.analyze_sentiment_batch(sys.argv[1:] or ["This is an amazing DJ set!"])
for text, result in zip(sys.argv[1:] or ["This is an amazing DJ set!"], batch.results):
    print(f"{result.sentiment:8s} {result.confidence:.2f}  {text}")
