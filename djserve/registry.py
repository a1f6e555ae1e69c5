"""The MLflow model registry as the record of truth for which checkpoint serves each model family.

One registered model per exported Triton model (family). The design documents name them
`ai-judge-{genre}`, `recommendations`, `sentiment-analysis`; here a single judge model serves every
genre (the genre is an input), so the judge is registered once as `ai-judge`, without a genre suffix.

Every registration is one MLflow run (params, parity metrics, spec and parity report, the source
checkpoint) plus a model version whose source is that run's `checkpoint` artifact. Promotion state
lives in registry aliases (`champion`, `challenger`); every promotion step is also appended to
`<state_dir>/promotions.jsonl` and tagged on the model version, so the history survives alias moves.

Only `MlflowClient` objects bound to explicit URIs are used, never the fluent API's global tracking
URI, so several registries on different stores can coexist in one process.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

REGISTERED_NAMES: dict[str, str] = {
    "judge": "ai-judge",
    "technical": "ai-technical",
    "creative": "ai-creative",
    "beat_tracker": "ai-beat-tracker",
    "sentiment": "sentiment-analysis",
    "recommender": "recommendations",
}
_FAMILIES: dict[str, str] = {v: k for k, v in REGISTERED_NAMES.items()}

CHAMPION = "champion"
CHALLENGER = "challenger"

CHECKPOINT_ARTIFACT = "checkpoint"
METRIC_TAG = "metric."
"""Prefix of the model-version tags that carry its held-out metrics (`metric.overall.r2`)."""
LOG_NAME = "promotions.jsonl"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


def registered_name(family: str) -> str:
    try:
        return REGISTERED_NAMES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(REGISTERED_NAMES)}") from None


def family_of(name: str) -> str:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown registered model {name!r}; known: {', '.join(_FAMILIES)}") from None


def tracking_uri(state_dir: Path) -> str:
    """MLFLOW_TRACKING_URI when set (a shared server or DB), else an embedded sqlite store in state_dir."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state_dir.resolve()}/mlflow.db"


_default_tracking_uri = tracking_uri  # Registry.__init__'s parameter shadows the function's name


