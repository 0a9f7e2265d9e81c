"""`foleyflow bench noise-floor`: MR-STFT on stationary noise, and the ideal sampling vocoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foleyflow.audio.mel import log_mel
from foleyflow.interfaces.cli import main
from foleyflow.models.codec import Codec
from foleyflow.models.noise_floor import PEAK, SPECTRA, band_oracle_targets, coloured_noise, ideal_sample, mel_targets, process_estimates, process_targets
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


def test_smooth_estimates_of_white_noise_score_their_closed_form():
    # Knowing only the process, the best estimate of a Rayleigh magnitude R is its mean for the
    # spectral convergence, sqrt(Var R / E R^2) = sqrt(1 - pi / 4), and its median for the log
    # term, E|log R - log median R| = (gamma + ln ln 2 + 2 E1(ln 2)) / 2 (half the mean absolute
    # deviation of the log of an exponential variable about its median, ln ln 2).
    from scipy.special import exp1

    rng = np.random.default_rng(0)
    draws = torch.from_numpy(rng.standard_normal((64, 32000)).astype(np.float32))
    reference = torch.from_numpy(rng.standard_normal(32000).astype(np.float32))[None]
    expected = math.sqrt(1 - math.pi / 4) + (np.euler_gamma + math.log(math.log(2)) + 2 * exp1(math.log(2))) / 2
    smooth = process_targets(process_estimates(draws)).score(reference)
    assert smooth == pytest.approx(expected, rel=0.03)
    # well below another draw's distance (the closed form of the test above): smoothness pays
    assert smooth < 0.75 * float(multi_resolution_stft_distance(draws[:1], reference))


def test_what_the_mel_and_then_the_true_band_energies_add_to_the_smooth_estimate():
    rng = np.random.default_rng(0)
    draws = torch.from_numpy(np.stack([coloured_noise("brown", 16000, rng) for _ in range(16)]))
    reference = torch.from_numpy(coloured_noise("brown", 16000, rng))[None]
    process = process_estimates(draws)
    process_only = process_targets(process).score(reference)
    from_the_mel = mel_targets(log_mel(reference), process).score(reference)
    oracle = band_oracle_targets(reference, process).score(reference)
    # brown noise's level wanders from draw to draw; the mel's band energies pin it, the true ones at each resolution more so
    assert from_the_mel < process_only - 0.1 and oracle < from_the_mel


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
    assert main(["bench", "noise-floor", "--model", str(magnitude_codec), "--seeds", "1", "--seconds", "0.5", "--smooth-iterations", "20", "--out", str(out)]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    first, second = text.split("Smooth estimates")
    rows = [line for line in first.splitlines() if line.startswith("| ") and not line.startswith("| spectrum")]
    assert [row.split(" | ")[0][2:] for row in rows] == list(SPECTRA)
    for row in rows:
        griffin_lim, vocoder, draw, sampled, own, bar = (float(cell) for cell in row.split(" | ")[1:7])
        assert bar == pytest.approx(0.7 * griffin_lim, abs=1e-3) and own < sampled and own < draw
    smooth_rows = [line for line in second.splitlines() if line.startswith("| ") and not line.startswith("| spectrum")]
    assert [row.split(" | ")[0][2:] for row in smooth_rows] == list(SPECTRA)
    for row, smooth_row in zip(rows, smooth_rows):
        griffin_lim, bar, smooth, waveform, oracle = (float(cell) for cell in smooth_row.split(" | ")[1:6])
        assert griffin_lim == float(row.split(" | ")[1]) and bar == pytest.approx(0.7 * griffin_lim, abs=1e-3)
        # magnitudes no signal need have score below the signal that reaches for them
        assert oracle < waveform and smooth < waveform
    assert "--seeds 1 --seconds 0.5 --smooth-iterations 20" in text


def test_bench_noise_floor_refuses_a_vocoder_without_the_magnitude_pipeline(tmp_path, capsys):
    torch.manual_seed(0)
    Codec(build_vae("cpu"), build_vocoder("cpu", upsample_initial_channel=32)).save_pretrained(tmp_path / "hifigan")
    assert main(["bench", "noise-floor", "--model", str(tmp_path / "hifigan"), "--seeds", "1", "--seconds", "0.5"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "not one" in error[0]
