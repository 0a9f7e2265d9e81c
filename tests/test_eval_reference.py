"""Ground-truth metrics for edits: log-mel L1, LSD and preservation of the untouched part."""

import numpy as np
import pytest

from foleyflow.evaluation import reference


def _noise(seed, seconds=1.0, scale=0.1):
    return (np.random.default_rng(seed).normal(size=int(16_000 * seconds)) * scale).astype(np.float32)


def test_identical_audio_scores_zero():
    x = _noise(0)
    assert reference.logmel_l1(x, x) == 0.0
    assert reference.lsd(x, x) == 0.0


def test_lsd_of_a_gain_is_the_log10_of_the_power_ratio():
    # Scaling by g changes every log10 power by 2 log10 g; LSD is its absolute value.
    x = _noise(1) + 0.05
    assert reference.lsd(x * 2.0, x) == pytest.approx(2 * np.log10(2.0), rel=1e-3)


def test_logmel_l1_matches_a_direct_computation_and_crops_to_the_shorter():
    from foleyflow.audio.mel import log_mel

    a, b = _noise(2), _noise(3)[:15_000]
    expected = np.abs(log_mel(a[:15_000])[0].numpy() - log_mel(b)[0].numpy()).mean()
    assert reference.logmel_l1(a, b) == pytest.approx(expected, rel=1e-6)


def test_untouched_frames_find_where_an_added_event_is_silent():
    base = _noise(4, seconds=2.0, scale=0.05)
    event = np.zeros_like(base)
    event[16_000:24_000] = np.sin(2 * np.pi * 700 * np.arange(8000) / 16_000) * 0.5
    target = 0.8 * base + event  # the mix also changes the base's level everywhere
    mask = reference.untouched_frames(base, target)
    frames = np.arange(mask.size) * 160
    assert mask[frames < 15_000].mean() > 0.95
    assert not mask[(frames > 17_000) & (frames < 23_000)].any()


def test_preservation_rewards_keeping_the_untouched_part():
    base = _noise(5, seconds=2.0, scale=0.05)
    event = np.zeros_like(base)
    event[16_000:24_000] = np.sin(2 * np.pi * 700 * np.arange(8000) / 16_000) * 0.5
    target = base + event
    faithful = target.copy()
    faithful[16_000:24_000] = base[16_000:24_000]  # missed the edit but kept the rest
    destroyed = _noise(6, seconds=2.0, scale=0.05)
    assert reference.preservation_l1(faithful, base, target) < 0.05
    assert reference.preservation_l1(destroyed, base, target) > 0.2
