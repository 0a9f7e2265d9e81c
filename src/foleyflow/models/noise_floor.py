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

A vocoder need not sample, though: against an unknown draw the figure is lowest for a *smooth*
magnitude, each bin's mean magnitude (for spectral convergence) and median (for the log term)
given what is known (``smooth_estimates``). Three more rows, at the figure's own three STFT
resolutions:

    smooth_magnitude  those per-bin estimates, from ``PROCESS_DRAWS`` independent draws of the
                      process, scaled bin by bin by the mel's band energies over the expected
                      ones: what the mel's band energies buy, scored as magnitudes (no signal need
                      have them; an estimate, not a bound);
    smooth_waveform   a real signal reaching for them: Griffin-Lim's output with its STFT's
                      log-magnitude and phase moved by Adam to lower the figure to those
                      estimates (the mel's grid, so that each step is relative to each bin's
                      level);
    band_oracle       the same estimates scaled instead by each band's *true* energy in each frame
                      of each figure resolution, which is more than the mel tells. Given a band's
                      energy its bins are exchangeable, so the best estimate of them is smooth,
                      and this row is close to the best any magnitude scores knowing the band
                      energies (not exactly: it scales the process's median, not the median
                      given the band's energy, which differs where a band holds few bins). Where
                      even this row is above the bar, meeting the bar on that sound takes
                      within-band detail that, for noise, is chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foleyflow.audio.mel import SAMPLE_RATE, MelConfig, log_mel, magnitude_spectrogram, mel_band_of_bins
from foleyflow.errors import InputError
from foleyflow.models.benchmark import GRIFFIN_LIM_ITERATIONS  # bench codec's baseline
from foleyflow.models.istft_vocoder import IstftVocoder
from foleyflow.models.vocoder import griffin_lim, is_magnitude_vocoder
from foleyflow.models.smooth_estimates import SmoothTargets, smooth_waveform
from foleyflow.training.recipes.codec import FIGURE_RESOLUTIONS, PWG_MAGNITUDE_FLOOR, figure_magnitudes, multi_resolution_stft_distance

PEAK = 0.3  # every realisation is normalised to this peak: a moderate level, no clipping
# Independent draws whose magnitudes give each bin's mean and median: 64 put the estimates'
# own sampling error near 2% of the figure (white noise: 0.968 against the closed form's 0.947).
PROCESS_DRAWS = 64
PROCESS_SEED = 1000  # the draws that estimate the process are none of the scored ones (seeds 0 to 999)


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


def _mel_frame_weights(n_fft: int, hop: int, frames: int, mel_frames: int, mel_hop: int) -> torch.Tensor:
    """(frames, mel_frames): how much each mel frame's centre counts in each figure frame, the
    figure's Hann window squared (its power weighting) at the mel frame's centre, normalised."""
    offsets = np.arange(frames)[:, None] * hop - np.arange(mel_frames)[None, :] * mel_hop  # both STFTs are centred
    weights = np.where(np.abs(offsets) < n_fft / 2, np.cos(np.pi * offsets / n_fft) ** 4, 0.0)
    return torch.from_numpy(weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)).float()


@dataclass
class ProcessEstimates:
    """What ``PROCESS_DRAWS`` independent draws say of the process, once per spectrum: per figure
    resolution each bin's mean and median magnitude and mean power (bins, frames), and each mel
    band's mean mel magnitude per frame (mel frames, bands)."""

    mean: list[torch.Tensor]
    median: list[torch.Tensor]
    power: list[torch.Tensor]
    mel_magnitude: torch.Tensor


def process_estimates(draws: torch.Tensor, config: MelConfig = MelConfig()) -> ProcessEstimates:
    """``ProcessEstimates`` of ``draws`` (draws, samples)."""
    estimates = ProcessEstimates([], [], [], log_mel(draws, config).exp().mean(0))
    for n_fft, hop in FIGURE_RESOLUTIONS:
        magnitudes = figure_magnitudes(draws, n_fft, hop)
        estimates.mean.append(magnitudes.mean(0))
        estimates.median.append(magnitudes.median(0).values)
        estimates.power.append((magnitudes**2).mean(0))
    return estimates


def _scaled(process: ProcessEstimates, scales: list) -> SmoothTargets:
    """The process's mean and median at each figure resolution, times that resolution's scale."""
    return SmoothTargets([(mean * scale).clamp_min(PWG_MAGNITUDE_FLOOR) for mean, scale in zip(process.mean, scales)],
                         [(median * scale).clamp_min(PWG_MAGNITUDE_FLOOR) for median, scale in zip(process.median, scales)])


def _bands(n_fft: int) -> torch.Tensor:
    return mel_band_of_bins(n_fft=n_fft, every_bin=True)


