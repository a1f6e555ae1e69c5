"""Explicit model control of a running Triton: which versions of a family are loaded.

Versions are loaded with a config override whose version_policy names them (`specific`), so the
stable version stays loaded while a candidate comes and goes, and a restart loads exactly the
versions the traffic policy serves. The ensembles are re-pinned to the stable version of their
members, so a direct ensemble caller never lands on a candidate under trial.

When Triton restricts its model-control API (`DJSERVE_TRITON_ADMIN_KEY`), every model-control call
here (repository index, load) carries the admin key; without it Triton refuses them and
`TritonAccessDenied` says so.
"""

from __future__ import annotations

import numpy as np
import tritonclient.http as triton_http
from google.protobuf import json_format
from pydantic import SecretStr
from tritonclient.utils import InferenceServerException

from clients.triton import build_request
from djserve.repository.config import build_config
from djserve.specs import ENSEMBLES, EXPORTED
from djserve.triton.admin import ADMIN_KEY_ENV, admin_headers
from djserve.triton.replicas import expand


class TritonAccessDenied(RuntimeError):
    """Triton refused a model-control call: its model-control API is restricted and the admin key
    was missing or wrong. The message names the setting, never the key."""


def versions_config(family: str, versions: list[int]) -> str:
    """The family's config.pbtxt (from its spec) with `version_policy { specific { versions } }`, as JSON."""
    cfg = build_config(EXPORTED[family])
    cfg.version_policy.Clear()
    cfg.version_policy.specific.versions.extend(sorted(set(versions)))
    return json_format.MessageToJson(cfg, preserving_proto_field_name=True)


def pinned_ensemble_config(ensemble: str, pins: dict[str, int]) -> str:
    cfg = build_config(ENSEMBLES[ensemble])
    for step in cfg.ensemble_scheduling.step:
        if step.model_name in pins:
            step.model_version = pins[step.model_name]
    return json_format.MessageToJson(cfg, preserving_proto_field_name=True)


class ReplicaError(RuntimeError):
    """A Triton replica failed a step (or disagrees with the others); the message names it."""


class TritonControl:
    """Model control of ONE Triton replica (`TritonFleet` drives them all)."""

    def __init__(self, http_url: str, timeout_s: float = 120.0, admin_key: SecretStr | str | None = None):
        self.url = http_url.removeprefix("http://")
        self.client = triton_http.InferenceServerClient(self.url, network_timeout=timeout_s)
        self._headers = admin_headers(admin_key, "http") or None

    def close(self) -> None:
        self.client.close()

    def _control(self, call, *args, **kwargs):
        """A model-control call with the admin header; a refusal becomes TritonAccessDenied."""
        try:
            return call(*args, headers=self._headers, **kwargs)
        except InferenceServerException as exc:
            if exc.status() == "403" or "is restricted" in (exc.message() or ""):
                state = "was refused" if self._headers else "is missing"
                raise TritonAccessDenied(
                    f"Triton refused model control (its model-repository API is restricted): the admin key "
                    f"{state}; set {ADMIN_KEY_ENV} to the key Triton was started with"
                ) from None
            raise

    def check_access(self) -> None:
        """Raise TritonAccessDenied if model control would be refused (a cheap restricted call)."""
        self._control(self.client.get_model_repository_index)

    def loaded_versions(self, family: str) -> list[int]:
        index = self._control(self.client.get_model_repository_index)
        return sorted(int(m["version"]) for m in index if m["name"] == family and m.get("state") == "READY" and m.get("version"))

    def load(self, family: str, versions: list[int]) -> None:
        """Load exactly `versions` of the family (already-loaded ones keep serving during the swap)."""
        self._control(self.client.load_model, family, config=versions_config(family, versions))
        missing = [v for v in versions if not self.client.is_model_ready(family, str(v))]
        if missing:
            raise RuntimeError(f"{family}: version(s) {missing} did not become ready")

    def unload(self, name: str) -> None:
        """Unload every version of the model `name`."""
        self._control(self.client.unload_model, name)

    def pin_ensembles(self, stable: dict[str, int]) -> None:
        """Reload every ensemble with its members pinned to their stable versions."""
        for name, spec in ENSEMBLES.items():
            pins = {s.model: stable[s.model] for s in spec.steps if s.model in stable}
            if pins:
                self._control(self.client.load_model, name, config=pinned_ensemble_config(name, pins))

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


