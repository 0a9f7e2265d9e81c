"""Removal gains (pipelines.removal): the cell target, its loss, the STFT interpolation, compositing
with them, and a remover trained, exported and used by the editor."""

import numpy as np
import pytest
import torch
from editor_tiny import LATENT_BINS, LATENT_CHANNELS
from test_edit_localiser import FRAMES, SAMPLES_PER_FRAME, SMALL, ToneTriplets, _base, train_localiser

from foleyflow.audio.mel import MelConfig, magnitude_spectrogram, slaney_mel_filters
from foleyflow.errors import InputError
from foleyflow.models.localiser import EditLocaliser, LocaliserConfig
from foleyflow.pipelines.compositing import SPECTRAL_HOP, SPECTRAL_N_FFT, blend_removal
from foleyflow.pipelines.editor import Editor, EditorConfig
from foleyflow.pipelines.removal import (
    cell_levels, gains, linear_interpolation, removal_gain_loss, stft_gains,
)
from foleyflow.training.recipes.localise import LocaliseRecipe


def test_cell_levels_average_the_mel_over_four_bands_and_four_frames():
    audio = np.random.default_rng(0).standard_normal((2, 6400)).astype(np.float32)
    mel = (magnitude_spectrogram(torch.from_numpy(audio)) @ slaney_mel_filters()).numpy()  # (2, 40, 64)
    expected = mel.reshape(2, 10, 4, 16, 4).mean(axis=(2, 4)).transpose(0, 2, 1)  # (2, 16 bands, 10 frames)
    assert np.allclose(cell_levels(audio).numpy(), expected, rtol=1e-5, atol=1e-7)
    assert cell_levels(audio[0], frames=5).shape == (1, 16, 5)  # another codec's frame count
    assert np.allclose(cell_levels(audio, frames=5).numpy(), expected.reshape(2, 16, 5, 2).mean(-1), rtol=1e-5, atol=1e-7)


def test_the_loss_is_the_cells_log_level_l1_and_zero_at_the_true_gain():
    source = torch.tensor([[[1.0, 0.5], [2.0, 1e-7]]])
    kept = torch.tensor([[[0.25, 0.5], [2.0, 1e-7]]])
    floor = MelConfig().clamp_min
    keep_all = np.mean(np.abs(np.log(source.numpy() + floor) - np.log(kept.numpy() + floor)))
    assert float(removal_gain_loss(torch.zeros_like(source), source, kept)) == pytest.approx(keep_all, rel=1e-6)
    assert keep_all == pytest.approx(np.log((1 + floor) / (0.25 + floor)) / 4, rel=1e-6)
    assert float(removal_gain_loss(torch.log(kept / source), source, kept)) == pytest.approx(0.0, abs=1e-6)
    # A cell under the floor on both sides costs almost nothing whatever its gain.
    silent = removal_gain_loss(torch.tensor([[[-9.0]]]), torch.tensor([[[1e-7]]]), torch.tensor([[[1e-7]]]))
    assert float(silent) < 0.01
    # Log-gains train unbounded; the gains a removal uses are capped at 1.
    assert torch.equal(gains(torch.tensor([-np.log(4.0), 0.0, 3.0])), torch.tensor([0.25, 1.0, 1.0]))


def test_linear_interpolation_reads_a_ramp_at_its_coordinates():
    coordinates = np.array([-1.0, 0.0, 0.25, 1.5, 2.0, 7.0])
    matrix = linear_interpolation(coordinates, 3)
    assert torch.allclose(matrix.sum(1), torch.ones(6, dtype=torch.float64))
    ramp = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
    assert (matrix @ ramp).tolist() == pytest.approx([10.0, 10.0, 12.5, 25.0, 30.0, 30.0])


def test_stft_gains_put_each_cell_on_its_own_frames_and_bands():
    cells = np.ones((16, 8))
    assert torch.allclose(stft_gains(cells * 0.3, SPECTRAL_N_FFT, SPECTRAL_HOP, 21), torch.full((513, 21), 0.3, dtype=torch.float64))
    cells[:, 4] = 0.0  # one silent cell column: samples [2560, 3200), centred on 2880
    grid = stft_gains(cells, SPECTRAL_N_FFT, SPECTRAL_HOP, 21, samples_per_cell=640)
    # STFT frame k sits at sample 256 k: frames 10-12 (2560-3072) lie inside the cell, frame 20 far after it.
    assert float(grid[:, 11].max()) < 0.35 and torch.allclose(grid[:, 20], torch.ones(513, dtype=torch.float64))
    bands = np.ones((16, 8))
    bands[0] = 0.0  # the lowest cell band (mel bands 0-3, below about 200 Hz)
    grid = stft_gains(bands, SPECTRAL_N_FFT, SPECTRAL_HOP, 5)
    assert float(grid[1:4].max()) < 0.5 and torch.allclose(grid[100:], torch.ones(413, 5, dtype=torch.float64))


