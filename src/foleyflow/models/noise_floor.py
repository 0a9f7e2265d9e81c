"""What the MR-STFT distance can credit a vocoder with on sounds that are noise.

A log-mel frame keeps each band's energy and nothing of how it is spread over the band's STFT
bins. For a noise-like sound that spread is one random draw among many equally right ones, so
even an ideal vocoder, one that knows the process exactly, can only return *another* draw, and
MR-STFT scores the difference between two draws as error. This module measures that on
stationary coloured noise, where a second draw is at hand: two independent realisations of the
same process, the first one's mel given.

Rows, each an MR-STFT distance to realisation 1 (Parallel WaveGAN's figure, the one ``bench
codec`` reports), mean over seeds:

    griffin_lim     Griffin-Lim (32 iterations) from the mel, as ``bench codec``'s baseline;
    vocoder         the codec's vocoder from the mel;
    another_draw    realisation 2 as it is: a perfect draw of the process with its own (exactly
                    consistent) phase, whose band energies differ from the mel's by the draws'
                    own fluctuation;
    ideal_sample    the magnitude vocoder's own pipeline with its network replaced by the true
                    STFT magnitude of realisation 2, projected onto realisation 1's mel (so each
                    band carries the mel's energy): the ideal magnitude network that samples,
                    through the shipped phase search;
    true_magnitude  the same pipeline given realisation 1's own STFT magnitude: what a vocoder
                    would score if the mel determined the fine structure (it does not); the
                    distance left there is the phase search's own.

An ideal vocoder that samples lies near the two draw rows: between a draw with the mel's band
energies but the phase search's artefacts and one with no artefacts but its own band energies.

Issue 4's bar asks a vocoder for an MR-STFT 30% below Griffin-Lim's; where the ideal sample is
not that far below, no vocoder that makes noise sound like noise can meet it on that sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foleyflow.audio.mel import SAMPLE_RATE, log_mel, magnitude_spectrogram
from foleyflow.errors import InputError
from foleyflow.models.benchmark import GRIFFIN_LIM_ITERATIONS  # bench codec's baseline
from foleyflow.models.istft_vocoder import IstftVocoder
from foleyflow.models.vocoder import griffin_lim, is_magnitude_vocoder
from foleyflow.training.recipes.codec import multi_resolution_stft_distance

PEAK = 0.3  # every realisation is normalised to this peak: a moderate level, no clipping


def _white(f: np.ndarray) -> np.ndarray:
    return np.ones_like(f)


def _pink(f: np.ndarray) -> np.ndarray:
    return f**-0.5  # power falls 3 dB per octave


def _brown(f: np.ndarray) -> np.ndarray:
    return f**-1.0  # 6 dB per octave


def _band_pass(f: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((f - 2000.0) / 600.0) ** 2) + 1e-3  # 1-3 kHz, 60 dB below outside


def _low_pass(f: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + (f / 500.0) ** 4)  # 500 Hz, 24 dB per octave


# amplitude response of each spectrum (frequency in Hz, DC set to the first bin's frequency)
SPECTRA = {"white": _white, "pink": _pink, "brown": _brown, "band-pass 1-3 kHz": _band_pass, "low-pass 500 Hz": _low_pass}


def coloured_noise(spectrum: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) float32 Gaussian noise shaped by ``SPECTRA[spectrum]`` in the frequency domain,
    normalised to ``PEAK``: the middle ``samples`` of a slightly longer realisation (filtering in
    the frequency domain makes a circularly stationary process, so any stretch of it is a draw;
    the margin only fixes which samples the figures were measured on)."""
    margin = 2048
    white = rng.standard_normal(samples + 2 * margin)
    frequencies = np.fft.rfftfreq(white.size, 1.0 / SAMPLE_RATE)
    frequencies[0] = frequencies[1]
    shaped = np.fft.irfft(np.fft.rfft(white) * SPECTRA[spectrum](frequencies), white.size)[margin : margin + samples]
    return (PEAK * shaped / np.abs(shaped).max()).astype(np.float32)


def ideal_sample(vocoder: IstftVocoder, mel: torch.Tensor, other_realisation: torch.Tensor) -> torch.Tensor:
    """The magnitude vocoder's pipeline (projection onto ``mel``, its phase search) run on the true
    STFT magnitude of ``other_realisation`` (batch, frames * hop samples) instead of its network's
    prediction: (batch, frames * hop) audio."""
    magnitude = magnitude_spectrogram(other_realisation, keep_last_frame=True).transpose(1, 2)  # (batch, bins, frames + 1)
    return vocoder.phase_search(vocoder.project_onto_input(magnitude, mel), mel)


@dataclass
class NoiseFloorRow:
    spectrum: str
    draws: int
    griffin_lim: float
    vocoder: float
    another_draw: float
    ideal_sample: float
    true_magnitude: float


@torch.no_grad()
def noise_floor(codec, seeds: int = 4, seconds: float = 4.0) -> list[NoiseFloorRow]:
    """One row per spectrum of ``SPECTRA``, each the mean over ``seeds`` pairs of realisations.
    The pipeline rows need a magnitude vocoder (the shipped default is one)."""
    vocoder = codec.vocoder
    if not is_magnitude_vocoder(vocoder):
        raise InputError("the noise floor runs the magnitude vocoder's pipeline; this codec's vocoder is not one")
    samples = int(seconds * SAMPLE_RATE)
    rows = []
    for spectrum in SPECTRA:
        figures: dict[str, list[float]] = {}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            first, second = (torch.from_numpy(coloured_noise(spectrum, samples, rng))[None] for _ in range(2))
            mel = log_mel(first)
            length = mel.shape[1] * vocoder.config.hop_length
            reference = first[..., :length]
            candidates = {
                "griffin_lim": griffin_lim(mel, GRIFFIN_LIM_ITERATIONS),
                "vocoder": codec.mel_to_audio(mel)[..., :length],
                "another_draw": second[..., :length],
                "ideal_sample": ideal_sample(vocoder, mel, second[..., :length]),
                "true_magnitude": ideal_sample(vocoder, mel, reference),
            }
            for name, audio in candidates.items():
                figures.setdefault(name, []).append(float(multi_resolution_stft_distance(audio, reference)))
        rows.append(NoiseFloorRow(spectrum, seeds, **{name: float(np.mean(values)) for name, values in figures.items()}))
    return rows


def noise_floor_markdown(rows: list[NoiseFloorRow], command: str, threads: int) -> str:
    """The table BENCHMARKS.md shows, with each row's bar (30% below Griffin-Lim) and the ideal
    sample's gain over Griffin-Lim."""
    lines = [
        f"Stationary coloured noise, {rows[0].draws} pairs of realisations per spectrum; CPU threads: {threads}. Command: `{command}`",
        "",
        "MR-STFT distance to realisation 1, from its mel (lower is closer):",
        "",
        "| spectrum | Griffin-Lim 32 it. | vocoder | another draw, as it is | ideal sample (another draw on the mel) | true magnitude | bar (30% below Griffin-Lim) | ideal sample vs Griffin-Lim |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        gain = row.ideal_sample / row.griffin_lim - 1.0
        lines.append(f"| {row.spectrum} | {row.griffin_lim:.3f} | {row.vocoder:.3f} | {row.another_draw:.3f} | {row.ideal_sample:.3f} | "
                     f"{row.true_magnitude:.3f} | {0.7 * row.griffin_lim:.3f} | {gain:+.0%} |")
    return "\n".join(lines) + "\n"
