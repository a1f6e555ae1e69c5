"""Offline stand-ins for the tools this machine lacks: `kustomize build`, `docker compose config`'s
interpolation, and a PromQL metric/label extractor (through a real PromQL parser).

The kustomize renderer implements exactly the subset deploy/ uses and refuses everything else
(an unknown kustomization field, a patch directive, a generator without disableNameSuffixHash, a
data file outside its kustomization's folder), so a manifest change it cannot render faithfully
fails the tests instead of being silently mis-rendered.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from djserve.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
OVERLAYS = ("gpu", "cpu")
ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_FILE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "dj-universe.json"


# --- kustomize (subset) ----------------------------------------------------------------------

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches", "images", "configMapGenerator", "generatorOptions"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "CustomResourceDefinition", "PriorityClass", "RuntimeClass"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

#: Strategic-merge keys of the Kubernetes lists deploy/ patches (others are replaced, as in k8s).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ports": "containerPort",
}


class KustomizeError(ValueError):
    pass


def _inside(root: Path, path: Path) -> Path:
    """kustomize's load restriction: data files must be in or below the kustomization's folder."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise KustomizeError(f"security; file {resolved} is not in or below {root}")
    return resolved


def _load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def kustomize_build(directory: Path) -> list[dict]:
    """The objects `kustomize build directory` would print (for the supported subset)."""
    root = Path(directory).resolve()
    kfile = root / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"no kustomization.yaml in {root}")
    k = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: fields this renderer does not implement: {sorted(unknown)}")
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        raise KustomizeError(f"{kfile}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")

    objects: list[dict] = []
    for entry in k.get("resources", []):
        target = (root / entry).resolve()
        if target.is_dir():  # a base / another kustomization may live anywhere (like kustomize)
            objects += kustomize_build(target)
        else:
            objects += _load_docs(_inside(root, root / entry).read_text(encoding="utf-8"))

    options = k.get("generatorOptions") or {}
    if set(options) - {"disableNameSuffixHash", "labels"}:
        raise KustomizeError(f"{kfile}: unsupported generatorOptions {sorted(set(options) - {'disableNameSuffixHash', 'labels'})}")
    for gen in k.get("configMapGenerator", []):
        if set(gen) - {"name", "files"}:
            raise KustomizeError(f"{kfile}: unsupported configMapGenerator fields {sorted(set(gen) - {'name', 'files'})}")
        if not options.get("disableNameSuffixHash"):
            raise KustomizeError(f"{kfile}: generated names need disableNameSuffixHash: true here (no hash suffixes)")
        data = {}
        for spec in gen["files"]:
            key, _, rel = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[key] = _inside(root, root / rel).read_text(encoding="utf-8")
        meta: dict[str, Any] = {"name": gen["name"]}
        if options.get("labels"):
            meta["labels"] = dict(options["labels"])
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})

    for entry in k.get("patches", []):
        _apply_patch_entry(root, kfile, entry, objects)

    for image in k.get("images", []):
        _apply_image(image, objects)

    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = k["namespace"]

    seen = set()
    for obj in objects:
        ident = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if ident in seen:
            raise KustomizeError(f"{kfile}: duplicate resource {ident}")
        seen.add(ident)
    return objects


def _apply_patch_entry(root: Path, kfile: Path, entry: dict, objects: list[dict]) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise KustomizeError(f"{kfile}: unsupported patch fields {sorted(set(entry) - {'path', 'patch', 'target'})}")
    text = _inside(root, root / entry["path"]).read_text(encoding="utf-8") if "path" in entry else entry["patch"]
    docs = _load_docs(text)
    if len(docs) == 1 and isinstance(docs[0], list):  # JSON 6902
        target = entry.get("target")
        if not target:
            raise KustomizeError(f"{kfile}: a JSON6902 patch needs a target")
        obj = _find(objects, target, kfile)
        patched = json6902(obj, docs[0])
        obj.clear()
        obj.update(patched)
        return
    for doc in docs:
        target = entry.get("target") or {"kind": doc["kind"], "name": doc["metadata"]["name"]}
        obj = _find(objects, target, kfile)
        merged = strategic_merge(obj, doc)
        obj.clear()
        obj.update(merged)


def _find(objects: list[dict], target: Mapping[str, str], kfile: Path) -> dict:
    if set(target) - {"group", "version", "kind", "name"}:
        raise KustomizeError(f"{kfile}: unsupported target fields {sorted(set(target) - {'group', 'version', 'kind', 'name'})}")
    hits = []
    for obj in objects:
        group, _, version = obj["apiVersion"].rpartition("/")
        if obj["kind"] != target.get("kind", obj["kind"]) or obj["metadata"]["name"] != target.get("name", obj["metadata"]["name"]):
            continue
        if target.get("group", group) != group or target.get("version", version) != version:
            continue
        hits.append(obj)
    if len(hits) != 1:
        raise KustomizeError(f"{kfile}: patch target {dict(target)} matches {len(hits)} resources, not 1")
    return hits[0]


