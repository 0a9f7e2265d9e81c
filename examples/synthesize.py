"""Re-create the bundled example clips deterministically (procedural sound, no licence strings).

    python examples/synthesize.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000


def _pink_bed(rng: np.random.Generator, seconds: float) -> np.ndarray:
    white = rng.standard_normal(int(seconds * RATE))
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(white.size, 1 / RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    bed = np.fft.irfft(spectrum, n=white.size)
    return 0.08 * bed / np.abs(bed).max()


def _chirp(rng: np.random.Generator, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(2500, 3500)
    phase = 2 * np.pi * (f0 * t + 1500 * t**2 / seconds * rng.choice([-1, 1]))
    return np.sin(phase) * np.hanning(t.size)


def _bell(seconds: float = 1.5, f0: float = 660.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    partials = [(1.0, 1.0), (2.76, 0.5), (5.4, 0.25)]
    tone = sum(a * np.sin(2 * np.pi * f0 * r * t) for r, a in partials)
    return tone * np.exp(-3.0 * t)


def park(seed: int = 0, seconds: float = 10.24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = _pink_bed(rng, seconds)
    for onset in rng.uniform(0.2, seconds - 0.5, size=9):
        start = int(onset * RATE)
        chirp = 0.25 * _chirp(rng)
        audio[start : start + chirp.size] += chirp[: audio.size - start]
    bell = 0.3 * _bell()
    start = int(5.0 * RATE)
    audio[start : start + bell.size] += bell
    return (audio / np.abs(audio).max() * 0.7).astype(np.float32)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "park_birds_bell.wav"
    sf.write(out, park(), RATE, subtype="PCM_16")
    print(f"wrote {out}")
