"""HybridRecommendationModel with hashed id tables and [B,1] id inputs."""

from __future__ import annotations

import torch
from torch import nn

from djserve.specs.genres import GENRES
from djserve.specs.recommender import AUDIO_EMBEDDING_DIM, NUM_ITEM_BUCKETS, NUM_USER_BUCKETS


class HybridRecommendationModel(nn.Module):
    def __init__(
        self, num_users: int = NUM_USER_BUCKETS, num_items: int = NUM_ITEM_BUCKETS, embedding_dim: int = 128
    ) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.audio_encoder = nn.Sequential(
            nn.Linear(AUDIO_EMBEDDING_DIM, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, embedding_dim),
        )
        self.genre_embedding = nn.Embedding(len(GENRES), 32)
        self.fusion = nn.Sequential(
            nn.Linear(embedding_dim * 3 + 32, 256),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 1),
            nn.Sigmoid(),
        )

    def forward(
        self, user_ids: torch.Tensor, item_ids: torch.Tensor, audio_features: torch.Tensor, genre_ids: torch.Tensor
    ) -> torch.Tensor:
        # Triton batches [B,1] id rows; the embeddings want [B].
        combined = torch.cat(
            [
                self.user_embedding(user_ids.reshape(-1)),
                self.item_embedding(item_ids.reshape(-1)),
                self.audio_encoder(audio_features),
                self.genre_embedding(genre_ids.reshape(-1)),
            ],
            dim=1,
        )
        return self.fusion(combined)


def build_model(seed: int = 0) -> HybridRecommendationModel:
    torch.manual_seed(seed)
    return HybridRecommendationModel().eval()
