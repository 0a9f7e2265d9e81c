"""The codec training recipes: losses, a few optimisation steps that lower them, export."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from foleyflow.audio.mel import log_mel, magnitude_spectrogram, magnitude_to_log_mel
from foleyflow.errors import InputError
from foleyflow.models.vae import load_vae
from foleyflow.models.vocoder import build_vocoder, load_vocoder
from foleyflow.training.recipes.codec import (
    TRAINING_MAGNITUDE_FLOOR,
    VaeRecipe,
    VocoderRecipe,
    avg_pool_baseline,
    discriminator_loss,
    kl_per_mel_element,
    multi_resolution_stft_distance,
    stft_magnitude_distance,
)

TINY_VAE = {"block_out_channels": [8, 16, 16], "norm_num_groups": 4}


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for index in range(12):
        tone = 0.3 * np.sin(2 * np.pi * (200 + 100 * index) * t) * np.exp(-3 * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{index:02d}.wav", tone.astype(np.float32), 16000)
    return folder


def run_steps(recipe, steps: int, lr: float = 3e-3):
    torch.manual_seed(0)
    modules = recipe.build()
    optimizers = {group: torch.optim.Adam([p for name in names for p in modules[name].parameters()], lr=lr) for group, names in recipe.optimizer_groups().items()}
    data = recipe.dataset("train")
    batch = recipe.collate([data[i] for i in range(4)])
    history = []
    for step in range(steps):
        for group, optimizer in optimizers.items():
            for o in optimizers.values():
                o.zero_grad(set_to_none=True)
            loss, figures = recipe.losses(modules, batch, group, step)
            loss.backward()
            optimizer.step()
            history.append((group, float(loss.detach()), figures))
    return modules, history


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    zeros = torch.zeros(2, 8, 4, 4)
    assert float(kl_per_mel_element(zeros, zeros, 100)) == 0.0
    assert float(kl_per_mel_element(zeros + 1, zeros, 100)) == pytest.approx(0.5 * 128 / 100)


def test_avg_pool_baseline_is_exact_on_blocky_mels():
    blocky = torch.arange(16.0).reshape(1, 1, 4, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    torch.testing.assert_close(avg_pool_baseline(blocky), blocky)


def test_stft_magnitude_distance_matches_its_closed_form():
    """E = 2R: spectral convergence ||R - 2R|| / ||R|| = 1, log L1 = log 2; the floor clamps both."""
    reference = torch.rand(2, 9, 7) + 0.1
    assert float(stft_magnitude_distance(reference, reference)) == pytest.approx(0.0, abs=1e-7)
    assert float(stft_magnitude_distance(2 * reference, reference)) == pytest.approx(1 + np.log(2), rel=1e-5)
    assert float(stft_magnitude_distance(torch.zeros(3), torch.full((3,), 1e-9))) == pytest.approx(0.0, abs=1e-7)


def test_stft_magnitude_distance_floors_power_like_parallel_wavegan():
    """Parallel WaveGAN's magnitude is sqrt(max(re^2 + im^2, 1e-7)); the figure must equal its
    SC + log-L1 on that magnitude, and differences below the floor must not count."""
    torch.manual_seed(0)
    spectra = [torch.randn(2, 33, 20, dtype=torch.complex64) * scale for scale in (1.0, 1e-3)]
    pwg = [torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=1e-7)) for z in spectra]
    estimate, reference = pwg
    expected = torch.linalg.norm(reference - estimate) / torch.linalg.norm(reference) + (reference.log() - estimate.log()).abs().mean()
    assert float(stft_magnitude_distance(spectra[0].abs(), spectra[1].abs())) == pytest.approx(float(expected), rel=1e-5)
    faint, fainter = torch.full((4,), 1e-4), torch.full((4,), 1e-6)  # both below sqrt(1e-7)
    assert float(stft_magnitude_distance(fainter, faint)) == pytest.approx(0.0, abs=1e-7)
    assert float(stft_magnitude_distance(fainter, faint, floor=TRAINING_MAGNITUDE_FLOOR)) > 1.0


def test_mr_stft_distance_is_zero_for_identical_audio():
    audio = torch.randn(1, 8000)
    assert float(multi_resolution_stft_distance(audio, audio)) == pytest.approx(0.0, abs=1e-6)
    assert float(multi_resolution_stft_distance(audio * 0.5, audio)) > 0.1


def test_discriminator_loss_prefers_real_ones():
    real = [(torch.ones(2, 3), [])]
    fake = [(torch.zeros(2, 3), [])]
    assert float(discriminator_loss(real, fake)) == 0.0
    assert float(discriminator_loss(fake, real)) == 2.0


def test_vae_recipe_lowers_l1_and_exports_a_scaled_vae(tmp_path, audio_folder):
    recipe = VaeRecipe({"audio_folder": str(audio_folder), "vae_overrides": TINY_VAE, "segment_frames": 16, "items_per_epoch": 8, "scale_batches": 2})
    modules, history = run_steps(recipe, 15, lr=1e-2)
    assert history[-1][2]["l1"] < 0.7 * history[0][2]["l1"]
    figures = recipe.validate(modules, recipe.collate([recipe.dataset("val")[0]]))
    assert set(figures) == {"val_loss", "baseline_l1"}
    recipe.export(modules, tmp_path / "vae", "# card\n")
    vae = load_vae(tmp_path / "vae")
    assert vae.config.scaling_factor != 1.0
    assert "scaling factor" in (tmp_path / "vae" / "MODEL_CARD.md").read_text()


def test_vocoder_recipe_steps_both_groups_and_exports(tmp_path, audio_folder):
    recipe = VocoderRecipe({"audio_folder": str(audio_folder), "vocoder_overrides": {"upsample_initial_channel": 32}, "segment_samples": 1600, "items_per_epoch": 8})
    modules, history = run_steps(recipe, 4, lr=2e-3)
    groups = [group for group, _, _ in history]
    assert groups[:2] == ["discriminator", "generator"]
    generator_mel = [figures["mel_l1"] for group, _, figures in history if group == "generator"]
    assert generator_mel[-1] < generator_mel[0]
    assert {"feature", "gan"} <= set(history[1][2])
    recipe.export(modules, tmp_path / "vocoder", "# card\n")
    assert load_vocoder(tmp_path / "vocoder").config.upsample_initial_channel == 32


def test_recipe_options_are_checked(audio_folder):
    with pytest.raises(InputError, match="unknown key"):
        VaeRecipe({"segment_frame": 32})
    with pytest.raises(InputError, match="multiple of 4"):
        VaeRecipe({"segment_frames": 30})
    with pytest.raises(InputError, match="no audio files"):
        VaeRecipe({"audio_folder": str(audio_folder / "nothing")}).dataset("train")


def test_decoder_bias_starts_at_the_requested_level():
    modules = VaeRecipe({"vae_overrides": TINY_VAE, "decoder_bias_init": -7.5}).build()
    assert torch.all(modules["vae"].decoder.conv_out.bias == -7.5)
    assert torch.all(VaeRecipe({"vae_overrides": TINY_VAE}).build()["vae"].decoder.conv_out.bias.abs() < 1)


def test_decoder_fine_tuning_keeps_the_latent_space(tmp_path, audio_folder):
    """train "decoder": the encoder, quant_conv and scaling factor stay bit-for-bit; the decoder learns."""
    source = VaeRecipe({"audio_folder": str(audio_folder), "vae_overrides": TINY_VAE, "segment_frames": 16, "items_per_epoch": 8, "scale_batches": 2})
    start, _ = run_steps(source, 3, lr=1e-2)
    source.export(start, tmp_path / "start", "# card\n")
    before = load_vae(tmp_path / "start")
    recipe = VaeRecipe({"audio_folder": str(audio_folder), "init_from": str(tmp_path / "start"), "train": "decoder", "segment_frames": 16, "items_per_epoch": 8})
    modules, history = run_steps(recipe, 15, lr=1e-2)
    assert history[-1][2]["l1"] < 0.8 * history[0][2]["l1"]
    frozen = [*modules["vae"].encoder.parameters(), *modules["vae"].quant_conv.parameters()]
    assert not any(p.requires_grad or p.grad is not None for p in frozen)  # no graph through the encoder
    recipe.export(modules, tmp_path / "tuned", "# card\n")
    after = load_vae(tmp_path / "tuned")
    assert after.config.scaling_factor == before.config.scaling_factor
    old, new = before.state_dict(), after.state_dict()
    for name in old:
        if name.startswith(("encoder.", "quant_conv.")):
            torch.testing.assert_close(new[name], old[name], rtol=0, atol=0)
    assert any(not torch.equal(new[name], old[name]) for name in old if name.startswith("decoder."))
    assert "unchanged" in (tmp_path / "tuned" / "MODEL_CARD.md").read_text()


def test_decoder_fine_tuning_options_are_checked(tmp_path):
    with pytest.raises(InputError, match="needs init_from"):
        VaeRecipe({"train": "decoder"})
    with pytest.raises(InputError, match="'all' or 'decoder'"):
        VaeRecipe({"train": "encoder", "init_from": "default"})
    with pytest.raises(InputError, match="drop vae_overrides"):
        VaeRecipe({"init_from": "default", "vae_overrides": TINY_VAE})


TINY_ISTFT = {"dim": 16, "intermediate_dim": 32, "num_layers": 2}

def test_the_recipe_without_a_discriminator_trains_the_generator_alone(tmp_path, audio_folder):
    recipe = VocoderRecipe({"audio_folder": str(audio_folder), "preset": "istft-cpu", "vocoder_overrides": TINY_ISTFT, "discriminator": "none",
                            "segment_samples": 1600, "items_per_epoch": 8, "stft_weight": 1.0})
    assert recipe.optimizer_groups() == {"generator": ["generator"]} and set(recipe.build()) == {"generator"}
    modules, history = run_steps(recipe, 6, lr=3e-3)
    assert {group for group, _, _ in history} == {"generator"}
    assert history[-1][1] < history[0][1]
    assert {"mel_l1", "mr_stft"} == set(history[-1][2])  # no adversarial terms
    recipe.export(modules, tmp_path / "vocoder", "# card\n")
    assert load_vocoder(tmp_path / "vocoder").config.dim == 16


def test_the_griffin_lim_phase_vocoder_trains_on_its_magnitude_alone(tmp_path, audio_folder):
    recipe = VocoderRecipe({"audio_folder": str(audio_folder), "preset": "istft-gla-cpu", "vocoder_overrides": TINY_ISTFT, "discriminator": "none",
                            "segment_samples": 1600, "items_per_epoch": 8, "stft_weight": 1.0, "mel_weight": 1.0})
    modules, history = run_steps(recipe, 8, lr=1e-2)
    assert set(history[-1][2]) == {"magnitude_distance", "mel_l1"}
    assert history[-1][1] < 0.8 * history[0][1]
    batch = recipe.collate([recipe.dataset("train")[0]])
    with torch.no_grad():
        figures = recipe.validate(modules, batch)  # synthesises through Griffin-Lim
    assert np.isfinite(figures["mr_stft"]) and figures["mr_stft"] > 0
    recipe.export(modules, tmp_path / "vocoder", "# card\n")
    assert load_vocoder(tmp_path / "vocoder").config.phase == "griffin-lim"


def test_the_griffin_lim_phase_vocoder_refuses_a_discriminator(audio_folder):
    options = {"audio_folder": str(audio_folder), "preset": "istft-gla-cpu", "vocoder_overrides": TINY_ISTFT, "segment_samples": 1600, "items_per_epoch": 8}
    with pytest.raises(InputError, match="without a discriminator"):
        run_steps(VocoderRecipe({**options, "discriminator": "cpu"}), 1)


def test_the_magnitude_vocoder_can_train_through_the_mel_projection_from_a_trained_folder(tmp_path, audio_folder):
    options = {"audio_folder": str(audio_folder), "preset": "istft-gla-cpu", "vocoder_overrides": {**TINY_ISTFT, "mel_projection_iterations": 5},
               "discriminator": "none", "segment_samples": 1600, "items_per_epoch": 8, "stft_weight": 1.0, "mel_weight": 1.0}
    first, _ = run_steps(VocoderRecipe(options), 4, lr=1e-2)
    VocoderRecipe(options).export(first, tmp_path / "start", "# card\n")

    recipe = VocoderRecipe({**options, "init_from": str(tmp_path / "start"), "through_projection": True})
    started = recipe.build()["generator"]
    for key, value in first["generator"].state_dict().items():
        assert torch.equal(started.state_dict()[key], value), key  # starts from the folder, not the preset
    batch = recipe.collate([recipe.dataset("train")[i] for i in range(4)])
    mel = log_mel(batch)
    with torch.no_grad():
        projected = started.magnitude(mel).transpose(1, 2)
    with torch.no_grad():
        loss, _ = recipe.losses({"generator": started}, batch, "generator", 0)
        unprojected_loss, _ = VocoderRecipe(options).losses({"generator": started}, batch, "generator", 0)
    target = magnitude_spectrogram(batch, keep_last_frame=True)
    mel_l1 = (magnitude_to_log_mel(projected[..., :-1, :]) - mel).abs().mean()
    assert float(loss) == pytest.approx(float(stft_magnitude_distance(projected, target, floor=TRAINING_MAGNITUDE_FLOOR) + mel_l1), rel=1e-5)  # the projected magnitude is scored
    assert float(loss) < 0.99 * float(unprojected_loss)  # and the projection matters: it matches the mel
    modules, history = run_steps(recipe, 8, lr=1e-2)
    assert history[-1][1] < history[0][1]


@pytest.mark.parametrize("option", ["through_projection", "through_phase_search"])
def test_training_through_the_projection_or_the_phase_search_needs_the_magnitude_vocoder(audio_folder, option):
    options = {"audio_folder": str(audio_folder), "preset": "istft-cpu", "vocoder_overrides": TINY_ISTFT, "discriminator": "none",
               "segment_samples": 1600, "items_per_epoch": 8, option: True}
    with pytest.raises(InputError, match=f"{option} applies to the magnitude vocoder"):
        VocoderRecipe(options).build()


def test_through_the_projection_and_through_the_phase_search_are_one_choice(audio_folder):
    with pytest.raises(InputError, match="choose one"):
        VocoderRecipe({"audio_folder": str(audio_folder), "through_projection": True, "through_phase_search": True})


def test_through_the_phase_search_the_loss_is_the_benchmark_figures_on_the_inference_waveform(audio_folder):
    """The loss is MR-STFT + mel_weight x log-mel L1 of what the vocoder returns at inference
    (projection, phase search and mel-consistent iterations), and optimising it lowers it."""
    options = {"audio_folder": str(audio_folder), "preset": "istft-gla-cpu",
               "vocoder_overrides": {**TINY_ISTFT, "mel_projection_iterations": 3, "griffin_lim_iterations": 4, "mel_consistent_iterations": 2},
               "discriminator": "none", "segment_samples": 1600, "items_per_epoch": 8, "stft_weight": 1.0, "mel_weight": 2.0, "through_phase_search": True}
    recipe = VocoderRecipe(options)
    generator = recipe.build()["generator"]
    batch = recipe.collate([recipe.dataset("train")[i] for i in range(4)])
    mel = log_mel(batch)
    with torch.no_grad():
        audio = generator(mel)
        loss, figures = recipe.losses({"generator": generator}, batch, "generator", 0)
    expected_stft = multi_resolution_stft_distance(audio, batch)
    expected_mel = (log_mel(audio) - mel).abs().mean()
    assert figures == pytest.approx({"mr_stft": float(expected_stft), "mel_l1": float(expected_mel)}, rel=1e-4)
    assert float(loss) == pytest.approx(float(expected_stft + 2.0 * expected_mel), rel=1e-4)
    _, history = run_steps(recipe, 10, lr=1e-2)
    assert history[-1][1] < history[0][1]


class _DistributedLike(torch.nn.Module):
    """What DistributedDataParallel looks like to a recipe: ``.module`` inside, forward delegates."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@pytest.mark.parametrize("through", ["", "through_projection", "through_phase_search"])