def _artifact_location(uri: str, state_dir: Path) -> str | None:
    """Where new experiments keep artifacts: beside a local sqlite file, else the server decides.

    Without this, a sqlite store would put artifacts under the current working directory.
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    root = db.parent if db.is_absolute() else state_dir
    return (root.resolve() / "mlartifacts").as_uri()


@dataclass
class RegisteredVersion:
    family: str
    name: str
    version: int
    run_id: str
    source: str  # artifact URI of the checkpoint


class Registry:
    def __init__(self, state_dir: Path, tracking_uri: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri or _default_tracking_uri(self.state_dir)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.log_path = self.state_dir / LOG_NAME

    # -- registration ---------------------------------------------------------------------------

    def _experiment_id(self, family: str) -> str:
        name = f"djserve-{family}"
        if exp := self.client.get_experiment_by_name(name):
            return exp.experiment_id
        return self.client.create_experiment(
            name, artifact_location=_artifact_location(self.tracking_uri, self.state_dir)
        )

    def start_run(self, family: str, tags: dict[str, str] | None = None, run_name: str | None = None) -> str:
        """A new run in the family's experiment (`djserve-<family>`); returns its id."""
        run = self.client.create_run(self._experiment_id(family), tags={"family": family, **(tags or {})}, run_name=run_name)
        return run.info.run_id

    def log_checkpoint(self, run_id: str, checkpoint: Path) -> None:
        """The checkpoint as the run's `checkpoint/` artifact. Always one entry under it (the file,
        or the directory by its own name): the original name survives and download_checkpoint can
        tell a file from a directory."""
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        if checkpoint.is_dir():
            self.client.log_artifacts(run_id, str(checkpoint), f"{CHECKPOINT_ARTIFACT}/{checkpoint.name}")
        else:
            self.client.log_artifact(run_id, str(checkpoint), CHECKPOINT_ARTIFACT)

    def log_json(self, run_id: str, file_name: str, payload: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / file_name
            path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
            self.client.log_artifact(run_id, str(path))

    def create_version(self, family: str, run_id: str, tags: dict[str, str]) -> RegisteredVersion:
        """Register the run's checkpoint artifact as the next version of the family's model."""
        name = registered_name(family)
        try:
            self.client.get_registered_model(name)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(name, tags={"family": family})
        source = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{CHECKPOINT_ARTIFACT}"
        mv = self.client.create_model_version(name, source, run_id=run_id, tags={"family": family, **tags})
        return RegisteredVersion(family, name, int(mv.version), run_id, source)

    def register(
        self,
        family: str,
        checkpoint: Path,
        *,
        weights: str,
        parity: dict[str, Any],
        spec: dict[str, Any],
        extra_tags: dict[str, str] | None = None,
    ) -> RegisteredVersion:
        """An exported checkpoint as one run (parity figures, spec, checkpoint) and a model version."""
        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        c = self.client
        run_id = self.start_run(family, extra_tags)
        try:
            c.log_param(run_id, "family", family)
            c.log_param(run_id, "weights", weights)
            for output, diff in (parity.get("max_abs_diff") or {}).items():
                c.log_metric(run_id, f"parity_max_abs_diff_{output}", float(diff))
            self.log_json(run_id, "spec.json", spec)
            self.log_json(run_id, "parity.json", parity)
            self.log_checkpoint(run_id, checkpoint)
        except BaseException:
            c.set_terminated(run_id, status="FAILED")
            raise
        c.set_terminated(run_id)
        return self.create_version(family, run_id, {"weights": weights, **(extra_tags or {})})

    def provenance(self, rv: "RegisteredVersion") -> dict[str, Any]:
        """Where a registered version's weights come from, as its tags record it (training run,
        dataset, held-out metrics): copied into every Triton version exported from it."""
        mv = self.client.get_model_version(rv.name, str(rv.version))
        tags = dict(mv.tags)
        metrics = {k.removeprefix(METRIC_TAG): float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}
        keep = {k: v for k, v in tags.items() if not k.startswith(METRIC_TAG) and not k.startswith("djserve.")}
        return {"registry": f"models:/{rv.name}/{rv.version}", "run_id": rv.run_id, **keep, **({"metrics": metrics} if metrics else {})}

    # -- lookup ----------------------------------------------------------------------------------

    def resolve(self, uri: str) -> RegisteredVersion:
        """A `models:/NAME/VERSION` or `models:/NAME@ALIAS` URI as a RegisteredVersion."""
        m = _MODELS_URI.match(uri)
        if not m:
            raise ValueError(f"not a model URI: {uri!r} (expected models:/NAME/VERSION or models:/NAME@ALIAS)")
        name, version, alias = m["name"], m["version"], m["alias"]
        family = family_of(name)
        if alias is not None:
            found = self.aliases(family).get(alias)
            if found is None:
                raise ValueError(f"{uri}: registered model {name!r} has no alias {alias!r}")
            version = str(found)
        if not version.isdigit():
            raise ValueError(f"{uri}: version must be a positive integer, got {version!r}")
        try:
            mv = self.client.get_model_version(name, version)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ValueError(f"{uri}: registered model {name!r} has no version {version}") from None
        return RegisteredVersion(mv.tags.get("family", family), name, int(mv.version), mv.run_id, mv.source)

    def run_json(self, run_id: str, file_name: str) -> Any | None:
        """A JSON artifact of a run (e.g. a training run's `evaluation.json`), None if it has none."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run_id, file_name, tmp)
            except (MlflowException, OSError):
                return None
            return json.loads(Path(path).read_text())

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    def download_checkpoint(self, rv: RegisteredVersion, target_dir: Path) -> Path:
        """The checkpoint as a local path: the single file, or the directory (as registered)."""
        target_dir = Path(target_dir)
        target_dir.mkdir(parents=True, exist_ok=True)
        entries = self.client.list_artifacts(rv.run_id, CHECKPOINT_ARTIFACT)
        if len(entries) != 1:
            raise ValueError(
                f"{rv.name} v{rv.version}: expected one checkpoint entry in run {rv.run_id}, found {len(entries)}"
            )
        local = self.client.download_artifacts(rv.run_id, entries[0].path, str(target_dir))
        return Path(local)

    def latest_versions(self, family: str) -> list[int]:
        """Every version number of the family's registered model, newest first ([] if none)."""
        name = registered_name(family)
        return sorted((int(mv.version) for mv in self.client.search_model_versions(f"name = '{name}'")), reverse=True)

    # -- aliases ---------------------------------------------------------------------------------

    def aliases(self, family: str) -> dict[str, int]:
        try:
            model = self.client.get_registered_model(registered_name(family))
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return {}
        return {alias: int(version) for alias, version in model.aliases.items()}

    def alias_version(self, family: str, alias: str) -> int | None:
        return self.aliases(family).get(alias)

    def set_alias(self, family: str, alias: str, version: int) -> None:
        name = registered_name(family)
        try:
            self.client.set_registered_model_alias(name, alias, str(version))
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ValueError(f"cannot set {name}@{alias}: {e.message}") from None

    def delete_alias(self, family: str, alias: str) -> None:
        """Idempotent: a missing alias (or model) is not an error."""
        if alias in self.aliases(family):
            self.client.delete_registered_model_alias(registered_name(family), alias)

    # -- promotion log ---------------------------------------------------------------------------

    def record(self, family: str, action: str, **fields: Any) -> dict[str, Any]:
        """Append one promotion step to the JSON-lines log (and tag the model version it concerns)."""
        name = registered_name(family)
        entry = {
            "time": datetime.now(timezone.utc).isoformat(),
            "action": action,
            "family": family,
            "actor": os.environ.get("USER") or "unknown",
            **fields,
        }
        line = json.dumps(entry, sort_keys=True)  # not serialisable: fails before anything is written
        # Tag first: a step about a version that does not exist must not reach the log.
        if fields.get("version") is not None:
            self.client.set_model_version_tag(
                name, str(fields["version"]), f"djserve.{action}", json.dumps(fields, sort_keys=True)
            )
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return entry

    def history(self, family: str | None = None) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [e for e in entries if family is None or e.get("family") == family]
