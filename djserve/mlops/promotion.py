"""Promotion of a registry version to production, one command per step.

    promote   offline gate (held-out quality, not worse than the champion) -> NEW Triton version
              (parity checked) -> loaded beside the stable one -> smoke inference -> a shadow or a
              canary share in the traffic policy + `challenger` alias
    canary    change the canary's share, or ramp it under the online gates (`watch`): a shadow
              phase first when there is one, then each step until the gates pass or fail
    complete  100% to the challenger, `champion` alias, drain, unload versions beyond those kept
    rollback  100% back to the previous champion at once, unload the failed version

Any failing step stops there, says why, and leaves production as it was: the offline gate runs
before anything is exported, the traffic policy is only written after the candidate answered, and
a refused candidate is unloaded and its version directory moved aside (`<model>/.rejected-<N>`).
Every step and every gate verdict is recorded in MLflow (model version tags) and in
`<state>/promotions.jsonl`.
"""

from __future__ import annotations

import functools
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from djserve.api import ADMIN_TOKEN_ENV, STATS_ROUTE
from djserve.drift import BaselineStore
from djserve.live_stats import FamilyStats
from djserve.mlops import expectations, offline_gate, online_gates
from djserve.mlops.offline_gate import Evaluator, HeldOut, OfflineGateConfig, OfflineVerdict
from djserve.mlops.online_gates import ArmSample, ExpectedShift, GateResult, OnlineGateConfig
from djserve.mlops.triton_control import ReplicaError, TritonAccessDenied, TritonFleet
from djserve.registry import CHALLENGER, CHAMPION, Registry, registered_name
from djserve.repository import ModelRepository
from djserve.settings import Settings
from djserve.traffic import FamilyPolicy, PolicyStore, TrafficPolicy, newest_versions
from djserve.triton.admin import ADMIN_KEY_ENV, AdminKey

if TYPE_CHECKING:
    from djserve.mlops.quantize import GraphEvaluator

POLICY_FILE = "traffic_policy.json"
BASELINE_DIR = "drift"
ADMIN_TOKEN_FILE = "admin_token"
"""Where `djserve serve` keeps the gateway's generated admin token when DJSERVE_ADMIN_TOKEN is unset."""


class PromotionError(Exception):
    """A refused step; production is as it was before it."""


class PromotionSettings(BaseSettings):
    # hide_input_in_errors: a rejected admin_key must not be echoed into an error message.
    model_config = SettingsConfigDict(
        env_prefix="DJSERVE_PROMOTION_", hide_input_in_errors=True, validate_by_name=True, validate_by_alias=True
    )

    triton_http_url: str = "127.0.0.1:8000"
    """Triton's HTTP endpoint, or every replica's: a comma-separated list or `dns:///name:port`
    (djserve.triton.replicas). Every step reaches every replica and is fenced (TritonFleet)."""
    admin_key: AdminKey = Field(None, validation_alias=ADMIN_KEY_ENV)
    """The same `DJSERVE_TRITON_ADMIN_KEY` the embedded Triton is started with: sent with every
    model-control call (load, unload, repository index)."""
    gateway_url: str = "http://127.0.0.1:3000"
    admin_token: Optional[SecretStr] = Field(None, validation_alias=ADMIN_TOKEN_ENV)
    """The gateway's `/admin/*` bearer token (DJSERVE_ADMIN_TOKEN; else `<state>/admin_token`)."""
    keep_versions: int = Field(2, ge=1)
    """Loaded versions after `complete`: the champion and the one before it, for rollback."""
    drain_s: float = Field(5.0, ge=0)
    """Wait after `complete` before unloading, so requests already routed finish."""
    watch_steps: list[float] = [10, 50, 100]
    watch_poll_s: float = Field(1.0, gt=0)
    watch_step_timeout_s: float = Field(900, gt=0)
    """A step without a verdict by then is rolled back (fail-closed)."""
    shadow_min_pairs: int = Field(200, ge=1)
    """Paired shadow comparisons needed before the shadow phase of `watch` ends."""
    shadow_max_error_rate: float = Field(0.02, ge=0, le=1)
    """A shadow failing more often than the stable version by this much never gets traffic."""
    gates: OnlineGateConfig = OnlineGateConfig()
    offline: OfflineGateConfig = OfflineGateConfig()


