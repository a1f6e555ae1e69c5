"""AIJudgeModel (S0:189-347) without the per-genre buffer: genre weighting lives in the ensemble."""

from __future__ import annotations

import torch
from torch import nn




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

    def forward(self, audio_features: torch.Tensor, mixing_features: torch.Tensor) -> torch.Tensor:
        audio_emb = self.audio_encoder(audio_features)
        mixing_out, _ = self.mixing_encoder(mixing_features)
        combined = torch.cat([audio_emb, mixing_out[:, -1, :]], dim=1)
        return self.fusion_network(combined)


def build_model(seed: int = 0) -> AIJudgeModel:
    torch.manual_seed(seed)
    return AIJudgeModel().eval()
