"""Promotion of a registry version to production, one command per step.

    promote   registry version -> NEW Triton version (parity checked) -> loaded beside the stable
              one -> smoke inference -> canary share in the traffic policy + `challenger` alias
    canary    change the canary's share (optionally ramp it with gates: `watch`)
    complete  100% to the challenger, `champion` alias, drain, unload versions beyond those kept
    rollback  100% back to the previous champion at once, unload the failed version

Any failing step stops there, says why, and leaves production as it was: the traffic policy is
only written after the candidate answered, and a refused candidate is unloaded and its version
directory moved aside (`<model>/.rejected-<N>`). Every step is recorded in MLflow (model version
tags) and in `<state>/promotions.jsonl`.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bentos.routing import FamilyPolicy, PolicyStore, TrafficPolicy, newest_versions
from djserve.mlops.gates import GateConfig, GateResult, evaluate
from djserve.registry import CHALLENGER, CHAMPION, Registry, registered_name
from djserve.mlops.triton_control import TritonAccessDenied, TritonControl
from djserve.repository import ModelRepository
from djserve.settings import Settings
from djserve.triton.admin import ADMIN_KEY_ENV, AdminKey

POLICY_FILE = "traffic_policy.json"
BASELINE_DIR = "drift"


class PromotionError(Exception):
    """A refused step; production is as it was before it."""


class PromotionSettings(BaseSettings):
    # hide_input_in_errors: a rejected admin_key must not be echoed into an error message.
    model_config = SettingsConfigDict(
        env_prefix="DJSERVE_PROMOTION_", hide_input_in_errors=True, validate_by_name=True, validate_by_alias=True
    )

    triton_http_url: str = "127.0.0.1:8000"
    admin_key: AdminKey = Field(None, validation_alias=ADMIN_KEY_ENV)
    """The same `DJSERVE_TRITON_ADMIN_KEY` the embedded Triton is started with: sent with every
    model-control call (load, unload, repository index)."""
    gateway_url: str = "http://127.0.0.1:3000"
    keep_versions: int = Field(2, ge=1)
    """Loaded versions after `complete`: the champion and the one before it, for rollback."""
    drain_s: float = Field(5.0, ge=0)
    """Wait after `complete` before unloading, so requests already routed finish."""
    watch_steps: list[float] = [10, 50, 100]
    watch_poll_s: float = Field(1.0, gt=0)
    watch_step_timeout_s: float = Field(900, gt=0)
    gates: GateConfig = GateConfig()


@dataclass
class Promoted:
    family: str
    triton_version: int
    registry_uri: str
    canary_percent: float


class Promoter:
    def __init__(self, settings: Settings, promo: PromotionSettings | None = None, log: Callable[[str], None] = print):
        self.settings, self.promo, self.log = settings, promo or PromotionSettings(), log
        self.repo = ModelRepository(settings.repository)
        self.policies = PolicyStore(settings.state_dir / POLICY_FILE, default=lambda: newest_versions(settings.repository))
        self.triton = TritonControl(self.promo.triton_http_url, admin_key=self.promo.admin_key)

    @functools.cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.state_dir)  # opened on first use: restore() does not need it

    # --- policy ----------------------------------------------------------------------------

    def policy(self, family: str) -> FamilyPolicy:
        return self.policies.current().families[family]

    def _write(self, family: str, fp: FamilyPolicy, actor: str) -> None:
        current = self.policies.current()
        families = {**current.families, family: fp}
        self.policies.write(TrafficPolicy(families=families, updated_at=_now(), updated_by=actor))

    def materialize(self) -> TrafficPolicy:
        """Write the policy in force to the file if there is none: a new export must never become
        the default (newest) version by accident."""
        policy = self.policies.current()
        if not self.policies.path.exists():
            self.policies.write(policy.model_copy(update={"updated_at": _now(), "updated_by": "djserve"}))
        return policy

    def _check_access(self) -> None:
        """Refuse a step before it changes anything if Triton would refuse its model control."""
        try:
            self.triton.check_access()
        except TritonAccessDenied as exc:
            raise PromotionError(str(exc)) from None

    def restore(self) -> None:
        """Load exactly the versions the policy serves (after a restart) and pin the ensembles."""
        self._check_access()
        policy = self.materialize()
        for family, fp in policy.families.items():
            self.triton.load(family, _serving(fp))
        self.triton.pin_ensembles({f: fp.stable for f, fp in policy.families.items()})

    # --- steps -----------------------------------------------------------------------------

    def promote(self, family: str, source: str, canary_percent: float, tolerance: float = 1e-4) -> Promoted:
        from exporters.errors import ExportError
        from exporters.export import export_registered

        self.materialize()
        fp = self.policy(family)
        if fp.canary is not None:
            raise PromotionError(f"{family} already has canary v{fp.canary}: complete or roll it back first")
        self._check_access()  # before the export, not after it
        rv = self.registry.resolve(source)
        if rv.family != family:
            raise PromotionError(f"{source} is a {rv.family} model, not {family}")
        uri = f"models:/{rv.name}/{rv.version}"
        self.log(f"{family}: exporting {uri} to a new Triton version")
        try:
            result = export_registered(uri, self.settings.repository, self.settings.state_dir, tolerance)
        except ExportError as exc:
            self.registry.record(family, "refused", version=rv.version, stage="export", reason=str(exc))
            raise PromotionError(f"{family}: {uri} refused at export: {exc}") from None
        new = result.version
        self.log(f"{family}: loading v{new} beside v{fp.stable}")
        try:
            # Load before touching the ensembles: loading an ensemble reloads members whose folder
            # changed (the new version) from config.pbtxt, i.e. with the wrong versions.
            self.triton.load(family, _serving(fp) + [new])
            self.triton.pin_ensembles({family: fp.stable})
            self.triton.smoke(family, new)
        except Exception as exc:  # load or smoke failed: back to exactly what served before
            self._reject(family, fp, new)
            self.registry.record(family, "refused", version=rv.version, triton_version=new, stage="load/smoke", reason=str(exc))
            raise PromotionError(f"{family}: v{new} from {uri} refused: {str(exc).splitlines()[0][:300]}") from None

        self._set_baseline(family, fp.stable)
        self._write(family, fp.model_copy(update={"canary": new, "canary_percent": canary_percent}), f"promote {uri}")
        self.registry.set_alias(family, CHALLENGER, rv.version)
        self.registry.record(family, "promote", version=rv.version, triton_version=new, stable=fp.stable,
                             canary_percent=canary_percent, parity=result.max_abs_diff)
        self.log(f"{family}: v{new} ({uri}) takes {canary_percent:g}% of traffic as the challenger")
        return Promoted(family, new, uri, canary_percent)

    def set_canary(self, family: str, percent: float) -> FamilyPolicy:
        fp = self.policy(family)
        if fp.canary is None:
            raise PromotionError(f"{family} has no canary; promote a version first")
        new = fp.model_copy(update={"canary_percent": percent})
        self._write(family, new, f"canary {percent:g}%")
        self.registry.record(family, "canary", version=self._registry_version(family, fp.canary), triton_version=fp.canary,
                             canary_percent=percent)
        self.log(f"{family}: canary v{fp.canary} at {percent:g}%")
        return new

    def complete(self, family: str) -> FamilyPolicy:
        fp = self.policy(family)
        if fp.canary is None:
            raise PromotionError(f"{family} has no canary to complete")
        self._check_access()  # the policy is written first: Triton must then accept the reload
        champion, previous = fp.canary, fp.stable
        new = FamilyPolicy(stable=champion, previous_stable=previous)
        self._write(family, new, f"complete v{champion}")
        self.triton.pin_ensembles({family: champion})
        registry_version = self._registry_version(family, champion)
        if registry_version is not None:
            self.registry.set_alias(family, CHAMPION, registry_version)
        self.registry.delete_alias(family, CHALLENGER)
        self._set_baseline(family, champion)
        self.log(f"{family}: v{champion} serves 100%; draining {self.promo.drain_s:g} s before unloading older versions")
        time.sleep(self.promo.drain_s)
        keep = sorted({champion, previous} if self.promo.keep_versions >= 2 else {champion})
        self.triton.load(family, keep)
        self.triton.pin_ensembles({family: champion})
        self.registry.record(family, "complete", version=registry_version, triton_version=champion, previous=previous, loaded=keep)
        return new

    def rollback(self, family: str, reason: str = "manual") -> FamilyPolicy:
        """100% back to the previous champion at once; the failed version is unloaded."""
        fp = self.policy(family)
        if fp.canary is not None:
            failed, target = fp.canary, fp.stable
            new = FamilyPolicy(stable=target, previous_stable=fp.previous_stable)
        elif fp.previous_stable is not None:
            failed, target = fp.stable, fp.previous_stable
            new = FamilyPolicy(stable=target)
        else:
            raise PromotionError(f"{family}: nothing to roll back to (no canary, no previous champion)")
        self._check_access()
        self._write(family, new, f"rollback v{failed}: {reason}")
        self.triton.pin_ensembles({family: target})
        self.registry.delete_alias(family, CHALLENGER)
        target_rv = self._registry_version(family, target)
        if target_rv is not None:
            self.registry.set_alias(family, CHAMPION, target_rv)
        time.sleep(min(self.promo.drain_s, 2.0))  # requests already routed to the failed version finish
        self.triton.load(family, _serving(new))
        self.triton.pin_ensembles({family: target})
        self.registry.record(family, "rollback", version=self._registry_version(family, failed), triton_version=failed,
                             restored=target, reason=reason)
        self.log(f"{family}: rolled back to v{target} ({reason}); v{failed} unloaded")
        return new

    def gate(self, family: str) -> GateResult:
        fp = self.policy(family)
        if fp.canary is None:
            raise PromotionError(f"{family} has no canary to gate")
        result = evaluate(self._stats(family), fp.stable, fp.canary, self.promo.gates)
        if result.verdict != "wait":
            self.registry.record(family, "gate", version=self._registry_version(family, fp.canary), triton_version=fp.canary,
                                 canary_percent=fp.canary_percent, **result.to_dict())
        return result

    def watch(self, family: str, steps: list[float] | None = None) -> str:
        """Ramp the canary through `steps` while the gates pass; roll back at the first failure.
        Returns "completed" or "rolled_back"."""
        for percent in steps or self.promo.watch_steps:
            self.set_canary(family, percent)
            deadline = time.monotonic() + self.promo.watch_step_timeout_s
            while True:
                result = self.gate(family)
                if result.verdict == "fail":
                    self.rollback(family, reason="; ".join(result.reasons))
                    return "rolled_back"
                if result.verdict == "pass":
                    self.log(f"{family}: gates pass at {percent:g}% ({result.canary_requests} canary requests)")
                    break
                if time.monotonic() > deadline:
                    self.rollback(family, reason=f"no verdict within {self.promo.watch_step_timeout_s:g} s: {result.reasons[0]}")
                    return "rolled_back"
                time.sleep(self.promo.watch_poll_s)
        self.complete(family)
        return "completed"

    def status(self) -> list[dict]:
        policy = self.policies.current()
        rows = []
        gates = {}
        for entry in self.registry.history():
            if entry.get("action") == "gate":
                gates[entry["family"]] = entry
        for family, fp in policy.families.items():
            try:
                loaded = self.triton.loaded_versions(family)
            except Exception:  # noqa: BLE001 - Triton not running: say so, still show the rest
                loaded = None
            shares = {fp.stable: 100 - fp.canary_percent} | ({fp.canary: fp.canary_percent} if fp.canary else {})
            rows.append({
                "family": family,
                "registered_model": registered_name(family),
                "loaded": loaded,
                "shares": shares,
                "previous_stable": fp.previous_stable,
                "aliases": self.registry.aliases(family),
                "last_gate": gates.get(family),
            })
        return rows

    # --- helpers ---------------------------------------------------------------------------

    def _reject(self, family: str, fp: FamilyPolicy, version: int) -> None:
        try:
            self.triton.load(family, _serving(fp))
            self.triton.pin_ensembles({family: fp.stable})
        finally:
            path = self.repo.model_dir(family) / str(version)
            if path.exists():
                shutil.move(path, self.repo.model_dir(family) / f".rejected-{version}-{int(time.time())}")

    def _registry_version(self, family: str, triton_version: int) -> int | None:
        try:
            uri = self.repo.metadata(family, triton_version).get("extra", {}).get("registry", "")
        except (OSError, ValueError):
            return None
        return int(uri.rsplit("/", 1)[-1]) if uri.startswith("models:/") else None

    def _stats(self, family: str) -> dict:
        with urllib.request.urlopen(f"{self.promo.gateway_url}/admin/stats?family={family}", timeout=10) as r:
            return json.loads(r.read())

    def _set_baseline(self, family: str, version: int) -> None:
        """Drift baseline = the given version's recent live outputs (skipped if the gateway has none)."""
        from bentos.monitoring import PredictionMonitor

        try:
            values = self._stats(family).get("versions", {}).get(str(version), {}).get("values", [])
        except OSError:
            values = []
        if values:
            PredictionMonitor(self.settings.state_dir / BASELINE_DIR).set_baseline(family, values, version=version, source="promotion")


def _serving(fp: FamilyPolicy) -> list[int]:
    return sorted({fp.stable, *(v for v in (fp.canary, fp.previous_stable) if v)})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
