"""The edit recipe: which weights learn, instruction dropout, time sampling, both objectives, export."""

import warnings

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
        {"source": rng.standard_normal(1024).astype(np.float32), "target": rng.standard_normal(1024).astype(np.float32), "instruction": f"Add thing {i}",
         "edit_spans": [[160 * 2, 160 * 4]]}
        for i in range(size)
    ]
    return EditRecipe(**TINY).collate(items)


def _zero_network_loss(recipe: EditRecipe):
    """(loss, x_0, x_T, eps, times seen): the recipe's loss for a UNet that outputs zeros, and the
    latents and noise it drew (same seed), so a test can compute the loss in closed form."""
    modules, times = dict(recipe.build()), []

    class Zero(torch.nn.Module):
        def forward(self, sample, t, encoder_hidden_states, encoder_attention_mask=None):
            times.append(t)
            return type("O", (), {"sample": torch.zeros(sample.shape[0], 8, *sample.shape[2:])})()

    modules["unet"] = Zero()
    batch = _batch()
    torch.manual_seed(1)
    loss = recipe.objective_losses(modules, batch, batch["instruction"], crop=False)["loss"]
    torch.manual_seed(1)
    x_0, source = modules["codec"].encode(batch["target"]), modules["codec"].encode(batch["source"])
    return loss, x_0, source, torch.randn_like(x_0), times


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
    loss, x_0, _, eps, _ = _zero_network_loss(EditRecipe(**TINY, sigma_min=0.0))
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


@pytest.mark.parametrize("bad", [dict(objective="vpred"), dict(time_sampling="beta"), dict(instruction_dropout=1.0), dict(source_dropout=1.0), dict(colour="red"),
                                 dict(path="sideways"), dict(path="from-source", objective="ddpm")])
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


@pytest.mark.parametrize("name", ["edit-cpu-small", "edit-paper", "edit-cpu-small-from-source", "edit-cpu-small-memorise", "edit-cpu-small-long"])
def test_shipped_configs_parse(name):
    from pathlib import Path

    from foleyflow.training.config import load_train_config

    config = load_train_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.json")
    recipe = EditRecipe(config.recipe_options)
    assert config.recipe == "edit" and recipe.options.objective == "flow" and recipe.options.unet["in_channels"] == 16


def test_a_mask_head_learns_from_the_ground_truth_region_on_rows_with_an_instruction():
    recipe = EditRecipe(**TINY, mask_head=True)
    modules = recipe.build()
    assert modules["unet"].config.out_channels == modules["unet"].config.in_channels // 2 + 1
    loss, logs = recipe.losses(modules, _batch(), "main", 0)
    loss.backward()
    assert logs["mask_bce"] > 0 and loss.item() == pytest.approx(logs["loss"] + logs["mask_bce"], rel=1e-5)
    assert all(p.grad is not None for p in modules["unet"].parameters())


def test_mask_loss_ignores_rows_whose_instruction_was_dropped():
    from foleyflow.training.recipes.edit import mask_loss

    logits = torch.tensor([[[[5.0]]], [[[-5.0]]]])  # row 0 right, row 1 wrong for a region of ones
    region = torch.ones(2, 1, 1, 1)
    assert mask_loss(logits, region, [True, False]).item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(-5.0)).item(), rel=1e-6)
    assert mask_loss(logits, region, [False, False]).item() == 0.0


def test_region_weighting_stresses_the_edit_region():
    from foleyflow.diffusion.flow import FlowSample, flow_matching_loss

    target = torch.zeros(1, 1, 4, 1)
    velocity = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 4, 1)  # all error on frame 0
    sample = FlowSample(x_0=target, eps=target, t=torch.zeros(1), x_t=target, dx_t=target)
    region = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 4, 1)
    plain = flow_matching_loss(velocity, sample)
    weighted = flow_matching_loss(velocity, sample, 1.0 + 3.0 * region)
    assert plain.item() == pytest.approx(0.25) and weighted.item() == pytest.approx(4.0 / 7.0)


