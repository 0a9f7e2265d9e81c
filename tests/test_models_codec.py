"""Mel VAE, HiFi-GAN vocoder, Griffin-Lim and the codec: shapes, scaling, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from foleyflow.audio.mel import log_mel
from foleyflow.errors import InputError
from foleyflow.models import vae as vae_module
from foleyflow.models.codec import Codec
from foleyflow.models.vocoder import build_discriminator, build_vocoder, griffin_lim, load_vocoder, save_vocoder, vocode, vocoder_config


@pytest.fixture(scope="module")
def cpu_vae():
    torch.manual_seed(0)
    return vae_module.build_vae("cpu").eval()


def test_vae_shapes_r4_c8(cpu_vae):
    mel = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        latents = vae_module.encode(cpu_vae, mel)
        assert latents.shape == (2, 8, 16, 16)
        assert vae_module.decode(cpu_vae, latents).shape == mel.shape


def test_paper_vae_config_is_audioldm():
    config = vae_module.vae_config("paper")
    assert config["block_out_channels"] == [128, 256, 512]
    assert config["layers_per_block"] == 2 and config["latent_channels"] == 8
    assert config["scaling_factor"] == pytest.approx(0.9227914214134216)


def test_scaling_factor_multiplies_latents(cpu_vae):
    mel = torch.randn(1, 1, 16, 64)
    with torch.no_grad():
        base = vae_module.encode(cpu_vae, mel)
        decoded = vae_module.decode(cpu_vae, base)
        cpu_vae.register_to_config(scaling_factor=2.5)
        try:
            torch.testing.assert_close(vae_module.encode(cpu_vae, mel), 2.5 * base)
            torch.testing.assert_close(vae_module.decode(cpu_vae, 2.5 * base), decoded)
        finally:
            cpu_vae.register_to_config(scaling_factor=1.0)


def test_latent_scaling_factor_gives_unit_std():
    latents = torch.randn(4, 8, 32, 16, generator=torch.Generator().manual_seed(0)) * 3.0
    factor = vae_module.latent_scaling_factor(latents)
    assert factor == pytest.approx(1 / 3.0, rel=0.02)
    assert float((latents * factor).std()) == pytest.approx(1.0, abs=1e-4)


def test_vae_rejects_bad_layout(cpu_vae):
    with pytest.raises(InputError, match="batch, 1, frames"):
        vae_module.encode(cpu_vae, torch.randn(1, 16, 64))
    with pytest.raises(InputError, match="multiples of 4"):
        vae_module.encode(cpu_vae, torch.randn(1, 1, 18, 64))


def test_vae_folder_round_trip(tmp_path, cpu_vae):
    vae_module.save_vae(cpu_vae, tmp_path / "vae", card="# test\n")
    loaded = vae_module.load_vae(tmp_path / "vae")
    mel = torch.randn(1, 1, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(vae_module.encode(loaded, mel), vae_module.encode(cpu_vae, mel))


def test_vae_folder_with_wrong_shapes_is_named(tmp_path, cpu_vae):
    vae_module.save_vae(cpu_vae, tmp_path / "vae")
    config_path = tmp_path / "vae" / "config.json"
    config_path.write_text(config_path.read_text().replace('"layers_per_block": 1', '"layers_per_block": 2'))
    with pytest.raises(InputError, match="missing .* keys"):
        vae_module.load_vae(tmp_path / "vae")


def test_vocoder_length_and_mel_convention():
    torch.manual_seed(0)
    vocoder = build_vocoder("cpu").eval()
    assert vocoder.config.normalize_before is False
    assert torch.all(vocoder.mean == 0) and torch.all(vocoder.scale == 1)
    with torch.no_grad():
        audio = vocode(vocoder, torch.randn(2, 10, 64))
        assert audio.shape == (2, 1600)
        assert vocode(vocoder, torch.randn(2, 1, 10, 64)).shape == (2, 1600)  # the VAE layout is accepted
    assert vocoder_config("paper")["upsample_initial_channel"] == 1024
    with pytest.raises(InputError, match="multiply to the mel hop"):
        vocoder_config("cpu", upsample_rates=[4, 4, 2, 2, 2])
    with pytest.raises(InputError, match="batch, frames, 64"):
        vocode(vocoder, torch.randn(2, 10, 80))


def test_vocoder_folder_round_trip(tmp_path):
    torch.manual_seed(1)
    vocoder = build_vocoder("cpu").eval()
    save_vocoder(vocoder, tmp_path / "vocoder")
    loaded = load_vocoder(tmp_path / "vocoder")
    mel = torch.randn(1, 8, 64)
    with torch.no_grad():
        torch.testing.assert_close(vocode(loaded, mel), vocode(vocoder, mel))


def test_discriminators_score_every_sub_discriminator():
    torch.manual_seed(0)
    discriminator = build_discriminator("cpu")
    results = discriminator(torch.randn(2, 4000))
    assert len(results) == 5 + 3  # periods 2, 3, 5, 7, 11 and three scales
    for logits, features in results:
        assert logits.shape[0] == 2 and len(features) >= 5


def test_griffin_lim_recovers_a_tone_spectrum():
    t = torch.arange(16000) / 16000
    audio = 0.5 * torch.sin(2 * math.pi * 440 * t)[None]
    mel = log_mel(audio)
    rebuilt = griffin_lim(mel, iterations=32)
    assert rebuilt.shape == (1, mel.shape[1] * 160)
    error = (log_mel(rebuilt) - mel).abs().mean()
    noise_error = (log_mel(torch.randn_like(audio) * 0.1) - mel).abs().mean()
    assert error < 0.5 * noise_error


def test_codec_folder_round_trip_and_lengths(tmp_path, cpu_vae):
    torch.manual_seed(2)
    codec = Codec(cpu_vae, build_vocoder("cpu").eval())
    codec.save_pretrained(tmp_path / "codec")
    loaded = Codec.from_pretrained(tmp_path / "codec")
    audio = torch.randn(1, 5000) * 0.1  # 31 frames -> padded to 32
    latents = loaded.encode(audio)
    assert latents.shape == (1, 8, 8, 16)
    torch.testing.assert_close(latents, codec.encode(audio))
    assert loaded.roundtrip(audio).shape == (1, 5000)


def test_codec_without_vocoder_falls_back_to_griffin_lim(tmp_path, cpu_vae):
    Codec(cpu_vae).save_pretrained(tmp_path / "codec")
    codec = Codec.from_pretrained(tmp_path / "codec")
    assert codec.vocoder is None
    assert codec.decode(torch.zeros(1, 8, 4, 16)).shape == (1, 16 * 160)


def test_codec_rejects_empty_audio(cpu_vae):
    with pytest.raises(InputError, match="non-empty"):
        Codec(cpu_vae).encode(torch.zeros(1, 0))