def process_targets(process: ProcessEstimates) -> SmoothTargets:
    """The estimates knowing the process and nothing of the draw."""
    return _scaled(process, [1.0] * len(FIGURE_RESOLUTIONS))


def mel_targets(mel: torch.Tensor, process: ProcessEstimates, config: MelConfig = MelConfig()) -> SmoothTargets:
    """The estimates scaled by what ``mel`` (1, frames, bands) says of this draw: each band's mel
    magnitude over the process's mean, carried to each figure frame by ``_mel_frame_weights`` and
    to each bin by its band."""
    ratio = mel[0].exp() / process.mel_magnitude  # (mel frames, bands)
    scales = []
    for (n_fft, hop), mean in zip(FIGURE_RESOLUTIONS, process.mean):
        over_frames = _mel_frame_weights(n_fft, hop, mean.shape[1], ratio.shape[0], config.hop_length) @ ratio  # (frames, bands)
        scales.append(over_frames.T[_bands(n_fft)])
    return _scaled(process, scales)


def band_oracle_targets(reference: torch.Tensor, process: ProcessEstimates) -> SmoothTargets:
    """The estimates scaled, in each frame of each figure resolution, by the square root of each
    band's true power in ``reference`` (1, samples) over the process's."""
    scales = []
    for (n_fft, hop), power in zip(FIGURE_RESOLUTIONS, process.power):
        bands = _bands(n_fft)

        def band_sums(values: torch.Tensor) -> torch.Tensor:  # (bands, frames)
            return torch.zeros(int(bands.max()) + 1, values.shape[1]).index_add_(0, bands, values)

        truth = figure_magnitudes(reference, n_fft, hop)[0] ** 2
        scales.append((band_sums(truth) / band_sums(power).clamp_min(1e-20))[bands].sqrt())
    return _scaled(process, scales)


@dataclass
class NoiseFloorRow:
    spectrum: str
    draws: int
    griffin_lim: float
    vocoder: float
    another_draw: float
    ideal_sample: float
    true_magnitude: float
    smooth_magnitude: float
    smooth_waveform: float
    band_oracle: float


@torch.no_grad()
def noise_floor(codec, seeds: int = 4, seconds: float = 4.0, smooth_iterations: int = 300) -> list[NoiseFloorRow]:
    """One row per spectrum of ``SPECTRA``, each the mean over ``seeds`` pairs of realisations.
    The pipeline rows need a magnitude vocoder (the shipped default is one)."""
    vocoder = codec.vocoder
    if not is_magnitude_vocoder(vocoder):
        raise InputError("the noise floor runs the magnitude vocoder's pipeline; this codec's vocoder is not one")
    samples = int(seconds * SAMPLE_RATE)
    length = MelConfig().frames_for(samples) * vocoder.config.hop_length  # the samples the mel covers
    rows = []
    for spectrum in SPECTRA:
        process_rng = np.random.default_rng(PROCESS_SEED)
        draws = torch.from_numpy(np.stack([coloured_noise(spectrum, samples, process_rng)[:length] for _ in range(PROCESS_DRAWS)]))
        process = process_estimates(draws)
        figures: dict[str, list[float]] = {}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            first, second = (torch.from_numpy(coloured_noise(spectrum, samples, rng))[None] for _ in range(2))
            mel = log_mel(first)
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
            smooth = mel_targets(mel, process)
            figures.setdefault("smooth_magnitude", []).append(smooth.score(reference))
            waveform = smooth_waveform(smooth, candidates["griffin_lim"], smooth_iterations)
            figures.setdefault("smooth_waveform", []).append(float(multi_resolution_stft_distance(waveform, reference)))
            figures.setdefault("band_oracle", []).append(band_oracle_targets(reference, process).score(reference))
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
    lines += [
        "",
        f"Smooth estimates (each bin's mean and median magnitude over {PROCESS_DRAWS} other draws), at the figure's resolutions:",
        "",
        "| spectrum | Griffin-Lim 32 it. | bar (30% below Griffin-Lim) | smooth magnitude, scaled by the mel | a waveform for it | "
        "band oracle (each band's true energy) | waveform vs Griffin-Lim | band oracle vs Griffin-Lim |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row.spectrum} | {row.griffin_lim:.3f} | {0.7 * row.griffin_lim:.3f} | {row.smooth_magnitude:.3f} | {row.smooth_waveform:.3f} | "
                     f"{row.band_oracle:.3f} | {row.smooth_waveform / row.griffin_lim - 1.0:+.0%} | {row.band_oracle / row.griffin_lim - 1.0:+.0%} |")
    return "\n".join(lines) + "\n"
