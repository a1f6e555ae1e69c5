"""Which versions serve each model family, and where their weights come from.

Read from the traffic policy and each version's metadata.json in the model repository the gateway
mounts (the exporter writes it, promotion copies the training run's record into it), so every
answer's `modelVersion` can be traced to its training run and held-out metrics.
"""

from __future__ import annotations

import json

from djserve.traffic import TrafficPolicy
from djserve.repository import ModelRepository
from djserve.repository.layout import provenance
from djserve.schemas import Provenance, ServedModels, ServedVersion


def _provenance(repo: ModelRepository, family: str, version: int) -> Provenance:
    try:
        return Provenance(**provenance(repo.metadata(family, version)))
    except (OSError, json.JSONDecodeError, ValueError):  # a version without readable metadata
        return Provenance(kind="unknown")


def served_models(policy: TrafficPolicy, repo: ModelRepository) -> ServedModels:
    out: dict[str, list[ServedVersion]] = {}
    for family, fp in policy.families.items():
        canary_share = fp.canary_percent if fp.canary is not None else 0.0
        versions = [ServedVersion(version=fp.stable, role="stable", share_percent=100.0 - canary_share,
                                  provenance=_provenance(repo, family, fp.stable))]
        if fp.canary is not None:
            versions.append(ServedVersion(version=fp.canary, role="canary", share_percent=canary_share,
                                          provenance=_provenance(repo, family, fp.canary)))
        out[family] = versions
    return ServedModels(models=out)
