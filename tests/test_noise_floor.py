"""`foleyflow bench noise-floor`: MR-STFT on stationary noise, and the ideal sampling vocoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foleyflow.audio.mel import log_mel
from foleyflow.interfaces.cli import main
from foleyflow.models.codec import Codec
from foleyflow.models.noise_floor import PEAK, SPECTRA, coloured_noise, ideal_sample
from foleyflow.models.vae import build_vae
from foleyflow.models.vocoder import build_vocoder
from foleyflow.training.recipes.codec import multi_resolution_stft_distance

SMALL_MAGNITUDE_VOCODER = {"dim": 16, "intermediate_dim": 32, "num_layers": 1, "mel_projection_iterations": 10,
                           "griffin_lim_iterations": 8, "mel_consistent_iterations": 4}


def _band_power_db(audio: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(audio.size, 1 / 16000)
    return 10 * math.log10(power[(frequencies >= low) & (frequencies < high)].mean())


def test_coloured_noise_has_its_spectrum_and_peak():
    rng = np.random.default_rng(0)
    noise = {name: coloured_noise(name, 32000, rng) for name in SPECTRA}
    for audio in noise.values():
        assert audio.dtype == np.float32 and audio.shape == (32000,) and np.abs(audio).max() == pytest.approx(PEAK)
    # power per octave band: flat for white, -3 dB per octave for pink, -6 for brown (three octaves apart)
    slopes = {name: _band_power_db(noise[name], 2000, 4000) - _band_power_db(noise[name], 250, 500) for name in ("white", "pink", "brown")}
    assert slopes["white"] == pytest.approx(0, abs=1) and slopes["pink"] == pytest.approx(-9, abs=1) and slopes["brown"] == pytest.approx(-18, abs=1)
    band = noise["band-pass 1-3 kHz"]
    assert _band_power_db(band, 1800, 2200) - _band_power_db(band, 5000, 7000) > 40
    assert not np.array_equal(coloured_noise("white", 100, np.random.default_rng(1)), coloured_noise("white", 100, np.random.default_rng(2)))


def test_mr_stft_between_two_draws_of_white_noise_is_the_rayleigh_closed_form():
    # Each bin of Gaussian noise has a Rayleigh magnitude: for two independent draws, spectral
    # convergence sqrt(2 Var|X| / E|X|^2) = sqrt(2 - pi / 2), and E|log|X1| - log|X2|| = ln 2
    # (half the mean absolute value of a standard logistic variable, the log-ratio of two exponentials).
    rng = np.random.default_rng(0)
    first, second = (torch.from_numpy(rng.standard_normal(64000).astype(np.float32))[None] for _ in range(2))
    expected = math.sqrt(2 - math.pi / 2) + math.log(2)
    assert float(multi_resolution_stft_distance(second, first)) == pytest.approx(expected, rel=0.03)


def test_the_ideal_sample_carries_the_mel_and_only_its_own_realisation_matches_it():
    torch.manual_seed(0)
    vocoder = build_vocoder("istft-gla-cpu", **SMALL_MAGNITUDE_VOCODER).eval()
    rng = np.random.default_rng(0)
    first, second = (torch.from_numpy(coloured_noise("pink", 16000, rng))[None] for _ in range(2))
    mel = log_mel(first)
    length = mel.shape[1] * 160
    with torch.no_grad():
        sampled = ideal_sample(vocoder, mel, second[..., :length])
        own = ideal_sample(vocoder, mel, first[..., :length])
    assert sampled.shape == own.shape == (1, length)
    # the other draw, moved onto the mel, has nearly the mel's band energies ...
    assert float((log_mel(sampled) - mel).abs().mean()) < 0.25
    assert float((log_mel(sampled) - mel).abs().mean()) < float((log_mel(second[..., :length]) - mel).abs().mean())
    # ... but only the first draw's own magnitude brings the fine structure back
    reference = first[..., :length]
    assert float(multi_resolution_stft_distance(own, reference)) < 0.8 * float(multi_resolution_stft_distance(sampled, reference))


@pytest.fixture(scope="module")
def magnitude_codec(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("codec")
    Codec(build_vae("cpu"), build_vocoder("istft-gla-cpu", **SMALL_MAGNITUDE_VOCODER)).save_pretrained(folder)
    return folder


def test_bench_noise_floor_prints_a_row_per_spectrum(tmp_path, magnitude_codec, capsys):
    out = tmp_path / "floor.md"
    assert main(["bench", "noise-floor", "--model", str(magnitude_codec), "--seeds", "1", "--seconds", "0.5", "--out", str(out)]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| spectrum")]
    assert [row.split(" | ")[0][2:] for row in rows] == list(SPECTRA)
    for row in rows:
        griffin_lim, vocoder, draw, sampled, own, bar = (float(cell) for cell in row.split(" | ")[1:7])
        assert bar == pytest.approx(0.7 * griffin_lim, abs=1e-3) and own < sampled and own < draw
    assert "--seeds 1 --seconds 0.5" in text


def test_bench_noise_floor_refuses_a_vocoder_without_the_magnitude_pipeline(tmp_path, capsys):
    torch.manual_seed(0)
    Codec(build_vae("cpu"), build_vocoder("cpu", upsample_initial_channel=32)).save_pretrained(tmp_path / "hifigan")
    assert main(["bench", "noise-floor", "--model", str(tmp_path / "hifigan"), "--seeds", "1", "--seconds", "0.5"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "not one" in error[0]
