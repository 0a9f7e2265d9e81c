"""The edit recipe: which weights learn, instruction dropout, time sampling, both objectives, export."""

import numpy as np
import pytest
import torch
from editor_tiny import TinyTextEncoder, tiny_unet_config

from foleyflow.errors import InputError
from foleyflow.pipelines.editor import Editor
from foleyflow.training.recipes.edit import EditRecipe

TINY = dict(
    unet=tiny_unet_config(),
    text_encoder={"factory": "editor_tiny:TinyTextEncoder"},
    codec={"factory": "editor_tiny:make_reshape_codec"},
    editor={"window_seconds": 0.064, "overlap_seconds": 0.016, "steps": 2},
)


def _batch(size: int = 2) -> dict:
    rng = np.random.default_rng(0)
    items = [
        {"source": rng.standard_normal(1024).astype(np.float32), "target": rng.standard_normal(1024).astype(np.float32), "instruction": f"Add thing {i}"}
        for i in range(size)
    ]
    return EditRecipe(**TINY).collate(items)


@pytest.mark.parametrize("objective", ["flow", "ddpm"])
def test_only_the_unet_and_the_lora_adapters_receive_gradients(objective):
    recipe = EditRecipe(**TINY, objective=objective)
    modules = recipe.build()
    loss, logs = recipe.losses(modules, _batch(), "main", 0)
    loss.backward()
    assert np.isfinite(logs["loss"]) and loss.item() > 0
    assert all(p.grad is not None for p in modules["unet"].parameters() if p.requires_grad)
    text = dict(modules["text_encoder"].named_parameters())
    assert {n for n, p in text.items() if p.grad is not None} == {n for n in text if "lora_" in n} != set()
    assert all(p.grad is None and not p.requires_grad for n, p in text.items() if "lora_" not in n)
    assert list(modules["codec"].parameters()) == [] or all(p.grad is None for p in modules["codec"].parameters())
    assert recipe.optimizer_groups() == {"main": ["unet", "text_encoder"]}


def test_flow_loss_is_the_velocity_error_at_the_sampled_point():
    """With a network that outputs zeros, (3) equals E||v_target||^2 = E||x_0 - eps||^2 (sigma_min 0)."""
    recipe = EditRecipe(**TINY, sigma_min=0.0)
    modules = dict(recipe.build())

    class Zero(torch.nn.Module):
        def forward(self, sample, t, encoder_hidden_states, encoder_attention_mask=None):
            return type("O", (), {"sample": torch.zeros(sample.shape[0], 8, *sample.shape[2:])})()

    modules["unet"] = Zero()
    batch = _batch()
    torch.manual_seed(1)
    loss = recipe.objective_loss(modules, batch, batch["instruction"])
    torch.manual_seed(1)
    x_0 = modules["codec"].encode(batch["target"])
    eps = torch.randn_like(x_0)
    assert loss.item() == pytest.approx(torch.mean((x_0 - eps) ** 2).item(), rel=1e-5)


def test_instruction_dropout_replaces_instructions_with_the_null_instruction():
    torch.manual_seed(0)
    dropped = EditRecipe(**TINY, instruction_dropout=0.5).drop_instructions(["Add rain"] * 400)
    share = dropped.count("") / 400
    assert set(dropped) == {"", "Add rain"} and 0.4 < share < 0.6
    assert EditRecipe(**TINY, instruction_dropout=0.0).drop_instructions(["x"] * 50) == ["x"] * 50


@pytest.mark.parametrize("sampling", ["uniform", "logit-normal"])
def test_time_sampling_stays_inside_the_unit_interval(sampling):
    torch.manual_seed(0)
    t = EditRecipe(**TINY, time_sampling=sampling).sample_t(4000)
    assert t.min() > 0 and t.max() < 1
    spread = (t - 0.5).abs().mean().item()
    assert spread == pytest.approx(0.25, abs=0.02) if sampling == "uniform" else spread < 0.22


def test_validation_is_deterministic():
    recipe = EditRecipe(**TINY)
    modules = recipe.build()
    batch = _batch()
    assert recipe.validate(modules, batch) == recipe.validate(modules, batch)


def test_export_writes_an_editor_that_loads_and_edits(tmp_path):
    recipe = EditRecipe(**TINY, objective="ddpm")
    modules = recipe.build()
    recipe.export(modules, tmp_path / "model", "# card\n")
    editor = Editor.from_pretrained(tmp_path / "model")
    assert editor.config.objective == "ddpm" and editor.config.steps == 2
    assert editor.edit(np.zeros(500, np.float32), "Add rain").audio.shape == (500,)


@pytest.mark.parametrize("bad", [dict(objective="vpred"), dict(time_sampling="beta"), dict(instruction_dropout=1.0), dict(colour="red")])
def test_bad_options_are_input_errors(bad):
    with pytest.raises(InputError):
        EditRecipe(**{**TINY, **bad})


def test_lora_text_encoder_keeps_its_base_frozen():
    encoder = TinyTextEncoder()
    assert {n for n, p in encoder.named_parameters() if p.requires_grad} == {n for n, _ in encoder.named_parameters() if "lora_" in n}


def test_a_short_run_of_the_shared_trainer_exports_a_working_editor(tmp_path):
    from foleyflow.training.config import TrainConfig
    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    options = {**TINY, "data": {"factory": "editor_tiny:TinyTriplets"}}
    config = TrainConfig.from_dict(
        {"recipe": "edit", "recipe_options": options, "max_steps": 3, "batch_size": 2, "val_every": 3, "val_batches": 1,
         "checkpoint_every": 3, "log_every": 1, "output_dir": str(tmp_path / "run")}
    )
    result = Trainer(config, build_recipe("edit", options)).fit()
    editor = Editor.from_pretrained(result.model_dir)
    assert result.step == 3 and editor.edit(np.zeros(1024, np.float32), "Add a tone").audio.shape == (1024,)


@pytest.mark.parametrize("name", ["edit-cpu-small", "edit-paper"])
def test_shipped_configs_parse(name):
    from pathlib import Path

    from foleyflow.training.config import load_train_config

    config = load_train_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.json")
    recipe = EditRecipe(config.recipe_options)
    assert config.recipe == "edit" and recipe.options.objective == "flow" and recipe.options.unet["in_channels"] == 16