def test_blend_removal_scales_the_recording_inside_the_mask_and_adds_only_new_sound():
    rng = np.random.default_rng(0)
    source = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    mask = np.zeros(16000)
    mask[4000:12000] = 1.0
    cells = np.ones((16, 25))
    kept = blend_removal(source, source, mask, cells, "remove")
    assert np.allclose(kept, source, atol=1e-6)  # gain 1 keeps the recording
    silent = blend_removal(source, source, mask, cells * 0.0, "remove")
    assert np.array_equal(silent[:4000], source[:4000]) and np.abs(silent[6000:10000]).max() < 1e-6
    half = blend_removal(source, source, mask, cells * 0.5, "remove")
    assert np.allclose(half[6000:10000], 0.5 * source[6000:10000], atol=1e-6)
    floored = blend_removal(source, source, mask, cells * 0.0, "remove", room_tone_quantile=0.25)
    assert np.abs(floored[6000:10000]).mean() > 0.01  # the room tone read outside the mask
    everywhere = blend_removal(source, source, mask, cells * 0.5, "remove", gain_mask=np.ones(16000))
    assert np.allclose(everywhere[1000:3000], 0.5 * source[1000:3000], atol=1e-6)
    # A replace: what the edit holds louder than the *source* comes in; the rest is the removal.
    tone = np.sin(np.arange(16000) * 0.7).astype(np.float32)
    replaced = blend_removal(tone, source, mask, cells * 0.0, "replace")
    assert np.abs(replaced[6000:10000] - tone[6000:10000]).max() < 0.05
    assert np.array_equal(replaced[:4000], source[:4000])
    assert np.abs(blend_removal(source * 0.9, source, mask, cells * 0.0, "replace")[6000:10000]).max() < 1e-6
    with pytest.raises(ValueError, match="not 'add'"):
        blend_removal(source, source, mask, cells, "add")


def test_the_remover_gives_one_log_gain_per_latent_cell():
    remover = EditLocaliser(LocaliserConfig.from_dict({**SMALL, "latent_channels": LATENT_CHANNELS, "latent_bins": LATENT_BINS,
                                                       "per_bin": True}))
    states, mask = torch.randn(3, 5, SMALL["text_dim"]), torch.ones(3, 5, dtype=torch.long)
    assert remover(torch.randn(3, LATENT_CHANNELS, 11, LATENT_BINS), states, mask).shape == (3, LATENT_BINS, 11)


def _recipe(tmp_path):
    return LocaliseRecipe({"editor": _base(tmp_path), "localiser": SMALL, "data": {"factory": "test_edit_localiser:ToneTriplets"},
                           "target": "removal-gains"})


