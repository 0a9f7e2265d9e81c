import json

import pytest

from foleyflow.errors import InputError
from foleyflow.training.config import TrainConfig, load_train_config, save_train_config


def test_config_round_trips_through_json(tmp_path):
    config = TrainConfig.from_dict({"recipe": "toy", "optimizer": {"lr": 3e-5, "betas": [0.9, 0.99]}, "group_optimizers": {"discriminator": {"lr": 1e-4}}})
    save_train_config(config, tmp_path / "c.json")
    again = load_train_config(tmp_path / "c.json")
    assert again == config
    assert again.optimizer.betas == (0.9, 0.99)


def test_group_overrides_apply_on_top_of_the_default_optimizer():
    config = TrainConfig.from_dict({"recipe": "toy", "optimizer": {"lr": 3e-5, "warmup_steps": 7}, "group_optimizers": {"d": {"lr": 1e-4}}})
    assert config.optimizer_for("d").lr == 1e-4 and config.optimizer_for("d").warmup_steps == 7
    assert config.optimizer_for("g").lr == 3e-5


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"recipe": "toy", "max_step": 3}, "unknown key(s) max_step"),
        ({"recipe": "toy", "optimizer": {"lr": "fast"}}, "config.optimizer.lr: expected float"),
        ({"recipe": "toy", "batch_size": 0}, "batch_size must be >= 1"),
        ({"recipe": "toy", "mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"recipe": "toy", "optimizer": {"lr_schedule": "step"}}, "lr_schedule must be one of"),
        ({"max_steps": 3}, "recipe"),
    ],
)
def test_bad_configs_are_refused_naming_the_key(data, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_dict(data)


def test_dotted_overrides_and_bad_files(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"recipe": "toy"}))
    config = load_train_config(path, {"optimizer.lr": 0.5, "max_steps": 9})
    assert config.optimizer.lr == 0.5 and config.max_steps == 9
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_train_config(path)
    with pytest.raises(InputError, match="no such config"):
        load_train_config(tmp_path / "missing.json")


def test_shipped_configs_parse_including_their_recipe_options():
    from pathlib import Path

    from foleyflow.training.config import dataclass_from_dict
    from foleyflow.training.recipes.toy import ToyOptions
    from foleyflow.training.recipes.tta import TTAOptions

    options = {"toy": ToyOptions, "tta": TTAOptions}
    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))
    assert {"toy.json", "tta-cpu-small.json", "tta-paper.json"} <= {path.name for path in paths}
    for path in paths:
        config = load_train_config(path)
        if config.recipe in options:  # other recipes test their own options
            dataclass_from_dict(options[config.recipe], config.recipe_options, f"{path.name}: recipe_options")


def test_paths_expand_foleyflow_home(monkeypatch, tmp_path):
    from foleyflow.training.config import expand_path

    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path))
    assert expand_path("$FOLEYFLOW_HOME/runs/x") == f"{tmp_path}/runs/x" and expand_path("default") == "default"
    assert TrainConfig.from_dict({"recipe": "toy", "output_dir": "$FOLEYFLOW_HOME/r"}).run_dir() == tmp_path / "r"


def test_the_train_commands_register_without_importing_torch():
    import subprocess
    import sys

    from training_helpers import subprocess_env

    code = "import sys; import foleyflow.interfaces.commands.train; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
