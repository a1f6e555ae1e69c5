"""The offline stand-ins of tests/deploy/support.py behave like the tools they replace."""

from __future__ import annotations

import textwrap

import pytest

from tests.deploy.support import (
    InterpolationError,
    KustomizeError,
    analyse,
    grafana_to_promql,
    interpolate,
    json6902,
    kustomize_build,
    parse_port,
    parse_volume,
    strategic_merge,
)


def test_strategic_merge_merges_containers_env_and_maps_and_replaces_other_lists():
    base = {
        "spec": {
            "nodeSelector": {"a": "1"},
            "tolerations": [{"key": "x", "operator": "Exists"}],
            "containers": [
                {"name": "one", "args": ["--a"], "env": [{"name": "K", "value": "1"}], "resources": {"limits": {"memory": "1Gi"}}},
                {"name": "two", "image": "img"},
            ],
        }
    }
    patch = {
        "spec": {
            "nodeSelector": {"b": "2"},
            "tolerations": [{"key": "y", "operator": "Exists"}],
            "containers": [{"name": "one", "args": ["--b"], "env": [{"name": "K", "value": "2"}, {"name": "L", "value": "3"}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        }
    }
    out = strategic_merge(base, patch)["spec"]
    assert out["nodeSelector"] == {"a": "1", "b": "2"}
    assert out["tolerations"] == [{"key": "y", "operator": "Exists"}]  # no merge key: replaced
    one, two = out["containers"]
    assert one["args"] == ["--b"]  # plain lists are replaced, as Kubernetes does
    assert one["env"] == [{"name": "K", "value": "2"}, {"name": "L", "value": "3"}]
    assert one["resources"]["limits"] == {"memory": "1Gi", "nvidia.com/gpu": 1}
    assert two == {"name": "two", "image": "img"}
    with pytest.raises(KustomizeError, match="directives"):
        strategic_merge(base, {"spec": {"$patch": "delete"}})


def test_json6902_add_append_replace_remove_test():
    doc = {"a": {"list": [1, 2]}, "b": 1}
    out = json6902(doc, [
        {"op": "add", "path": "/a/list/-", "value": 3},
        {"op": "add", "path": "/a/list/0", "value": 0},
        {"op": "replace", "path": "/b", "value": 2},
        {"op": "add", "path": "/c~1d", "value": "x"},
        {"op": "test", "path": "/b", "value": 2},
        {"op": "remove", "path": "/a/list/1"},
    ])
    assert out == {"a": {"list": [0, 2, 3]}, "b": 2, "c/d": "x"}
    assert doc == {"a": {"list": [1, 2]}, "b": 1}  # the input is untouched
    with pytest.raises(KustomizeError):
        json6902(doc, [{"op": "replace", "path": "/missing", "value": 1}])
    with pytest.raises(KustomizeError):
        json6902(doc, [{"op": "move", "from": "/b", "path": "/c"}])


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_kustomize_subset_bases_generators_patches_images_namespace(tmp_path):
    _write(tmp_path / "data" / "kustomization.yaml", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        generatorOptions: {disableNameSuffixHash: true, labels: {x: "1"}}
        configMapGenerator:
          - name: cfg
            files: [key.json=policy.json]
        """)
    _write(tmp_path / "data" / "policy.json", '{"a": 1}\n')
    _write(tmp_path / "base" / "kustomization.yaml", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        namespace: ns
        resources: [../data, app.yaml]
        images:
          - {name: app, newTag: "2"}
        """)
    _write(tmp_path / "base" / "app.yaml", """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: app}
        spec:
          template:
            spec:
              containers:
                - {name: app, image: app:1, args: [--a]}
        """)
    _write(tmp_path / "overlay" / "kustomization.yaml", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources: [../base]
        patches:
          - path: patch.yaml
          - target: {kind: Deployment, name: app}
            patch: |-
              - {op: add, path: /spec/template/spec/containers/0/args/-, value: --b}
        images:
          - {name: app, newName: registry/app}
        """)
    _write(tmp_path / "overlay" / "patch.yaml", """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: app}
        spec:
          template:
            spec:
              containers:
                - {name: app, env: [{name: E, value: v}]}
        """)
    cm, dep = kustomize_build(tmp_path / "overlay")
    assert cm["metadata"] == {"name": "cfg", "labels": {"x": "1"}, "namespace": "ns"}
    assert cm["data"] == {"key.json": '{"a": 1}\n'}
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry/app:2"
    assert c["args"] == ["--a", "--b"]
    assert c["env"] == [{"name": "E", "value": "v"}]

    # kustomize's load restriction and everything the renderer does not implement are refused.
    _write(tmp_path / "bad" / "kustomization.yaml", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        generatorOptions: {disableNameSuffixHash: true}
        configMapGenerator:
          - {name: cfg, files: [../data/policy.json]}
        """)
    with pytest.raises(KustomizeError, match="not in or below"):
        kustomize_build(tmp_path / "bad")
    _write(tmp_path / "bad" / "kustomization.yaml", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        commonLabels: {a: b}
        """)
    with pytest.raises(KustomizeError, match="commonLabels"):
        kustomize_build(tmp_path / "bad")


def test_compose_interpolation():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET:-d}-${EMPTY:-d}-${EMPTY-d}-$SET-$$HOME", env) == "v-d-d--v-$HOME"
    assert interpolate({"a": ["${SET:?need it}"]}, env) == {"a": ["v"]}
    with pytest.raises(InterpolationError, match="UNSET"):
        interpolate("${UNSET:?set UNSET}", env)
    with pytest.raises(InterpolationError):
        interpolate("${EMPTY:?set EMPTY}", env)
    assert parse_port("127.0.0.1:8000:8001") == ("127.0.0.1", 8000, 8001)
    assert parse_port("3001:3000") == (None, 3001, 3000)
    v = parse_volume("./deploy/policy:/etc/djserve/policy:ro")
    assert (v.source, v.target, v.read_only, v.bind) == ("./deploy/policy", "/etc/djserve/policy", True, True)
    assert parse_volume("pgdata:/var/lib/postgresql/data").bind is False


def test_promql_analysis_finds_metrics_and_label_lists_not_functions_or_keywords():
    expr = grafana_to_promql(
        'sum by (model_type, version) (rate(ai_model_predictions_total{status="error"}[$__rate_interval]))'
        ' / ignoring(version) group_left sum by (model_type) (rate(ai_model_predictions_total[5m]))'
        ' and on() absent(up{job="triton"} == 1) or histogram_quantile(0.9, rate(x_bucket[1m])) > bool 0'
        ' unless deriv((sum without (le) (rate({__name__="y_sum"}[5m])))[15m:1m]) > 0'
    )
    selectors, groupings = analyse(expr)
    assert [s.name for s in selectors] == ["ai_model_predictions_total", "ai_model_predictions_total", "up", "x_bucket", "y_sum"]
    assert selectors[0].matchers == {"status": ("Equal", "error")}
    assert selectors[2].matchers == {"job": ("Equal", "triton")}
    labels = sorted(tuple(g.labels) for g in groupings)
    assert ("model_type", "version") in labels and ("version",) in labels and ("le",) in labels
    with pytest.raises(Exception):
        analyse("sum(rate(x[5m])")  # a syntax error is an error, not an empty result
    with pytest.raises(ValueError, match="template variable"):
        grafana_to_promql("rate(x{model_type=~\"$model\"}[5m])")


def test_scrape_parser_keeps_series_names_as_prometheus_stores_them():
    from tests.deploy.support import scrape_series, scrape_values

    text = (
        "# HELP nv_inference_count Number of inferences performed\n"
        "# TYPE nv_inference_count counter\n"
        'nv_inference_count{model="judge",version="1"} 12\n'
        'ai_model_predictions_total{model_type="x",genre="a, \\"b\\"",status="success"} 1.0 1700000000000\n'
        "up 1\n"
    )
    assert scrape_series(text) == {
        "nv_inference_count": {"model", "version"},  # no `_total` added to a counter
        "ai_model_predictions_total": {"model_type", "genre", "status"},
        "up": set(),
    }
    assert scrape_values(text, "ai_model_predictions_total", "genre") == {'a, \\"b\\"'}


def test_the_exported_metric_check_reports_missing_metrics_and_labels():
    from tests.deploy.support import query_problems

    series = {"nv_inference_count": {"model", "version"}, "ai_model_predictions_total": {"model_type", "status"}}
    ok = [("a", 'sum by (model) (rate(nv_inference_count{job="triton"}[5m]))'), ("b", 'absent(up{job="gateway"} == 1)')]
    assert query_problems(ok, series) == ([], {"nv_inference_count"})
    bad = [
        ("missing", "rate(nv_inference_count_total[5m])"),
        ("label", 'rate(ai_model_predictions_total{model="x"}[5m])'),
        ("by", "sum by (model_name) (rate(nv_inference_count[5m]))"),
        ("ignoring", "sum by (model_type, version) (rate(ai_model_predictions_total[5m])) / ignoring(version) group_left sum by (model_type) (rate(ai_model_predictions_total[5m]))"),
    ]
    problems, _ = query_problems(bad, series)
    assert [p.split(":")[0] for p in problems] == ["missing", "label", "by", "ignoring", "ignoring"]