def test_the_recipe_learns_removal_gains_and_the_editor_removes_with_them(tmp_path):
    recipe = _recipe(tmp_path)
    modules = recipe.build()
    assert recipe.localiser_config.per_bin
    train, val = recipe.dataset("train"), recipe.dataset("val")
    val_batch = recipe.collate([val[i] for i in range(len(val))])
    assert val_batch["source_levels"].shape == val_batch["kept_levels"].shape == (len(val), 16, FRAMES)
    before = recipe.validate(modules, val_batch)
    train_localiser(recipe, modules, train, steps=150)
    after = recipe.validate(modules, val_batch)
    assert set(after) == {"val_loss", "val_loss_keep_all"}
    assert after["val_loss_keep_all"] == pytest.approx(before["val_loss_keep_all"])
    assert after["val_loss"] < 0.6 * after["val_loss_keep_all"]
    assert not any(p.grad is not None for p in modules["text_encoder"].parameters())

    folder = recipe.export(modules, tmp_path / "out", "card")
    editor = Editor.from_pretrained(folder)
    assert editor.config.removal == "gains" and editor.config.remover == recipe.localiser_config.to_dict()
    for (name, a), (_, b) in zip(editor.remover.state_dict().items(), modules["localiser"].state_dict().items()):
        assert torch.equal(a, b), name
    item = ToneTriplets("val")[0]
    audio, target = item["source"].numpy(), item["target"].numpy()
    result = editor.edit(audio, "Remove the tone", mask="none", composite="spectral")
    removed = result.audio
    assert result.nfe == 0  # a removal by gains runs no sampling and decodes nothing
    assert editor.edit(audio, "Swap the tone for rain", mask="none", composite="spectral").nfe > 0  # a replace samples its new sound
    assert editor.edit(audio, "Remove the tone", mask="none", composite="audio").nfe > 0  # gains act only in spectral compositing
    by_unet = editor.edit(audio, "Remove the tone", mask="none", composite="spectral", removal="unet")
    assert by_unet.nfe > 0 and not np.allclose(by_unet.audio, removed)
    with pytest.raises(InputError, match="removal must be one of"):
        editor.edit(audio, "Remove the tone", removal="erase")
    # A region the user marks is inpainted by the UNet unless asked otherwise (``region_removal``).
    marked = editor.edit(audio, "Remove the tone", region=[(0.0, 0.05)])
    assert marked.nfe > 0 and editor.config.region_removal == "unet"
    assert editor.edit(audio, "Remove the tone", region=[(0.0, 0.05)], removal="gains").nfe == 0
    regenerated = Editor.from_pretrained(tmp_path / "base").edit(audio, "Remove the tone", mask="none", composite="spectral").audio
    error = lambda out: float(np.mean((cell_levels(out, FRAMES) + 1e-5).log().sub((cell_levels(target, FRAMES) + 1e-5).log()).abs().numpy()))  # noqa: E731
    assert error(removed) < 0.6 * error(audio) and error(removed) < error(regenerated)


def test_removal_gains_need_a_remover_and_audio_replaces_their_bare_scene(tmp_path):
    with pytest.raises(InputError, match="needs an editor with a remover"):
        EditorConfig(removal="gains")
    with pytest.raises(InputError, match="removal must be one of"):
        EditorConfig(removal="erase")
    with pytest.raises(InputError, match="removal_region"):
        EditorConfig(removal_region="everywhere")
    recipe = _recipe(tmp_path)
    replace = {"instruction": "Swap the tone for rain", "task": "replace", "edit_spans": [[0, 128]],
               "source": torch.zeros(FRAMES * SAMPLES_PER_FRAME), "target": torch.zeros(FRAMES * SAMPLES_PER_FRAME)}
    with pytest.raises(InputError, match="bare scene"):
        recipe.collate([replace])
    batch = recipe.collate([{**replace, "bare": torch.zeros(FRAMES * SAMPLES_PER_FRAME)}])
    assert batch["instruction"] == ["Remove the tone"]  # asked as the removal of its old sound
    with pytest.raises(InputError, match="recipe_options.target"):
        LocaliseRecipe({"editor": _base(tmp_path), "target": "gains"})


def test_the_remover_config_parses_and_fits_the_default_editor():
    from pathlib import Path

    from foleyflow.training.config import load_train_config

    config = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "remover-cpu.json")
    recipe = LocaliseRecipe(config.recipe_options)
    assert config.recipe == "localise" and recipe.removal and recipe.localiser_config.per_bin
    assert config.export_best  # model-best/ too: the lowest validation loss came before the last step (session 24)
    assert recipe.localiser_config.latent_channels == 8 and recipe.localiser_config.text_dim == 384
    assert recipe.options.data["tasks"] == ["remove", "replace"]


def test_a_remover_survives_a_new_localiser_and_distillation(tmp_path):
    """Both keep the instruction encoder, so the remover still fits and goes with the new folder."""
    from foleyflow.training.recipes.distill_edit import EditDistillRecipe

    recipe = _recipe(tmp_path)
    with_remover = recipe.export(recipe.build(), tmp_path / "with_remover", "card")
    remover = Editor.from_pretrained(with_remover).remover.state_dict()
    relocalised = LocaliseRecipe({"editor": str(with_remover), "localiser": SMALL, "data": {"factory": "test_edit_localiser:ToneTriplets"}})
    distill = EditDistillRecipe({"teacher": str(with_remover), "data": {"factory": "test_edit_localiser:ToneTriplets"}})
    for folder in (relocalised.export(relocalised.build(), tmp_path / "relocalised", "card"),
                   distill.export(distill.build(), tmp_path / "student", "card")):
        editor = Editor.from_pretrained(folder)
        assert editor.config.removal == "gains"
        assert all(torch.equal(a, remover[name]) for name, a in editor.remover.state_dict().items())


