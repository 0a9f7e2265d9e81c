"""An edit of the 16 kHz mono mix carried back onto the recording's own rate and channels."""

import numpy as np
import pytest

from foleyflow.audio.io import to_mono_at_rate
from foleyflow.pipelines.original_format import carry_edit_to_original, frame_curve_at_rate, gain_and_residual


def _tone(freq, rate, seconds, amplitude=0.3):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_a_16k_mono_recording_gets_the_editors_output_back():
    rng = np.random.default_rng(0)
    original = 0.1 * rng.standard_normal((8000, 1))
    edited = (0.5 * original[:, 0] + _tone(700, 16000, 0.5)).astype(np.float32)
    np.testing.assert_allclose(carry_edit_to_original(original, 16000, edited)[:, 0], edited, atol=1e-5)


def test_an_edit_that_changes_nothing_gives_the_recording_back():
    original = 0.1 * np.random.default_rng(1).standard_normal((48000, 2))  # white: energy up to 24 kHz
    unchanged = to_mono_at_rate(original, 48000)
    np.testing.assert_allclose(carry_edit_to_original(original, 48000, unchanged), original, atol=1e-5)


def test_a_removal_keeps_the_stereo_image_no_ghost_in_the_other_channel():
    # left holds a 1 kHz tone, right a 3 kHz one; the edit removes the 1 kHz tone from the mix
    rate, seconds = 48000, 1.0
    original = np.stack([_tone(1000, rate, seconds), _tone(3000, rate, seconds)], axis=1)
    edited = to_mono_at_rate(np.stack([np.zeros(rate), _tone(3000, rate, seconds)], axis=1), rate)
    carried = carry_edit_to_original(original, rate, edited)
    middle = slice(rate // 10, -rate // 10)  # away from the clip's edges
    assert _rms(carried[middle, 0]) < 0.02 * _rms(original[middle, 0])  # the tone is gone from its channel
    np.testing.assert_allclose(carried[middle, 1], original[middle, 1], atol=0.01)  # the other channel keeps its own sound
    # adding the mix's difference to both channels instead would leave half the tone, inverted, in the right one
    assert _rms(carried[middle, 1] - original[middle, 1]) < 0.05 * _rms(0.5 * original[middle, 0])


def test_a_removal_takes_the_treble_above_the_editor_with_it():
    rate = 48000
    noise = 0.1 * np.random.default_rng(2).standard_normal((rate, 1))  # broadband, 0-24 kHz
    mix = to_mono_at_rate(noise, rate)
    edited = mix.copy()
    edited[: mix.size // 2] = 0.0  # the first half removed
    carried = carry_edit_to_original(noise, rate, edited)[:, 0]
    first, second = slice(rate // 20, rate // 2 - rate // 20), slice(rate // 2 + rate // 20, -rate // 20)
    assert _rms(carried[first]) < 0.02 * _rms(noise[first, 0])  # above 8 kHz too: not only the editor's band
    np.testing.assert_allclose(carried[second], noise[second, 0], atol=1e-4)


def test_an_added_sound_goes_to_every_channel_and_the_recording_stays_under_it():
    rate, seconds = 44100, 1.0
    rng = np.random.default_rng(3)
    original = 0.05 * rng.standard_normal((rate, 2))
    mix = to_mono_at_rate(original, rate)
    added = _tone(2000, 16000, seconds)
    added[: added.size // 2] = 0.0  # the tone enters halfway
    carried = carry_edit_to_original(original, rate, (mix + added).astype(np.float32))
    tone = _tone(2000, rate, seconds)
    late, early = slice(rate // 2 + rate // 10, -rate // 10), slice(rate // 10, rate // 2 - rate // 10)
    for c in range(2):
        change = carried[:, c] - original[:, c]
        amplitude = 0.3 * np.dot(change[late], tone[late]) / np.dot(tone[late], tone[late])  # projection onto the tone
        assert amplitude == pytest.approx(0.3, rel=0.05)  # the whole tone in each channel: the channels' mean is the edit
        assert _rms(change[early]) < 1e-3  # before it enters, the recording as it was, treble included


def test_the_gain_and_residual_rebuild_the_edit_and_the_gain_never_amplifies():
    rng = np.random.default_rng(4)
    source = 0.1 * rng.standard_normal(4000)
    edited = 0.3 * source + _tone(500, 16000, 0.25)
    gain, residual = gain_and_residual(source, edited)
    assert float(gain.min()) >= 0.0 and float(gain.max()) <= 1.0
    from foleyflow.pipelines.compositing import resynthesised, spectra

    np.testing.assert_allclose(resynthesised(gain * spectra(source)[0] + residual, source.size), edited, atol=1e-9)


def test_a_per_frame_value_is_interpolated_between_frame_centres():
    curve = frame_curve_at_rate(np.array([0.0, 1.0]), 48000, 48000)  # frames at 0 and 256 / 16000 s
    assert curve[0] == 0.0 and curve[384] == pytest.approx(0.5) and curve[768] == 1.0 and curve[-1] == 1.0
