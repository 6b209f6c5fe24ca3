"""prepare_model refuses a model the pipeline cannot feed (agent.model.feeds), naming its inputs."""

from __future__ import annotations

import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from agent.util.errors import InputError
from tests.faults.test_config_faults import two_input_model


def test_prepare_model_refuses_a_second_input_naming_the_model_and_its_inputs(demo_dir, tmp_path):
    model = two_input_model(demo_dir, tmp_path)
    cfg = Config.from_node(load_config(str(demo_dir / "demo.yaml"), [f"model.path={model}"]))
    with pytest.raises(InputError) as refused:
        prepare_model(cfg.model)
    assert str(refused.value).startswith(f"model.path: {model} has 2 inputs ['input_3', 'gain']; ")
    assert "feeds only the image input 'input_3' and cannot feed ['gain']" in str(refused.value)


def test_the_configured_image_input_is_the_one_fed(demo_dir, tmp_path):
    model = two_input_model(demo_dir, tmp_path)
    overrides = [f"model.path={model}", "model.input.name=gain"]
    with pytest.raises(InputError, match=r"feeds only the image input 'gain' and cannot feed \['input_3'\]"):
        prepare_model(Config.from_node(load_config(str(demo_dir / "demo.yaml"), overrides)).model)
