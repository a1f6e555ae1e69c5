"""`recommender`: HybridRecommendationModel (PyTorch).

Decisions:
- Embedding tables need a fixed size: user and item ids are hashed into NUM_USER_BUCKETS and
  NUM_ITEM_BUCKETS by the gateway (stable hash of the platform's string ids), so new users and
  battles never fall outside the table.
- Every input is [B,1] (ids as one-element rows) so Triton batches them like the audio features;
  the exported graph flattens them for the embeddings. Output `score` [B,1] in [0,1] (sigmoid).
- One request scores many candidate battles for one user: the request's batch is the candidate
  list, up to max_batch_size.
"""

from djserve.specs.base import OVERHEAD_BOUND, Batching, ModelSpec, TensorSpec
from djserve.specs.genres import GENRES

NUM_USER_BUCKETS = 50_000
NUM_ITEM_BUCKETS = 10_000
AUDIO_EMBEDDING_DIM = 512

SPEC = ModelSpec(
    name="recommender",
    framework="pytorch",
    inputs=(
        TensorSpec("user_ids", "INT64", (1,), "hashed user id", value_range=(0, NUM_USER_BUCKETS)),
        TensorSpec("item_ids", "INT64", (1,), "hashed battle id", value_range=(0, NUM_ITEM_BUCKETS)),
        TensorSpec(
            "audio_features", "FP32", (AUDIO_EMBEDDING_DIM,), "battle audio descriptor", value_range=(-1, 1)
        ),
        TensorSpec("genre_ids", "INT64", (1,), "index into GENRES", value_range=(0, len(GENRES))),
    ),
    outputs=(TensorSpec("score", "FP32", (1,), "predicted affinity in [0,1]"),),
    batching=Batching(max_batch_size=512, max_queue_delay_us=0, gateway_joins=False),
    description="Hybrid recommendation: user x battle affinity",
    response_cache=True,  # one user's page views within minutes ask the same
    decisions=__doc__ or "",
    **OVERHEAD_BOUND,
    parity_axes=({},),
)


def _bucket(value: str, buckets: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big") % buckets


def user_bucket(user_id: str) -> int:
    """The `user_ids` value of a platform user id (stable across processes and releases)."""
    return _bucket(f"user:{user_id}", NUM_USER_BUCKETS)


def item_bucket(battle_id: str) -> int:
    """The `item_ids` value of a platform battle id."""
    return _bucket(f"battle:{battle_id}", NUM_ITEM_BUCKETS)