@dataclass
class Promoted:
    family: str
    triton_version: int
    registry_uri: str
    canary_percent: float
    shadow_percent: float = 0.0
    offline: OfflineVerdict | None = None


class Promoter:
    def __init__(self, settings: Settings, promo: PromotionSettings | None = None, log: Callable[[str], None] = print,
                 evaluator: Evaluator | None = None, graph_evaluator: GraphEvaluator | None = None):
        """`evaluator` scores a registered version on held-out data (the CLI passes training's); without
        one the offline gate can only use evaluations already logged with the versions.
        `graph_evaluator` scores an exported graph (INT8 acceptance; `promote --quantize int8`)."""
        self.settings, self.promo, self.log, self.evaluator = settings, promo or PromotionSettings(), log, evaluator
        self.graph_evaluator = graph_evaluator
        self.repo = ModelRepository(settings.repository)
        self.policies = PolicyStore(settings.state_dir / POLICY_FILE, default=lambda: newest_versions(settings.repository))
        self.triton = TritonFleet(self.promo.triton_http_url, admin_key=self.promo.admin_key)

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
        except (TritonAccessDenied, ReplicaError) as exc:  # a replica that cannot be reached blocks every step
            raise PromotionError(str(exc)) from None

    def restore(self) -> None:
        """Load exactly the versions the policy serves (after a restart) and pin the ensembles."""
        self._check_access()
        policy = self.materialize()
        for family, fp in policy.families.items():
            self.triton.load(family, fp.serving())
        self.triton.pin_ensembles({f: fp.stable for f, fp in policy.families.items()})

    # --- steps -----------------------------------------------------------------------------

    def promote(self, family: str, source: str, canary_percent: float = 10.0, tolerance: float = 1e-4,
                shadow_percent: float | None = None, force: bool = False, min_improvement: float | None = None,
                quantize: str | None = None) -> Promoted:
        """Gate `source` offline, export it as a new version and give it a canary share, or (with
        `shadow_percent`) mirrored traffic only. `force` promotes past a failed offline gate (recorded).
        `quantize="int8"`: the new version is its INT8 graph, accepted on the held-out metric."""
        from exporters.errors import ExportError

        from djserve.mlops.publish import export_registered

        self.materialize()
        fp = self.policy(family)
        if fp.candidate is not None:
            raise PromotionError(f"{family} already has candidate v{fp.candidate} under trial: complete or roll it back first")
        self._check_access()  # before the evaluation and the export, not after them
        rv = self.registry.resolve(source)
        if rv.family != family:
            raise PromotionError(f"{source} is a {rv.family} model, not {family}")
        uri = f"models:/{rv.name}/{rv.version}"
        verdict = self.offline_gate(family, rv.version, min_improvement)
        if verdict.verdict == "fail":
            if not force:
                raise PromotionError(f"{family}: {uri} refused by the offline gate: {'; '.join(verdict.reasons)}")
            self.log(f"{family}: offline gate failed, promoting anyway (--force)")
        self.log(f"{family}: exporting {uri} to a new Triton version")
        try:
            result = export_registered(uri, self.settings.repository, self.settings.state_dir, tolerance, quantize=quantize,
                                       evaluate_graph=self.graph_evaluator)
        except ExportError as exc:
            self.registry.record(family, "refused", version=rv.version, stage="export", reason=str(exc))
            raise PromotionError(f"{family}: {uri} refused at export: {exc}") from None
        new = result.version
        self.log(f"{family}: loading v{new} beside v{fp.stable}")
        try:
            # Load before touching the ensembles: loading an ensemble reloads members whose folder
            # changed (the new version) from config.pbtxt, i.e. with the wrong versions.
            self.triton.load(family, fp.serving() + [new])
            self.triton.pin_ensembles({family: fp.stable})
            self.triton.smoke(family, new)
        except Exception as exc:  # load or smoke failed: back to exactly what served before
            self._reject(family, fp, new)
            self.registry.record(family, "refused", version=rv.version, triton_version=new, stage="load/smoke", reason=str(exc))
            raise PromotionError(f"{family}: v{new} from {uri} refused: {str(exc).splitlines()[0][:300]}") from None

        self._set_baseline(family, fp.stable)
        if shadow_percent:
            update = {"shadow": new, "shadow_percent": shadow_percent}
            share = f"a mirrored copy of {shadow_percent:g}% of the requests (shadow: its answers are never returned)"
        else:
            update = {"canary": new, "canary_percent": canary_percent}
            share = f"{canary_percent:g}% of traffic"
        self._write(family, fp.model_copy(update=update), f"promote {uri}")
        self.registry.set_alias(family, CHALLENGER, rv.version)
        self.registry.record(family, "promote", version=rv.version, triton_version=new, stable=fp.stable,
                             canary_percent=0.0 if shadow_percent else canary_percent, shadow_percent=shadow_percent or 0.0,
                             parity=result.max_abs_diff, forced=force and verdict.verdict == "fail")
        self.log(f"{family}: v{new} ({uri}) takes {share} as the challenger")
        return Promoted(family, new, uri, 0.0 if shadow_percent else canary_percent, shadow_percent or 0.0, verdict)

    # --- offline gate ----------------------------------------------------------------------

    def offline_gate(self, family: str, version: int, min_improvement: float | None = None) -> OfflineVerdict:
        """Score the registered version and the champion on the same held-out data and decide;
        the verdict is recorded (MLflow tag `djserve.offline_gate`, promotions.jsonl) and printed."""
        candidate_uri = f"models:/{registered_name(family)}/{version}"
        profile = self.registry.run_tags(self.registry.resolve(candidate_uri).run_id).get("profile", "reference")
        self.log(f"{family}: offline gate: scoring {candidate_uri} on the {profile} held-out set")
        try:
            candidate = self._held_out(family, version, profile)
            champion_version = self.registry.alias_version(family, CHAMPION)
            champion = None
            if champion_version is not None and champion_version != version:
                self.log(f"{family}: offline gate: scoring the champion v{champion_version} on the same data")
                champion = self._held_out(family, champion_version, profile, candidate.dataset_hash)
        except Exception as exc:  # noqa: BLE001 - no evaluation is a failed gate (fail-closed), not a crash
            verdict = OfflineVerdict(verdict="fail", reasons=[f"no held-out evaluation: {exc}"], candidate=candidate_uri)
        else:
            cfg = self.promo.offline if min_improvement is None else \
                self.promo.offline.model_copy(update={"min_improvement": min_improvement})
            verdict = offline_gate.decide(family, candidate, champion, cfg)
            if champion is not None:
                expectations.save(self.settings.state_dir, family, version, expectations.from_offline(candidate, champion))
        self.registry.record(family, "offline_gate", version=version, **verdict.model_dump(mode="json"))
        self.log(f"{family}: offline gate {verdict.summary()}")
        return verdict

    def _held_out(self, family: str, version: int, profile: str, dataset_hash: str | None = None) -> HeldOut:
        """The version's held-out evaluation: the one its training run logged when it is on this
        data, else a fresh one from the evaluator."""
        rv = self.registry.resolve(f"models:/{registered_name(family)}/{version}")
        tags = self.registry.run_tags(rv.run_id)
        if tags.get("kind") == "train" and tags.get("profile", "reference") == profile and \
                (dataset_hash is None or tags.get("dataset.hash") == dataset_hash):
            doc = self.registry.run_json(rv.run_id, "evaluation.json")
            if doc and doc.get("samples"):
                return HeldOut(uri=f"models:/{rv.name}/{rv.version}", dataset_hash=tags["dataset.hash"], run_id=rv.run_id,
                               **{k: doc[k] for k in ("headline", "metrics", "samples")},
                               summaries=expectations.summaries(doc.get("extra")))
        if self.evaluator is None:
            raise PromotionError(f"{family}: models:/{rv.name}/{rv.version} has no held-out evaluation on the {profile} data "
                                 "and no evaluator was given: the offline gate cannot decide")
        doc = self.evaluator(family, version, profile)
        return HeldOut(uri=f"models:/{rv.name}/{rv.version}", dataset_hash=doc["dataset_hash"], run_id=doc.get("run_id", ""),
                       **{k: doc[k] for k in ("headline", "metrics", "samples")},
                       summaries=expectations.summaries(doc.get("extra")))

    def set_canary(self, family: str, percent: float) -> FamilyPolicy:
        """The canary's share; a shadow under trial becomes the canary (and stops being mirrored)."""
        fp = self.policy(family)
        if fp.candidate is None:
            raise PromotionError(f"{family} has no canary; promote a version first")
        candidate = fp.candidate
        new = fp.model_copy(update={"canary": candidate, "canary_percent": percent, "shadow": None, "shadow_percent": 0.0})
        self._fence(family, new.serving(), f"canary {percent:g}%")
        self._write(family, new, f"canary {percent:g}%")
        self.registry.record(family, "canary", version=self._registry_version(family, candidate), triton_version=candidate,
                             canary_percent=percent)
        self.log(f"{family}: canary v{candidate} at {percent:g}%")
        return new

    def complete(self, family: str) -> FamilyPolicy:
        fp = self.policy(family)
        if fp.candidate is None:
            raise PromotionError(f"{family} has no canary to complete")
        self._check_access()  # the policy is written first: Triton must then accept the reload
        champion, previous = fp.candidate, fp.stable
        new = FamilyPolicy(stable=champion, previous_stable=previous)
        self._fence(family, fp.serving(), f"complete v{champion}")
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
        if fp.candidate is not None:
            failed, target = fp.candidate, fp.stable
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
        self.triton.load(family, new.serving())
        self.triton.pin_ensembles({family: target})
        self.registry.record(family, "rollback", version=self._registry_version(family, failed), triton_version=failed,
                             restored=target, reason=reason)
        self.log(f"{family}: rolled back to v{target} ({reason}); v{failed} unloaded")
        return new

    # --- online gates ----------------------------------------------------------------------

    def stats(self, family: str) -> FamilyStats:
        """The gateway's live figures for the family (`/admin/stats`)."""
        request = urllib.request.Request(f"{self.promo.gateway_url}{STATS_ROUTE}?family={family}", headers=self._admin_headers())
        with urllib.request.urlopen(request, timeout=10) as r:
            return FamilyStats.model_validate_json(r.read())

    def _admin_headers(self) -> dict[str, str]:
        token = self.promo.admin_token.get_secret_value() if self.promo.admin_token else None
        path = self.settings.state_dir / ADMIN_TOKEN_FILE
        if token is None and path.exists():
            token = path.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def gate(self, family: str, since: FamilyStats | None = None, stable_since: FamilyStats | None = None) -> GateResult:
        """The online gates on the canary against the stable version, both on the requests since
        `since` (a stats snapshot taken when the step began; None: everything the gateway has seen);
        at a 100% step (the stable takes no traffic) its requests since `stable_since` (the ramp's start).
        No stats (the gateway is unreachable) is a wait, never a pass."""
        fp = self.policy(family)
        if fp.canary is None:
            raise PromotionError(f"{family} has no canary to gate")
        try:
            now = self.stats(family)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            return GateResult(verdict="wait", reasons=[f"no live stats from the gateway: {exc}"], checks=[],
                              canary_requests=0, stable_requests=0)
        stable, canary = step_arms(now, fp, since, stable_since)
        expected = expectations.load(self.settings.state_dir, family, fp.canary)
        result = online_gates.evaluate(stable, canary, self.promo.gates, expected)
        if result.verdict != "wait":
            self.registry.record(family, "gate", version=self._registry_version(family, fp.canary), triton_version=fp.canary,
                                 canary_percent=fp.canary_percent, expected_from=expected.source if expected else None,
                                 **result.to_dict())
        return result

    def shadow_phase(self, family: str) -> str:
        """Wait for enough shadow pairs, record the comparison, keep it as the expected output shift.
        Returns "pass", or "fail" when the shadow fails far more often than the stable version or
        no comparison arrives in time."""
        fp = self.policy(family)
        deadline = time.monotonic() + self.promo.watch_step_timeout_s
        while True:
            shadow = (self._snapshot(family) or FamilyStats(family=family)).shadow
            if shadow is not None and shadow.shadow == fp.shadow and shadow.pairs + shadow.errors_total >= self.promo.shadow_min_pairs:
                break
            if time.monotonic() > deadline:
                self.rollback(family, reason=f"shadow: fewer than {self.promo.shadow_min_pairs} paired requests within "
                                             f"{self.promo.watch_step_timeout_s:g} s")
                return "fail"
            time.sleep(self.promo.watch_poll_s)
        error_rate = shadow.errors_total / max(shadow.mirrored_total, 1)
        record = shadow.model_dump(exclude={"stable_values", "shadow_values"})
        self.registry.record(family, "shadow", version=self._registry_version(family, fp.shadow), triton_version=fp.shadow,
                             shadow_error_rate=error_rate, **record)
        self.log(f"{family}: shadow v{fp.shadow}: {shadow.pairs} pairs, agreement "
                 f"{'-' if shadow.agreement is None else f'{shadow.agreement:.3f}'}, mean difference "
                 f"{'-' if shadow.diff_mean is None else f'{shadow.diff_mean:+.4f}'}, errors {shadow.errors_total}")
        if error_rate > self.promo.shadow_max_error_rate:
            self.rollback(family, reason=f"shadow: {shadow.errors_total} of {shadow.mirrored_total} mirrored requests failed")
            return "fail"
        if shadow.pairs:
            expectations.save(self.settings.state_dir, family, fp.shadow,
                              ExpectedShift(source="shadow", candidate=shadow.shadow_values, stable=shadow.stable_values))
        return "pass"

    def watch(self, family: str, steps: list[float] | None = None) -> str:
        """A shadow phase if the candidate is in shadow, then ramp the canary through `steps` while
        the gates pass; roll back at the first failure or a step without a verdict in time.
        Returns "completed" or "rolled_back"."""
        if self.policy(family).shadow is not None and self.shadow_phase(family) == "fail":
            return "rolled_back"
        ramp_start = self._snapshot(family)
        for percent in steps or self.promo.watch_steps:
            self.set_canary(family, percent)
            since = self._snapshot(family)
            deadline = time.monotonic() + self.promo.watch_step_timeout_s
            while True:
                result = self.gate(family, since, ramp_start)
                if result.verdict == "fail":
                    self.rollback(family, reason="; ".join(result.reasons))
                    return "rolled_back"
                if result.verdict == "pass":
                    self.log(f"{family}: gates pass at {percent:g}% ({result.canary_requests} canary requests)")
                    break
                if time.monotonic() > deadline:
                    why = result.reasons[0] if result.reasons else "no verdict"
                    self.rollback(family, reason=f"no verdict within {self.promo.watch_step_timeout_s:g} s: {why}")
                    return "rolled_back"
                time.sleep(self.promo.watch_poll_s)
        self.complete(family)
        return "completed"

    def _snapshot(self, family: str) -> FamilyStats | None:
        try:
            return self.stats(family)
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def status(self) -> list[dict]:
        policy = self.policies.current()
        rows = []
        last: dict[tuple[str, str], dict] = {}
        for entry in self.registry.history():
            if entry.get("action") in ("gate", "offline_gate", "shadow"):
                last[entry["family"], entry["action"]] = entry
        for family, fp in policy.families.items():
            try:
                by_replica = self.triton.loaded_by_replica(family)
            except Exception:  # noqa: BLE001 - Triton not running: say so, still show the rest
                by_replica = {}
            distinct = {tuple(v) for v in by_replica.values()}
            loaded = list(distinct.pop()) if len(distinct) == 1 else None
            if len(distinct) > 1:  # replicas disagree (a step was interrupted): show each one
                loaded = {url: versions for url, versions in by_replica.items()}
            shares = {fp.stable: 100 - fp.canary_percent} | ({fp.canary: fp.canary_percent} if fp.canary else {})
            shadow = None
            if fp.shadow is not None:
                live = self._snapshot(family)
                shadow = None if live is None or live.shadow is None else live.shadow.model_dump(exclude={"stable_values", "shadow_values"})
            rows.append({
                "family": family,
                "registered_model": registered_name(family),
                "loaded": loaded,
                "shares": shares,
                "shadow": {"version": fp.shadow, "percent": fp.shadow_percent, "live": shadow} if fp.shadow else None,
                "previous_stable": fp.previous_stable,
                "aliases": self.registry.aliases(family),
                "last_offline_gate": last.get((family, "offline_gate")),
                "last_shadow": last.get((family, "shadow")),
                "last_gate": last.get((family, "gate")),
            })
        return rows

    # --- helpers ---------------------------------------------------------------------------

    def _fence(self, family: str, versions: list[int], step: str) -> None:
        """Traffic moves only onto versions every Triton replica has READY (version fencing)."""
        try:
            self.triton.fence(family, versions)
        except ReplicaError as exc:
            self.registry.record(family, "blocked", step=step, reason=str(exc))
            raise PromotionError(f"{family}: {step} blocked, traffic unchanged: {exc}") from None

    def _reject(self, family: str, fp: FamilyPolicy, version: int) -> None:
        try:
            self.triton.load(family, fp.serving())
            self.triton.pin_ensembles({family: fp.stable})
        except Exception as exc:  # noqa: BLE001 - a replica that is down says so; the refusal stands
            self.log(f"{family}: restoring v{fp.serving()} after the refusal: {str(exc).splitlines()[0]}")
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

    def _set_baseline(self, family: str, version: int) -> None:
        """Drift baseline = the given version's recent live outputs (skipped if the gateway has none)."""
        values = (self._snapshot(family) or FamilyStats(family=family)).version(version).values
        if values:
            BaselineStore(self.settings.state_dir / BASELINE_DIR).write(family, values, version=version, source="promotion")


