"""AIJudgeModel without the per-genre buffer: genre weighting lives in the ensemble.

Two changes to the seed's network, both found necessary when training it (see the judge spec):
- the mixing features are standardised by fixed buffers (`mixing_mean`, `mixing_std`, set from
  the training data; identity in an untrained model), because several of the 32 descriptors vary
  over a few hundredths of their [0,1] range and an LSTM fed them raw does not learn;
- the mixing LSTM's outputs are averaged over time instead of keeping the last step: a window's
  scores are means over its whole length (the label model), and the last step of a 128-step
  sequence remembers mostly its last seconds.
"""

from __future__ import annotations

import torch
from torch import nn

from djserve.specs.features import MIXING_FEATURES


class AIJudgeModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = nn.Sequential(
            nn.Conv2d(1, 32, (3, 3), padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, (3, 3), padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, (3, 3), padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(128, 512),
        )
        self.register_buffer("mixing_mean", torch.zeros(len(MIXING_FEATURES)))
        self.register_buffer("mixing_std", torch.ones(len(MIXING_FEATURES)))
        self.mixing_encoder = nn.LSTM(input_size=32, hidden_size=256, num_layers=2, batch_first=True, dropout=0.3)
        self.fusion_network = nn.Sequential(
            nn.Linear(512 + 256, 512),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(512, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 4),  # technical_skill, track_selection, energy_flow, creativity
            nn.Sigmoid(),
        )

    #: The convolutions up to (not including) the time/mel pooling: what training caches.
    CONV_LAYERS = 11
    CONV_STRIDE = 4
    """Frames per step of `conv_maps` (two 2x2 max-pools)."""

    def conv_maps(self, audio_features: torch.Tensor) -> torch.Tensor:
        """[B,128,T/4]: the conv stack's channels averaged over the mel axis (before time pooling)."""
        return self.audio_encoder[: self.CONV_LAYERS](audio_features).mean(dim=2)

    def head(self, pooled: torch.Tensor, mixing_features: torch.Tensor) -> torch.Tensor:
        """The scores from the time-averaged conv channels [B,128] and the mixing features."""
        audio_emb = self.audio_encoder[self.CONV_LAYERS + 2 :](pooled)
        mixing_out, _ = self.mixing_encoder((mixing_features - self.mixing_mean) / self.mixing_std)
        return self.fusion_network(torch.cat([audio_emb, mixing_out.mean(dim=1)], dim=1))

    def forward(self, audio_features: torch.Tensor, mixing_features: torch.Tensor) -> torch.Tensor:
        pooled = self.audio_encoder[: self.CONV_LAYERS + 2](audio_features)  # conv, avg pool, flatten
        return self.head(pooled, mixing_features)


def build_model(seed: int = 0) -> AIJudgeModel:
    torch.manual_seed(seed)
    return AIJudgeModel().eval()