def test_the_magnitude_vocoder_trains_the_same_inside_a_distributed_wrapper(audio_folder, through):
    options = {"audio_folder": str(audio_folder), "preset": "istft-gla-cpu",
               "vocoder_overrides": {**TINY_ISTFT, "mel_projection_iterations": 2, "griffin_lim_iterations": 4, "mel_consistent_iterations": 2},
               "discriminator": "none", "segment_samples": 1600, "items_per_epoch": 8, **({through: True} if through else {})}
    recipe = VocoderRecipe(options)
    generator = recipe.build()["generator"]
    torch.nn.init.normal_(generator.head.weight, std=0.01)  # off Griffin-Lim's own magnitude, so gradients are not trivial
    batch = recipe.collate([recipe.dataset("train")[i] for i in range(2)])
    plain_loss, plain_figures = recipe.losses({"generator": generator}, batch, "generator", 0)
    wrapped_loss, wrapped_figures = recipe.losses({"generator": _DistributedLike(generator)}, batch, "generator", 0)
    # the magnitude losses, not the HiFi-GAN ones (which a wrapped generator used to get)
    expected = {"mr_stft", "mel_l1"} if through == "through_phase_search" else {"magnitude_distance", "mel_l1"}
    assert set(wrapped_figures) == expected and wrapped_figures == pytest.approx(plain_figures)
    wrapped_loss.backward()
    assert generator.head.weight.grad is not None and float(generator.head.weight.grad.abs().sum()) > 0
    assert float(wrapped_loss) == pytest.approx(float(plain_loss))