class TritonFleet:
    """Model control of every Triton replica at once, with version fencing.

    `replicas` is the replica setting (djserve.triton.replicas: a list, or `dns:///name:port`),
    expanded when the fleet is made. A load goes to every replica and is then checked: each one
    READY with exactly the asked versions. A replica that fails or disagrees blocks the step, is
    named, and the replicas already changed are put back to the versions they had, so traffic is
    only ever moved onto versions every replica serves.
    """

    def __init__(self, replicas: str, timeout_s: float = 120.0, admin_key: SecretStr | str | None = None):
        self.replicas = [TritonControl(url, timeout_s, admin_key) for url in expand(replicas)]

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def close(self) -> None:
        for r in self.replicas:
            r.close()

    def _each(self, what: str, call) -> list:
        out = []
        for r in self.replicas:
            try:
                out.append(call(r))
            except TritonAccessDenied:
                raise
            except Exception as exc:  # noqa: BLE001 - named and re-raised
                raise ReplicaError(f"Triton replica {r.url}: {what} failed: {str(exc).splitlines()[0][:300]}") from exc
        return out

    def check_access(self) -> None:
        self._each("model control", lambda r: r.check_access())

    def loaded_by_replica(self, family: str) -> dict[str, list[int]]:
        return dict(zip(self.urls, self._each(f"listing {family}", lambda r: r.loaded_versions(family))))

    def loaded_versions(self, family: str) -> list[int]:
        """The versions every replica has READY; replicas that disagree are a ReplicaError."""
        seen = self.loaded_by_replica(family)
        if len({tuple(v) for v in seen.values()}) > 1:
            raise ReplicaError(f"{family}: Triton replicas disagree: " + ", ".join(f"{u} {v}" for u, v in seen.items()))
        return next(iter(seen.values()))

    def fence(self, family: str, versions: list[int]) -> None:
        """Every replica READY with exactly `versions` of the family, or a ReplicaError naming who is not."""
        want = sorted(set(versions))
        wrong = {u: v for u, v in self.loaded_by_replica(family).items() if v != want}
        if wrong:
            raise ReplicaError(f"{family}: replica(s) not on versions {want}: " + ", ".join(f"{u} has {v}" for u, v in wrong.items()))

    def load(self, family: str, versions: list[int]) -> None:
        """Load exactly `versions` on every replica, then fence; on any failure the replicas are put
        back to what they had and the error names the replica."""
        before = self.loaded_by_replica(family)
        changed: list[TritonControl] = []
        try:
            for r in self.replicas:
                changed.append(r)
                try:
                    r.load(family, versions)
                except TritonAccessDenied:
                    raise
                except Exception as exc:  # noqa: BLE001 - named below
                    raise ReplicaError(f"Triton replica {r.url}: loading {family} {sorted(versions)} failed: "
                                       f"{str(exc).splitlines()[0][:300]}") from exc
            self.fence(family, versions)
        except Exception:
            for r in changed:
                try:
                    if before[r.url]:
                        r.load(family, before[r.url])
                    else:
                        r.unload(family)
                except Exception:  # noqa: BLE001 - the replica that failed may be down; the error above says so
                    pass
            raise

    def unload(self, name: str) -> None:
        self._each(f"unloading {name}", lambda r: r.unload(name))

    def pin_ensembles(self, stable: dict[str, int]) -> None:
        self._each("pinning the ensembles", lambda r: r.pin_ensembles(stable))

    def smoke(self, family: str, version: int, seed: int = 0) -> dict[str, np.ndarray]:
        """The smoke inference on every replica; the first replica's outputs."""
        return self._each(f"smoke inference of {family} v{version}", lambda r: r.smoke(family, version, seed))[0]
