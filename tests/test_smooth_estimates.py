"""Smooth estimates of an STFT magnitude: each term of the MR-STFT figure at its own minimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleyflow.audio.mel import mel_band_of_bins
from foleyflow.models.smooth_estimates import SmoothTargets, band_flat_targets, smooth_waveform
from foleyflow.training.recipes.codec import FIGURE_RESOLUTIONS, PWG_MAGNITUDE_FLOOR, figure_magnitudes, stft_magnitude_distance


def _noisy_tone() -> torch.Tensor:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    audio = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    return torch.from_numpy(audio.astype(np.float32))[None]


def _term_figures(targets: SmoothTargets, reference: torch.Tensor, scale_mean: float = 1.0, scale_median: float = 1.0) -> float:
    scaled = SmoothTargets([m * scale_mean for m in targets.mean], [m * scale_median for m in targets.median])
    return scaled.score(reference)


def test_every_bin_has_a_band_and_the_mel_grid_keeps_its_uncovered_bins():
    assert mel_band_of_bins()[0] == -1 and mel_band_of_bins()[-1] == -1  # DC and Nyquist lie under no triangle
    for n_fft, _ in FIGURE_RESOLUTIONS:
        bands = mel_band_of_bins(n_fft=n_fft, every_bin=True)
        assert bands.shape == (n_fft // 2 + 1,) and bands.min() == 0 and bands.max() == 63
        assert bool((bands[1:] >= bands[:-1]).all())  # bands run upwards with frequency
    assert torch.equal(mel_band_of_bins(n_fft=1024), mel_band_of_bins())  # the mel's own grid needs no interpolation


def test_band_flat_targets_are_flat_within_each_band_and_each_term_at_its_minimum():
    reference = _noisy_tone()
    targets = band_flat_targets(reference)
    for (n_fft, _), mean, median in zip(FIGURE_RESOLUTIONS, targets.mean, targets.median):
        bands = mel_band_of_bins(n_fft=n_fft, every_bin=True)
        for estimate in (mean, median):
            assert estimate.shape == figure_magnitudes(reference, n_fft, n_fft // 4)[0].shape
            band = torch.nonzero(bands == 20).flatten()
            assert torch.allclose(estimate[band], estimate[band[:1]].expand(len(band), -1))
    best = targets.score(reference)
    # the mean is the least-squares constant and the median the least-absolute one: moving either raises the figure
    for scales in ((1.05, 1.0), (0.95, 1.0), (1.0, 1.1), (1.0, 0.9)):
        assert _term_figures(targets, reference, *scales) > best
    # and the pair scores below either estimate used for both terms, as one magnitude would be
    for single in (targets.mean, targets.median):
        one = np.mean([float(stft_magnitude_distance(e, figure_magnitudes(reference, n, h)[0])) for (n, h), e in zip(FIGURE_RESOLUTIONS, single)])
        assert best <= one + 1e-6


def test_the_smooth_waveform_moves_towards_its_targets():
    reference = _noisy_tone()
    targets = band_flat_targets(reference)
    start = 0.05 * torch.from_numpy(np.random.default_rng(1).standard_normal(16000).astype(np.float32))[None]
    moved = smooth_waveform(targets, start, iterations=40)
    assert moved.shape == start.shape and bool(torch.isfinite(moved).all())
    assert float(targets.distance(moved)) < 0.8 * float(targets.distance(start))
    assert torch.allclose(smooth_waveform(targets, start, iterations=0), start, atol=1e-5)  # no step: the start, through stft and istft


def test_smooth_targets_distance_is_zero_only_at_its_targets():
    reference = _noisy_tone()
    own = [figure_magnitudes(reference, n, h)[0].clamp_min(PWG_MAGNITUDE_FLOOR) for n, h in FIGURE_RESOLUTIONS]
    exact = SmoothTargets(own, own)
    assert float(exact.distance(reference)) == pytest.approx(0.0, abs=1e-5) and exact.score(reference) == pytest.approx(0.0, abs=1e-5)
    assert float(exact.distance(0.5 * reference)) > 0.5
