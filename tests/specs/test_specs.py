"""The specs are consistent with each other and with the committed repository."""

import pytest

from djserve.repository import render_config
from djserve.specs import ALL, ENSEMBLES, EXPORTED, PYTHON_STEPS
from tests.conftest import COMMITTED_REPOSITORY


@pytest.mark.parametrize("name", list(ALL))
def test_committed_config_is_rendered_from_spec(name):
    path = COMMITTED_REPOSITORY / name / "config.pbtxt"
    assert path.read_text() == render_config(ALL[name]), f"run `djserve configs` to regenerate {path}"


@pytest.mark.parametrize("name", list(ENSEMBLES))
def test_ensemble_steps_connect_existing_tensors_with_matching_types(name):
    ensemble = ENSEMBLES[name]
    produced = {t.name: t for t in ensemble.inputs}
    for step in ensemble.steps:
        member = ALL[step.model]
        assert set(step.input_map) == set(member.input_names), step.model
        for member_input, tensor in step.input_map.items():
            assert tensor in produced, f"{step.model} reads {tensor} before any step produces it"
            assert (produced[tensor].dtype, produced[tensor].dims) == (
                member.input(member_input).dtype,
                member.input(member_input).dims,
            )
        for member_output, tensor in step.output_map.items():
            produced[tensor] = member.output(member_output)
        assert ensemble.batching.max_batch_size <= member.batching.max_batch_size
    for out in ensemble.outputs:
        assert out.name in produced and produced[out.name].dims == out.dims


def test_every_python_step_has_its_code_committed():
    for name in PYTHON_STEPS:
        assert (COMMITTED_REPOSITORY / name / "1" / "model.py").is_file()


@pytest.mark.parametrize("name", list(EXPORTED))
def test_exported_models_label_their_score_outputs(name):
    spec = EXPORTED[name]
    for out in spec.outputs:
        if out.labels:
            assert len(out.labels) == out.dims[-1]


def test_readme_model_table_is_the_specs():
    from typer.testing import CliRunner

    from djserve.cli import app
    from djserve.settings import PROJECT_ROOT

    table = CliRunner().invoke(app, ["models", "--markdown"]).output.strip()
    assert table in (PROJECT_ROOT / "README.md").read_text(), "update the README's model table (djserve models --markdown)"