def step_arms(now: FamilyStats, fp: FamilyPolicy, since: FamilyStats | None,
              stable_since: FamilyStats | None) -> tuple[ArmSample, ArmSample]:
    """The (stable, canary) outcomes the gates judge at this step. A 100% step leaves the stable no
    traffic (at most a straggler routed before the switch), so the canary is judged against the
    stable's figures over the whole ramp (`stable_since`) instead."""
    stable_from = stable_since if fp.canary_percent >= 100 and stable_since is not None else since
    return _since(now, stable_from, fp.stable), _since(now, since, fp.canary)


def _since(now: FamilyStats, then: FamilyStats | None, version: int) -> ArmSample:
    """A version's outcomes since the `then` snapshot: counts are differences of the totals, the
    recent lists are cut to the requests that arrived after it."""
    cur = now.version(version)
    before = then.version(version) if then is not None else None
    requests = cur.requests_total - (before.requests_total if before else 0)
    errors = cur.errors_total - (before.errors_total if before else 0)
    ok = max(requests - errors, 0)
    labels = cur.labels.total - (before.labels.total if before else 0)
    return ArmSample(
        requests=max(requests, 0),
        errors=max(errors, 0),
        latencies_s=cur.latencies_s[-requests:] if requests > 0 else [],
        values=cur.values[-ok:] if ok > 0 else [],
        labels=cur.labels.scores[-labels:] if labels > 0 else [],
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
