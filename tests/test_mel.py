"""The log-mel front-end against a reference written here from the formulas (NumPy only)."""

import numpy as np
import pytest
import torch

from foleyflow.audio.mel import (
    TANGO_NUM_SAMPLES,
    MelConfig,
    log_mel,
    slaney_mel_filters,
    tango_waveform_prep,
    to_vae_layout,
)


def _hz_to_slaney_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    log_step = np.log(6.4) / 27.0
    linear = hz / f_sp
    logarithmic = 1000.0 / f_sp + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step
    return np.where(hz >= 1000.0, logarithmic, linear)


def _slaney_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 1000.0 / f_sp, 1000.0 * np.exp(log_step * (mel - 1000.0 / f_sp)), f_sp * mel)


def _reference_filterbank(sample_rate=16000, n_fft=1024, n_mels=64, f_min=0.0, f_max=8000.0):
    """(n_mels, n_fft//2+1) triangles written bin by bin, Slaney area normalisation."""
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(f_min), _hz_to_slaney_mel(f_max), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    bank = np.zeros((n_mels, bins.size))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(bins):
            rising = (f - left) / (centre - left)
            falling = (right - f) / (right - centre)
            bank[m, k] = max(0.0, min(rising, falling)) * 2.0 / (right - left)
    return bank


def _reference_log_mel(audio, n_fft=1024, hop=160):
    padded = np.pad(audio.astype(np.float64), n_fft // 2, mode="reflect")
    frames = audio.size // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    stack = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(frames)])
    magnitude = np.abs(np.fft.rfft(stack, axis=1))
    mel = magnitude @ _reference_filterbank().T
    return np.log(np.maximum(mel, 1e-5))


def test_filterbank_matches_slaney_formula():
    ours = slaney_mel_filters(MelConfig()).numpy().T
    np.testing.assert_allclose(ours, _reference_filterbank(), rtol=1e-5, atol=1e-8)


def test_log_mel_matches_numpy_reference():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    ours = log_mel(audio.astype(np.float32))[0].numpy()
    reference = _reference_log_mel(audio.astype(np.float32))
    assert ours.shape == reference.shape == (100, 64)
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_ten_seconds_give_1024_frames_in_vae_layout():
    mel = log_mel(torch.zeros(2, TANGO_NUM_SAMPLES))
    assert mel.shape == (2, 1024, 64)
    assert to_vae_layout(mel).shape == (2, 1, 1024, 64)
    assert torch.all(mel == np.log(1e-5))  # silence sits exactly on the clamp


def test_tango_prep_removes_mean_scales_peak_and_fixes_length():
    audio = np.full(1000, 0.2, dtype=np.float32)
    audio[:500] += np.linspace(-1, 1, 500, dtype=np.float32)
    prepared = tango_waveform_prep(audio)
    assert prepared.shape == (TANGO_NUM_SAMPLES,)
    assert np.abs(prepared[:1000].mean()) < 1e-6
    assert np.isclose(np.abs(prepared).max(), 0.5, atol=1e-6)
    assert np.all(prepared[1000:] == 0)
    long = tango_waveform_prep(np.random.default_rng(0).standard_normal(200_000).astype(np.float32))
    assert long.shape == (TANGO_NUM_SAMPLES,)


@pytest.mark.parametrize("samples", [1, 300, 1601])
def test_short_input_still_gives_frames(samples):
    assert log_mel(np.zeros(samples, dtype=np.float32)).shape == (1, max(samples // 160, 1), 64)


def test_projection_onto_the_mel_never_increases_the_mel_error_and_keeps_zero_bins():
    """Lee & Seung's multiplicative NNLS update: ||M F - m|| does not increase, M stays >= 0,
    a zero bin stays zero, and a consistent magnitude is a fixed point."""
    from foleyflow.audio.mel import project_onto_mel, slaney_mel_filters

    torch.manual_seed(0)
    filters = slaney_mel_filters()
    true = torch.rand(2, 6, filters.shape[0])
    mel = torch.log(true @ filters)
    start = torch.rand_like(true)
    start[..., 100] = 0
    errors = [float(torch.linalg.norm(project_onto_mel(start, mel, n) @ filters - mel.exp())) for n in (0, 1, 5, 20)]
    assert all(later <= earlier * (1 + 1e-5) for earlier, later in zip(errors, errors[1:])) and errors[-1] < 0.2 * errors[0]
    projected = project_onto_mel(start, mel, 20)
    assert (projected >= 0).all() and (projected[..., 100] == 0).all()
    torch.testing.assert_close(project_onto_mel(true, mel, 5), true, rtol=1e-3, atol=1e-6)


def test_a_floored_mel_band_is_an_upper_bound_for_the_projection():
    """Digital silence puts the mel at its floor, where the true energy may be anything below it:
    the projection pulls a floored band down to the floor but never lifts it up to it, and the
    hinge error sum (MF - m)^2 + sum max(MF - floor, 0)^2 does not increase."""
    from foleyflow.audio.mel import MelConfig, project_onto_mel, slaney_mel_filters

    torch.manual_seed(0)
    floor = MelConfig().clamp_min
    filters = slaney_mel_filters()
    true = torch.rand(1, 4, filters.shape[0])
    true[:, 2] = 0.0  # a silent frame
    mel = torch.log((true @ filters).clamp_min(floor))
    quiet = 1e-3 * floor * torch.rand(1, filters.shape[0])
    start = torch.rand_like(true)
    start[:, 2] = quiet  # already below the floor: must stay as it is
    projected = project_onto_mel(start, mel, 10)
    torch.testing.assert_close(projected[:, 2], quiet, rtol=1e-6, atol=0)
    loud = start.clone()
    loud[:, 2] = 1.0  # far above the floor: pulled down to it
    loud_projected = project_onto_mel(loud, mel, 200)
    assert float((loud_projected[:, 2] @ filters).max()) <= floor * 1.05

    def hinge_error(magnitude):
        energies = magnitude @ filters
        silent = torch.zeros_like(energies, dtype=torch.bool)
        silent[:, 2] = True
        return float(torch.where(silent, (energies - floor).clamp_min(0), energies - mel.exp()).square().sum())

    errors = [hinge_error(project_onto_mel(loud, mel, n)) for n in (0, 1, 5, 20)]
    assert all(later <= earlier * (1 + 1e-5) for earlier, later in zip(errors, errors[1:])) and errors[-1] < 0.1 * errors[0]
