"""The iSTFT vocoder (Vocos' design): synthesis settings, shapes, folders, the codec (its recipe: test_models_codec_recipes)."""

from __future__ import annotations

import pytest
import torch

from foleyflow.errors import InputError
from foleyflow.models.codec import Codec
from foleyflow.models.istft_vocoder import IstftVocoder, IstftVocoderConfig
from foleyflow.models.vae import build_vae
from foleyflow.models.vocoder import build_vocoder, load_vocoder, save_vocoder, vocode, vocoder_family

TINY = {"dim": 16, "intermediate_dim": 32, "num_layers": 2}


def test_the_synthesis_inverts_the_stft_it_predicts(monkeypatch):
    """Given the true centred STFT of a clip, the vocoder's synthesis returns the clip: the
    frame count (mel frames + 1), hop, window and length trimming agree with the analysis."""
    vocoder = IstftVocoder(IstftVocoderConfig(**TINY))
    audio = torch.randn(2, 30 * 160)
    config = vocoder.config
    spectrum = torch.stft(audio, config.n_fft, config.hop_length, config.n_fft, torch.hann_window(config.n_fft), center=True, return_complex=True)
    assert spectrum.shape[-1] == 30 + 1
    monkeypatch.setattr(vocoder, "spectrum", lambda mel: spectrum)
    torch.testing.assert_close(vocoder(torch.zeros(2, 30, 64)), audio, atol=1e-5, rtol=0)


def test_shapes_and_the_mel_layouts():
    vocoder = build_vocoder("istft-cpu", **TINY).eval()
    with torch.no_grad():
        assert vocode(vocoder, torch.randn(2, 10, 64)).shape == (2, 1600)
        assert vocode(vocoder, torch.randn(2, 1, 10, 64)).shape == (2, 1600)
        spectrum = vocoder.spectrum(torch.full((1, 10, 64), 50.0))
    assert spectrum.shape == (1, 321, 11) and spectrum.is_complex()
    assert torch.isfinite(spectrum.abs()).all()  # the magnitude clip keeps a diverged head finite
    with pytest.raises(InputError, match="mel as"):
        vocode(vocoder, torch.randn(2, 10, 80))
    assert build_vocoder("istft-vocos").config.dim == 512
    with pytest.raises(InputError, match="unknown vocoder preset"):
        build_vocoder("istft-huge")
    with pytest.raises(InputError, match="does not take"):
        build_vocoder("istft-cpu", upsample_rates=[5, 4])


def test_folder_round_trip_names_the_family(tmp_path):
    torch.manual_seed(0)
    vocoder = build_vocoder("istft-cpu", **TINY).eval()
    save_vocoder(vocoder, tmp_path / "vocoder")
    loaded = load_vocoder(tmp_path / "vocoder")
    assert isinstance(loaded, IstftVocoder) and loaded.config == vocoder.config
    assert vocoder_family(loaded) == "iSTFT vocoder" and vocoder_family(build_vocoder("cpu")) == "HiFi-GAN" and vocoder_family(None) == "Griffin-Lim"
    mel = torch.randn(1, 12, 64)
    with torch.no_grad():
        torch.testing.assert_close(vocode(loaded, mel), vocode(vocoder, mel))


def test_a_codec_folder_with_an_istft_vocoder_uses_it(tmp_path):
    torch.manual_seed(0)
    codec = Codec(build_vae("cpu").eval(), build_vocoder("istft-cpu", **TINY).eval())
    codec.save_pretrained(tmp_path / "codec")
    loaded = Codec.from_pretrained(tmp_path / "codec")
    assert isinstance(loaded.vocoder, IstftVocoder)
    audio = torch.randn(1, 5000) * 0.1
    torch.testing.assert_close(loaded.roundtrip(audio), codec.roundtrip(audio))