def test_the_magnitude_vocoder_forward_can_return_its_magnitudes():
    vocoder = build_vocoder("istft-gla-cpu", **{**TINY_ISTFT, "mel_projection_iterations": 2})
    mel = torch.randn(1, 12, 64) - 4
    with torch.no_grad():
        assert torch.equal(vocoder(mel, output="log_magnitude"), vocoder.log_magnitude(mel))
        assert torch.equal(vocoder(mel, output="magnitude"), vocoder.magnitude(mel))
        with pytest.raises(ValueError, match="output must be"):
            vocoder(mel, output="phase")


def test_per_item_stft_figures_average_each_items_own_figure():
    """per_item gives each item the figure bench codec gives a clip, then averages; the batch
    figure (Parallel WaveGAN's) lets the loud item's spectral convergence outweigh the quiet one's."""
    torch.manual_seed(0)
    reference = torch.randn(2, 4000) * torch.tensor([[1.0], [0.01]])
    estimate = reference + 0.3 * torch.randn(2, 4000) * torch.tensor([[0.1], [0.01]])
    each = [float(multi_resolution_stft_distance(estimate[i : i + 1], reference[i : i + 1])) for i in range(2)]
    assert float(multi_resolution_stft_distance(estimate, reference, per_item=True)) == pytest.approx(sum(each) / 2, rel=1e-5)
    assert float(multi_resolution_stft_distance(estimate, reference)) < 0.9 * sum(each) / 2


def test_per_segment_figures_need_the_waveform_loss(audio_folder):
    with pytest.raises(InputError, match="through_phase_search"):
        VocoderRecipe({"audio_folder": str(audio_folder), "per_segment_figures": True})