def strategic_merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Kubernetes strategic merge for the lists in MERGE_KEYS; maps merge; anything else replaces."""
    if isinstance(patch, dict):
        directives = [k for k in patch if k.startswith("$")]
        if directives:
            raise KustomizeError(f"patch directives are not supported: {directives}")
        if not isinstance(base, dict):
            return copy.deepcopy(patch)
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(patch, list) and isinstance(base, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out = copy.deepcopy(base)
        for item in patch:
            if not isinstance(item, dict) or mk not in item:
                raise KustomizeError(f"items of {key!r} need their merge key {mk!r}: {item!r}")
            for i, existing in enumerate(out):
                if existing.get(mk) == item[mk]:
                    out[i] = strategic_merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def json6902(doc: Any, operations: list[dict]) -> Any:
    """RFC 6902 add / replace / remove / test (what kustomize's JSON patches use)."""
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, parts = op["op"], [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if kind not in ("add", "replace", "remove", "test"):
            raise KustomizeError(f"unsupported JSON patch op {kind!r}")
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if isinstance(parent, list):
            if kind == "add":
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[int(last)] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[int(last)]
            elif parent[int(last)] != op["value"]:
                raise KustomizeError(f"JSON patch test failed at {op['path']}")
        else:
            if kind in ("replace", "remove", "test") and last not in parent:
                raise KustomizeError(f"JSON patch {kind} of a missing path {op['path']}")
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            elif parent[last] != op["value"]:
                raise KustomizeError(f"JSON patch test failed at {op['path']}")
    return doc


def _apply_image(image: dict, objects: list[dict]) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeError(f"unsupported images fields {sorted(set(image) - {'name', 'newName', 'newTag', 'digest'})}")
    for obj in objects:
        for c in pod_containers(obj):
            name, tag = _split_image(c["image"])
            if name != image["name"]:
                continue
            new = image.get("newName", name)
            if "digest" in image:
                c["image"] = f"{new}@{image['digest']}"
            else:
                c["image"] = f"{new}:{image.get('newTag', tag)}" if image.get("newTag", tag) else new


def _split_image(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        return ref.split("@", 1)[0], None
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, None


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return None


def pod_containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def by_kind(objects: Iterable[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


# --- docker compose ----------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


class InterpolationError(KeyError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation ($VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, $$) over every string of the document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        present, val = name in env, env.get(name, "")
        if op == ":-":
            return val if val else arg
        if op == "-":
            return val if present else arg
        if op == ":?" and not val or op == "?" and not present:
            raise InterpolationError(f"{name}: {arg}")
        return val

    return _INTERPOLATION.sub(sub, value)


def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose(env: Mapping[str, str] | None = None) -> dict:
    """The compose file after interpolation with `env` (default: the required secrets set to test values)."""
    return interpolate(compose_raw(), dict(TEST_ENV if env is None else env))


TEST_ENV = {"TRITON_ADMIN_KEY": "test-admin-key-0123456789abcdef", "POSTGRES_PASSWORD": "test-pg", "GRAFANA_ADMIN_PASSWORD": "test-grafana"}


def parse_port(spec: str | int | dict) -> tuple[str | None, int, int]:
    """(host ip, published, target) of a compose port entry (short or long syntax)."""
    if isinstance(spec, dict):
        return spec.get("host_ip"), int(spec["published"]), int(spec["target"])
    parts = str(spec).split("/")[0].rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], int(parts[1]), int(parts[2])
    if len(parts) == 2:
        return None, int(parts[0]), int(parts[1])
    return None, int(parts[0]), int(parts[0])


@dataclass
class Volume:
    source: str
    target: str
    read_only: bool
    bind: bool


def parse_volume(spec: str | dict) -> Volume:
    if isinstance(spec, dict):
        return Volume(spec["source"], spec["target"], bool(spec.get("read_only")), spec.get("type") == "bind")
    parts = spec.split(":")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) > 2 else "rw"
    return Volume(source, target, "ro" in mode.split(","), source.startswith((".", "/", "~")))


# --- PromQL ------------------------------------------------------------------------------------

#: Grafana's built-in interval variables, replaced by a duration before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s", "${__interval}": "15s", "$__range": "1h"}
#: Labels Prometheus attaches to every scraped series (not in the exporter's own output).
TARGET_LABELS = {"job", "instance"}
#: Series Prometheus makes itself for every target (not exported by the stack).
SYNTHETIC_SERIES = {"up": set(), "scrape_duration_seconds": set(), "scrape_samples_scraped": set()}


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    if "$" in expr.replace("$labels", "").replace("$value", ""):
        raise ValueError(f"unresolved template variable in {expr!r}")
    return expr


@dataclass
class Selector:
    name: str
    matchers: dict[str, tuple[str, str]]
    """label -> (operator, value)"""


@dataclass
class Grouping:
    labels: list[str]
    selectors: list[Selector] = field(default_factory=list)
    where: str = ""


def analyse(expr: str) -> tuple[list[Selector], list[Grouping]]:
    """Every vector selector (metric name and matchers) of a PromQL expression, and every label list
    (`by`, `without`, `on`, `ignoring`, `group_left/right`) with the selectors it applies to."""
    import promql_parser as pp

    ast = pp.parse(expr)  # raises on a syntax error

    def selectors_of(node) -> list[Selector]:
        found: list[Selector] = []

        def visit(n):
            if isinstance(n, pp.VectorSelector):
                matchers = {m.name: (str(m.op).rsplit(".", 1)[-1], m.value) for m in n.matchers.matchers}
                name = n.name or (matchers.pop("__name__", ("", ""))[1])
                if not name:
                    raise ValueError(f"a selector without a metric name in {expr!r}")
                found.append(Selector(name, matchers))
            return True

        pp.walk(node, visit)
        return found

    groupings: list[Grouping] = []

    def visit(n):
        if isinstance(n, pp.AggregateExpr) and n.modifier is not None:
            groupings.append(Grouping(list(n.modifier.labels), selectors_of(n.expr), f"{n.op} {n.modifier}"))
        if isinstance(n, pp.BinaryExpr) and n.modifier is not None:
            labels = []
            if n.modifier.matching is not None:
                labels += list(n.modifier.matching.labels)
            labels += list(n.modifier.group_labels or [])
            if labels:
                groupings.append(Grouping(labels, selectors_of(n.lhs) + selectors_of(n.rhs), str(n.modifier)))
        return True

    pp.walk(ast, visit)
    return selectors_of(ast), groupings


# --- the queries of the dashboard and the alert rules --------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def dashboard_panels(dash: dict | None = None) -> list[dict]:
    out = []
    for p in (dash or dashboard())["panels"]:
        out.append(p)
        out += p.get("panels", [])  # panels inside collapsed rows
    return out


def alert_rules(doc: dict | None = None) -> list[dict]:
    doc = doc if doc is not None else yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def all_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and alert rule."""
    out = [(f"panel {p['title']!r}", grafana_to_promql(t["expr"])) for p in dashboard_panels() for t in p.get("targets", [])]
    out += [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    return out


# --- Prometheus text exposition ------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+\S+(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


def scrape_samples(text: str) -> list[tuple[str, dict[str, str]]]:
    """(series name, labels) of every sample line of a /metrics page, named as Prometheus stores
    them (prometheus_client's parser would rename counters to `<name>_total`, Prometheus does not)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = {}
        rest = m.group("labels") or ""
        pos = 0
        while pos < len(rest):
            lm = _LABEL.match(rest, pos)
            if not lm:
                raise ValueError(f"bad labels in {line!r}")
            labels[lm.group("key")] = lm.group("value")
            pos = lm.end()
        out.append((m.group("name"), labels))
    return out


def scrape_series(text: str) -> dict[str, set[str]]:
    """series name -> the label names seen on it."""
    out: dict[str, set[str]] = {}
    for name, labels in scrape_samples(text):
        out.setdefault(name, set()).update(labels)
    return out


def scrape_values(text: str, name: str, label: str) -> set[str]:
    return {labels[label] for n, labels in scrape_samples(text) if n == name and label in labels}


def query_problems(queries: list[tuple[str, str]], series: Mapping[str, set[str]]) -> tuple[list[str], set[str]]:
    """What the queries ask for that the scraped series lack: metric names, labels in matchers, labels
    in `by`/`on`/`ignoring` lists (each must exist on at least one metric the list applies to).
    Returns (problems, the exported metric names the queries use)."""
    problems: list[str] = []
    used: set[str] = set()
    for where, expr in queries:
        selectors, groupings = analyse(expr)
        for s in selectors:
            if s.name in SYNTHETIC_SERIES:  # made by Prometheus for each target (up)
                known = TARGET_LABELS
            elif s.name not in series:
                problems.append(f"{where}: {s.name} is not exported")
                continue
            else:
                known = set(series[s.name]) | TARGET_LABELS
                used.add(s.name)
            problems += [f"{where}: {s.name} has no label {label!r}" for label in s.matchers if label not in known]
        for g in groupings:
            known = set(TARGET_LABELS)
            for s in g.selectors:
                known |= set(series.get(s.name, ()))
            problems += [f"{where}: `{g.where}` uses label {label!r} that none of its metrics has" for label in g.labels if label not in known]
    return problems, used
