"""Explicit model control of a running Triton: which versions of a family are loaded.

Versions are loaded with a config override whose version_policy names them (`specific`), so the
stable version stays loaded while a candidate comes and goes, and a restart loads exactly the
versions the traffic policy serves. The ensembles are re-pinned to the stable version of their
members, so a direct ensemble caller never lands on a candidate under trial.
"""

from __future__ import annotations

import numpy as np
import tritonclient.http as triton_http
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from clients.triton import build_request
from djserve.repository import render_config
from djserve.specs import ENSEMBLES, EXPORTED


def _config(text: str) -> mc.ModelConfig:
    return text_format.Parse("\n".join(l for l in text.splitlines() if not l.startswith("#")), mc.ModelConfig())


def versions_config(family: str, versions: list[int]) -> str:
    """The family's config.pbtxt (from its spec) with `version_policy { specific { versions } }`, as JSON."""
    cfg = _config(render_config(EXPORTED[family]))
    cfg.version_policy.Clear()
    cfg.version_policy.specific.versions.extend(sorted(set(versions)))
    return json_format.MessageToJson(cfg, preserving_proto_field_name=True)


def pinned_ensemble_config(ensemble: str, pins: dict[str, int]) -> str:
    cfg = _config(render_config(ENSEMBLES[ensemble]))
    for step in cfg.ensemble_scheduling.step:
        if step.model_name in pins:
            step.model_version = pins[step.model_name]
    return json_format.MessageToJson(cfg, preserving_proto_field_name=True)


class TritonControl:
    def __init__(self, http_url: str, timeout_s: float = 120.0):
        self.client = triton_http.InferenceServerClient(http_url.removeprefix("http://"), network_timeout=timeout_s)

    def close(self) -> None:
        self.client.close()

    def loaded_versions(self, family: str) -> list[int]:
        index = self.client.get_model_repository_index()
        return sorted(int(m["version"]) for m in index if m["name"] == family and m.get("state") == "READY" and m.get("version"))

    def load(self, family: str, versions: list[int]) -> None:
        """Load exactly `versions` of the family (already-loaded ones keep serving during the swap)."""
        self.client.load_model(family, config=versions_config(family, versions))
        missing = [v for v in versions if not self.client.is_model_ready(family, str(v))]
        if missing:
            raise RuntimeError(f"{family}: version(s) {missing} did not become ready")

    def pin_ensembles(self, stable: dict[str, int]) -> None:
        """Reload every ensemble with its members pinned to their stable versions."""
        for name, spec in ENSEMBLES.items():
            pins = {s.model: stable[s.model] for s in spec.steps if s.model in stable}
            if pins:
                self.client.load_model(name, config=pinned_ensemble_config(name, pins))

    def smoke(self, family: str, version: int, seed: int = 0) -> dict[str, np.ndarray]:
        """One inference on random valid inputs of the spec; outputs must have the spec's shapes and be finite."""
        spec = EXPORTED[family]
        axes = spec.parity_axes[0]
        feeds = spec.random_inputs(2, axes, np.random.default_rng(seed))
        _, inputs, requested = build_request(triton_http, family, feeds)
        result = self.client.infer(family, inputs, model_version=str(version), outputs=requested)
        outputs = {t.name: result.as_numpy(t.name) for t in spec.outputs}
        for t in spec.outputs:
            want = t.shape(2, axes)
            if outputs[t.name].shape != want or not np.all(np.isfinite(outputs[t.name])):
                raise RuntimeError(f"{family} v{version}: smoke output {t.name} has shape {outputs[t.name].shape} "
                                   f"(want {want}) or non-finite values")
        return outputs
