"""Mixing two clips by relative sound pressure level (Tokozume et al.), as Tango augments.

SPEC 1: with G1, G2 the clips' sound pressure levels in dB,
    p   = 1 / (1 + 10 ** ((G1 - G2) / 20))
    mix = (p * x1 + (1 - p) * x2) / sqrt(p ** 2 + (1 - p) ** 2)
so the louder clip gets the smaller weight and both are heard. G is the maximum over frames
(2048-sample periodic Hann window, hop 1024, at 16 kHz) of the A-weighted spectral power in dB,
floored at -80 dB. Captions are joined as "c1 and c2".
"""

from __future__ import annotations

import numpy as np

from foleyflow.audio.io import SAMPLE_RATE

SPL_FLOOR_DB = -80.0


def a_weighting_db(frequencies: np.ndarray, floor_db: float = SPL_FLOOR_DB) -> np.ndarray:
    """IEC 61672 A-weighting in dB at the given frequencies (Hz), floored at ``floor_db``."""
    f2 = np.asarray(frequencies, dtype=np.float64) ** 2
    with np.errstate(divide="ignore"):
        response = (12194.0**2 * f2**2) / (
            (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
        )
        weight = 20.0 * np.log10(response) + 2.0
    return np.maximum(weight, floor_db)


def sound_pressure_level(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, floor_db: float = SPL_FLOOR_DB) -> float:
    """G: the loudest frame's A-weighted power in dB (2048-sample frames at 16 kHz, hop half a frame)."""
    n_fft = 2048 if sample_rate <= 16_000 else 4096
    hop = n_fft // 2
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    starts = np.arange(0, audio.size - n_fft + 1, hop)
    frames = audio[starts[:, None] + np.arange(n_fft)[None, :]]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    weights = 10.0 ** (a_weighting_db(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), floor_db) / 10.0)
    frame_power = np.maximum((power * weights).sum(axis=-1), 10.0 ** (floor_db / 10.0))
    return float(10.0 * np.log10(frame_power).max())


def mixing_weight(level1_db: float, level2_db: float) -> float:
    """p = 1 / (1 + 10 ** ((G1 - G2) / 20)): the weight of the first clip."""
    return 1.0 / (1.0 + 10.0 ** ((level1_db - level2_db) / 20.0))


def pressure_level_mix(x1: np.ndarray, x2: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mix two clips by relative pressure level; the shorter one is zero-padded."""
    x1 = np.asarray(x1, dtype=np.float32)
    x2 = np.asarray(x2, dtype=np.float32)
    length = max(x1.size, x2.size)
    x1 = np.pad(x1, (0, length - x1.size))
    x2 = np.pad(x2, (0, length - x2.size))
    p = mixing_weight(sound_pressure_level(x1, sample_rate), sound_pressure_level(x2, sample_rate))
    return ((p * x1 + (1.0 - p) * x2) / np.sqrt(p**2 + (1.0 - p) ** 2)).astype(np.float32)


def join_captions(caption1: str, caption2: str) -> str:
    """Tango's caption for a mix: "c1 and c2"."""
    return f"{caption1.strip()} and {caption2.strip()}"
