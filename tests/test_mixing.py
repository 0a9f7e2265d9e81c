import numpy as np
import pytest

from foleyflow.audio.mixing import (
    a_weighting_db,
    join_captions,
    mixing_weight,
    pressure_level_mix,
    sound_pressure_level,
)


def _noise(seed, n=32000, scale=0.1):
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_a_weighting_known_values():
    # IEC 61672 table: 0 dB at 1 kHz, -19.1 dB at 100 Hz, -2.5 dB at 10 kHz, -50.5 dB at 20 Hz
    weights = a_weighting_db(np.array([1000.0, 100.0, 10000.0, 20.0]))
    np.testing.assert_allclose(weights, [0.0, -19.1, -2.5, -50.5], atol=0.15)  # the table rounds to 0.1 dB
    assert a_weighting_db(np.array([0.0]))[0] == -80.0


def test_level_rises_by_20_db_for_10x_amplitude():
    quiet = _noise(0, scale=0.01)
    assert sound_pressure_level(10 * quiet) - sound_pressure_level(quiet) == pytest.approx(20.0, abs=1e-6)


def test_level_is_floored_for_silence():
    assert sound_pressure_level(np.zeros(16000)) == pytest.approx(-80.0)


def test_equal_levels_give_half():
    x = _noise(1)
    assert mixing_weight(sound_pressure_level(x), sound_pressure_level(x)) == pytest.approx(0.5)


def test_louder_input_gets_the_smaller_weight():
    loud, quiet = _noise(2, scale=0.5), _noise(3, scale=0.05)
    g_loud, g_quiet = sound_pressure_level(loud), sound_pressure_level(quiet)
    p = mixing_weight(g_loud, g_quiet)
    assert p < 0.5
    assert p == pytest.approx(1.0 / (1.0 + 10 ** ((g_loud - g_quiet) / 20)))


def test_mix_formula_and_energy_normalisation():
    n = 16000
    t = np.arange(n) / 16000
    x1 = (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    x2 = (0.3 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)  # orthogonal, same energy
    mixed = pressure_level_mix(x1, x2)
    p = mixing_weight(sound_pressure_level(x1), sound_pressure_level(x2))
    expected = (p * x1 + (1 - p) * x2) / np.sqrt(p**2 + (1 - p) ** 2)
    np.testing.assert_allclose(mixed, expected, atol=1e-6)
    assert np.sum(mixed.astype(np.float64) ** 2) == pytest.approx(np.sum(x1.astype(np.float64) ** 2), rel=1e-3)


def test_shorter_clip_is_zero_padded():
    assert pressure_level_mix(_noise(4, 1000), _noise(5, 3000)).shape == (3000,)


def test_captions_join_with_and():
    assert join_captions(" A cow moos", "rain falls ") == "A cow moos and rain falls"