def test_crops_land_on_the_edit_region_when_asked():
    from foleyflow.training.recipes.edit import crop_on_region

    frames = torch.arange(64, dtype=torch.float32).view(1, 1, 64, 1).repeat(16, 1, 1, 1)
    region = torch.zeros(16, 1, 64, 1)
    region[:, :, 50:52] = 1.0
    (crops,) = crop_on_region((frames,), region, 8, on_edit=1.0)
    assert crops.shape == (16, 1, 8, 1)
    assert all(bool(((row >= 50) & (row < 52)).any()) for row in crops.flatten(1))
    (anywhere,) = crop_on_region((frames,), torch.zeros_like(region), 8, on_edit=1.0)
    assert all(torch.equal(row, torch.arange(int(row[0]), int(row[0]) + 8).float()) for row in anywhere.flatten(1))


def test_cached_latents_are_encoded_once_and_match_the_codec(tmp_path):
    from editor_tiny import ReshapeCodec

    class MixTriplets:
        """Three mixes of one scene; two triplets share them."""

        def __init__(self):
            self.renders = 0
            self.triplets = [
                {"scene_id": "s", "source": "X", "target": "XA", "instruction": "Add a", "edit_spans": [[0, 320]]},
                {"scene_id": "s", "source": "XA", "target": "X", "instruction": "Remove a", "edit_spans": [[0, 320]]},
            ]

        def mix_key(self, scene, mix):
            return f"{scene}/{mix}"

        def render(self, scene, mix):
            self.renders += 1
            return np.full(1024, 0.1 * len(mix), dtype=np.float32)

    recipe = EditRecipe(**TINY, cache_dir=str(tmp_path))
    triplets = MixTriplets()
    dataset = recipe._cached_dataset(triplets)
    assert triplets.renders == 2  # X and XA, once each
    batch = recipe.collate([dataset[0], dataset[1]])
    expected = ReshapeCodec().encode(torch.full((1, 1024), 0.2))
    assert torch.allclose(batch["target_latent"][0], expected[0].half().float())
    assert torch.equal(batch["source_latent"][1], batch["target_latent"][0])
    recipe._cached_dataset(triplets)
    assert triplets.renders == 2  # the second time everything is read from the cache


def test_the_ddpm_baseline_takes_the_region_weighting_too():
    recipe = EditRecipe(**TINY, objective="ddpm", mask_head=True, edit_region_weight=2.0)
    loss, logs = recipe.losses(recipe.build(), _batch(), "main", 0)
    loss.backward()
    assert np.isfinite(logs["loss"]) and logs["mask_bce"] > 0


def test_the_from_source_path_trains_on_the_bridge_from_the_editors_start_state():
    """A zero network's loss is E||v||^2 with v = (x_end - x_start) / (1 - t_start), t_start the editor's."""
    recipe = EditRecipe(**{**TINY, "editor": {**TINY["editor"], "t_start": 0.5}}, sigma_min=0.0, path="from-source")
    assert recipe.bridge.t_start == 0.5
    loss, x_0, source, eps, times = _zero_network_loss(recipe)
    assert min(float(t.min()) for t in times) >= 0.5
    velocity = (x_0 - (0.5 * eps + 0.5 * source)) / 0.5
    assert loss.item() == pytest.approx(torch.mean(velocity**2).item(), rel=1e-5)


def test_init_from_fine_tunes_a_trained_editor(tmp_path):
    trained = EditRecipe(**TINY, mask_head=True)
    modules = trained.build()
    trained.export(modules, tmp_path / "model", "# card\n")
    recipe = EditRecipe(**TINY, mask_head=True, init_from=str(tmp_path / "model"))
    again = recipe.build()
    for key, value in again["unet"].state_dict().items():
        torch.testing.assert_close(value, modules["unet"].state_dict()[key].to(value.dtype), rtol=1e-3, atol=1e-3)
    assert all(p.dtype == torch.float32 for p in again["unet"].parameters())
    loss, _ = recipe.losses(again, _batch(), "main", 0)
    loss.backward()
    assert all(p.grad is not None for p in again["unet"].parameters())
    with pytest.raises(InputError):
        EditRecipe(**TINY, mask_head=False, init_from=str(tmp_path / "model")).build()