def test_the_bench_removes_by_gains_without_sampling_except_in_a_marked_region():
    from editor_tiny import tiny_editor
    from test_edit_bench_masks import quieted_items

    from foleyflow.pipelines.edit_bench import format_table, run_edit_bench

    torch.manual_seed(0)
    remover = EditLocaliser({**SMALL, "latent_channels": LATENT_CHANNELS, "latent_bins": LATENT_BINS, "per_bin": True})
    editor = tiny_editor(steps=2, window_seconds=0.128, overlap_seconds=0.0, removal="gains", remover=remover)
    items = quieted_items(4, 4096, (1500, 2500), 0.05, [1200, 2800], "hiss")
    items[1]["instruction"] = "Replace the hiss with rain"
    report = run_edit_bench(editor, items, t_starts=(), resamples=10, methods=("region", "oracle"), composites=("every-step+spectral",))
    remove, replace = report["tasks"]["remove"]["methods"], report["tasks"]["replace"]["methods"]
    assert remove["oracle + every-step+spectral"]["nfe"] == 0  # the gains alone: no sampling
    assert remove["region + every-step+spectral"]["nfe"] == 2  # a marked region keeps the UNet (region_removal)
    assert replace["oracle + every-step+spectral"]["nfe"] == 2  # a replace samples its new sound
    assert (report["removal"], report["region_removal"]) == ("gains", "unet")
    assert ", removal gains (unet in a marked region);" in format_table(report)
    # --removal: one way on every row, a marked region's included
    by_gains = run_edit_bench(editor, items[:1], t_starts=(), resamples=10, methods=("region",), composites=("every-step+spectral",), removal="gains")
    assert by_gains["tasks"]["remove"]["methods"]["region + every-step+spectral"]["nfe"] == 0
    assert ", removal gains;" in format_table(by_gains)
    by_unet = run_edit_bench(editor, items[:1], t_starts=(), resamples=10, methods=("oracle",), composites=("every-step+spectral",), removal="unet")
    assert by_unet["tasks"]["remove"]["methods"]["oracle + every-step+spectral"]["nfe"] == 2
    assert editor.config.removal == "gains"  # the caller's editor keeps its config
    with pytest.raises(InputError, match="needs an editor with a remover"):
        run_edit_bench(tiny_editor(steps=2), items[:1], t_starts=(), methods=("oracle",), composites=("every-step+spectral",), removal="gains")


def test_the_cached_levels_are_computed_once_per_mix_and_match_cell_levels(tmp_path):
    """Four removal triplets of one scene share its three mixes: each mix is rendered once for the
    levels (the bare scene serves both source mixes), and the batch carries its cells' levels."""
    samples = FRAMES * SAMPLES_PER_FRAME
    rng = np.random.default_rng(0)
    audio = {mix: (0.1 * rng.standard_normal(samples)).astype(np.float32) for mix in ("X", "XA", "XB")}

    class MixTriplets:
        def __init__(self):
            self.renders = []
            span = [[0, samples // 2]]
            self.triplets = [
                {"scene_id": "s", "source": "XA", "target": "X", "instruction": "Remove the a", "edit_spans": span},
                {"scene_id": "s", "source": "XA", "target": "XB", "instruction": "Replace the a with b", "edit_spans": span + span},
                {"scene_id": "s", "source": "XB", "target": "X", "instruction": "Remove the b", "edit_spans": span},
                {"scene_id": "s", "source": "XB", "target": "XA", "instruction": "Replace the b with a", "edit_spans": span + span},
            ]

        def mix_key(self, scene, mix):
            return f"{scene}/{mix}"

        def render(self, scene, mix):
            self.renders.append(mix)
            return audio[mix]

    recipe = _recipe(tmp_path)
    recipe.options.cache_dir = str(tmp_path / "cache")
    triplets = MixTriplets()
    dataset = recipe._cached_dataset(triplets)
    assert sorted(triplets.renders) == ["X", "X", "XA", "XA", "XB", "XB"]  # once for the latents, once for the levels
    batch = recipe.collate([dataset[i] for i in range(4)])
    for row, source in enumerate(("XA", "XA", "XB", "XB")):
        expected_source, expected_kept = (cell_levels(audio[m])[0].half().float() for m in (source, "X"))
        assert torch.allclose(batch["source_levels"][row], expected_source, rtol=2e-3)
        assert torch.allclose(batch["kept_levels"][row], expected_kept, rtol=2e-3)
    assert batch["instruction"] == ["Remove the a", "Remove the a", "Remove the b", "Remove the b"]  # a replace asked as a removal