def test_init_unet_from_generator_starts_the_unet_from_the_shipped_generator():
    from foleyflow.generator import load_generator_unet, read_generator_config

    generator = load_generator_unet(*read_generator_config("default")).state_dict()
    cpu_small = {"factory": "foleyflow.models.unet:build_unet", "preset": "cpu-small", "in_channels": 16}
    recipe = EditRecipe(**{**TINY, "unet": cpu_small}, mask_head=True, init_unet_from_generator="default")
    unet = recipe.build()["unet"].state_dict()
    torch.testing.assert_close(unet["conv_in.weight"][:, :8], generator["conv_in.weight"])
    assert torch.count_nonzero(unet["conv_in.weight"][:, 8:]) == 0
    torch.testing.assert_close(unet["conv_out.weight"][:8], -generator["conv_out.weight"])
    assert torch.count_nonzero(unet["conv_out.weight"][8:]) == 0
    key = "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    torch.testing.assert_close(unet[key], generator[key])
    with pytest.raises(InputError, match="not this editor's configuration"):
        EditRecipe(**TINY, mask_head=True, init_unet_from_generator="default").build()
    with pytest.raises(InputError, match="neither init_from"):
        EditRecipe(**TINY, init_unet_from_generator="default", init_from="default")
    with pytest.raises(InputError, match="neither init_from"):
        EditRecipe(**TINY, init_unet_from_generator="default", objective="ddpm")


def test_a_from_source_editor_records_its_t_start_and_warns_off_it(tmp_path):
    recipe = EditRecipe(**{**TINY, "editor": {**TINY["editor"], "t_start": 0.5}}, path="from-source")
    recipe.export(recipe.build(), tmp_path / "model", "# card\n")
    editor = Editor.from_pretrained(tmp_path / "model")
    assert editor.config.trained_t_start == 0.5 and editor.config.t_start == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        editor.edit(np.zeros(500, np.float32), "Add rain")  # its own t_start: silent
    with pytest.warns(UserWarning, match="t_start 0.5"):
        editor.edit(np.zeros(500, np.float32), "Add rain", t_start=0.1)



def test_source_dropout_hides_the_source_from_the_network_on_dropped_rows_only():
    recipe = EditRecipe(**TINY, mask_head=True)
    modules, seen = dict(recipe.build()), []
    unet = modules["unet"]

    class Recording(torch.nn.Module):
        config = unet.config

        def forward(self, sample, *args, **kwargs):
            seen.append(sample.detach().clone())
            return unet(sample, *args, **kwargs)

    modules["unet"] = Recording()
    batch = _batch(3)
    source = modules["codec"].encode(batch["source"])
    losses = recipe.objective_losses(modules, batch, batch["instruction"], crop=False, keep_source=torch.tensor([True, False, True]))
    shown = seen[0][:, source.shape[1]:]  # the channels after the noisy latent's
    assert torch.equal(shown[0], source[0]) and torch.equal(shown[2], source[2]) and torch.all(shown[1] == 0)
    assert losses["mask_bce"].item() > 0
    # with no source the region is unknowable: the mask head's loss counts no such row
    none = recipe.objective_losses(modules, batch, batch["instruction"], crop=False, keep_source=torch.zeros(3, dtype=torch.bool))
    assert none["mask_bce"].item() == 0.0 and torch.all(seen[1][:, source.shape[1]:] == 0)
    # training (losses) draws the rows to drop with probability source_dropout
    for share, dropped in ((0.0, 0), (0.9, 3)):
        recipe.options.source_dropout = share
        seen.clear()
        torch.manual_seed(3)  # with 0.9, all three rows of this draw drop
        recipe.losses(modules, batch, "main", 0)
        assert sum(bool(torch.all(row == 0)) for row in seen[0][:, source.shape[1]:]) == dropped


class _RecordingTriplets:
    """A data set factory that records the arguments the recipe gives it."""

    seen: dict = {}

    def __init__(self, **kwargs):
        _RecordingTriplets.seen = kwargs


def test_the_data_root_expands_foleyflow_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path))
    data = {"factory": "test_editor_recipe:_RecordingTriplets", "root": "$FOLEYFLOW_HOME/datasets/editing-15k"}
    EditRecipe(**TINY, data=data, train_triplets=7).dataset("train")
    assert _RecordingTriplets.seen == {"root": str(tmp_path / "datasets" / "editing-15k"), "split": "train", "max_triplets": 7}


def test_the_shared_cache_fill_hands_out_each_key_once():
    """Before sharding over processes: a key two triplets share must not land in two shares."""

    class Recording:
        def fill(self, kind, encoder, items, encode, batch_size, progress):
            self.items = items

    cache = Recording()
    EditRecipe(**TINY).fill_shared(cache, "kind", "enc", [("k1", "a"), ("k2", "b"), ("k1", "a"), ("k3", "c")], encode=None)
    assert cache.items == [("k1", "a"), ("k2", "b"), ("k3", "c")]
