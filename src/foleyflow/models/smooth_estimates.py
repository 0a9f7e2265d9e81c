"""What the MR-STFT figure scores for magnitudes that are smooth where the truth is random.

Against a draw it cannot know (the within-band detail of noise, which a mel does not carry), an
estimate lowers the figure most by being *smooth*: each bin's mean magnitude lowers the
expected spectral convergence (to first order: the norms concentrate) and its median the
expected log term, so the two terms have different best estimates and no one magnitude scores
below the pair. ``SmoothTargets`` holds such a pair at each of the figure's resolutions; it
scores the pair itself (``score``: magnitudes no signal need have) and is what
``smooth_waveform`` moves a real signal towards. ``band_flat_targets`` is the exact minimum
over magnitudes flat within each mel band of each frame, chosen knowing the truth: the
reference row of ``bench codec`` that says how much of the figure lies inside the bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foleyflow.audio.mel import MelConfig, mel_band_of_bins
from foleyflow.training.recipes.codec import FIGURE_RESOLUTIONS, PWG_MAGNITUDE_FLOOR, figure_magnitudes, log_magnitude_distance, spectral_convergence

SMOOTH_WAVEFORM_LR = 0.03  # Adam's step on log-magnitude (nepers) and phase (radians)


@dataclass
class SmoothTargets:
    """Per figure resolution, a (bins, frames) magnitude estimate for each of the figure's terms:
    the mean magnitude minimises the expected spectral convergence (to first order), the median
    the expected log term."""

    mean: list[torch.Tensor]
    median: list[torch.Tensor]

    def distance(self, audio: torch.Tensor) -> torch.Tensor:
        """The figure of ``audio`` (1, samples) with the estimates as its reference: spectral
        convergence to the mean (normalised by the estimate, the true reference being unknown)
        plus the log term to the median, averaged over resolutions: what ``smooth_waveform`` lowers."""
        total = audio.new_zeros(())
        for (n_fft, hop), mean, median in zip(FIGURE_RESOLUTIONS, self.mean, self.median):
            magnitude = figure_magnitudes(audio, n_fft, hop)[0].clamp_min(PWG_MAGNITUDE_FLOOR)
            total = total + spectral_convergence(magnitude, mean) + log_magnitude_distance(magnitude, median)
        return total / len(FIGURE_RESOLUTIONS)

    def score(self, reference: torch.Tensor) -> float:
        """The figure the estimates themselves would get against ``reference`` (1, samples), each
        term with its own estimate (``stft_magnitude_distance`` split in its two terms). Where
        each estimate is its term's minimiser over a class of magnitudes (``band_flat_targets``),
        no single magnitude of that class scores lower."""
        total = 0.0
        for (n_fft, hop), mean, median in zip(FIGURE_RESOLUTIONS, self.mean, self.median):
            truth = figure_magnitudes(reference, n_fft, hop)[0].clamp_min(PWG_MAGNITUDE_FLOOR)
            total += float(spectral_convergence(mean, truth) + log_magnitude_distance(median, truth))
        return total / len(FIGURE_RESOLUTIONS)


def band_flat_targets(reference: torch.Tensor) -> SmoothTargets:
    """For ``reference`` (1, samples), at each figure resolution: in every frame each mel band's
    bins (``mel_band_of_bins``, every bin in a band) replaced by their mean (the constant with the
    least squared error, hence the lowest spectral convergence) and by their median (the lowest
    log term): the best magnitudes flat within the bands, each band's true values known."""
    targets = SmoothTargets([], [])
    for n_fft, hop in FIGURE_RESOLUTIONS:
        truth = figure_magnitudes(reference, n_fft, hop)[0].clamp_min(PWG_MAGNITUDE_FLOOR)  # (bins, frames)
        bands = mel_band_of_bins(n_fft=n_fft, every_bin=True)
        mean, median = torch.empty_like(truth), torch.empty_like(truth)
        for band in bands.unique():
            members = torch.nonzero(bands == band).flatten()
            mean[members] = truth[members].mean(0, keepdim=True)
            median[members] = truth[members].median(0, keepdim=True).values
        targets.mean.append(mean)
        targets.median.append(median)
    return targets


def smooth_waveform(targets: SmoothTargets, start: torch.Tensor, iterations: int, config: MelConfig = MelConfig()) -> torch.Tensor:
    """(1, samples) audio: ``start``'s STFT on the mel's grid, its log-magnitude and phase moved
    by Adam (``iterations`` steps) to lower ``targets.distance``; log-magnitude rather than
    samples so that every step is relative to its bin's level (a step on the samples swamps a
    band 60 dB down in one go)."""
    window = torch.hann_window(config.n_fft)
    spectrum = torch.stft(start, config.n_fft, config.hop_length, window=window, return_complex=True)
    log_magnitude = spectrum.abs().clamp_min(1e-8).log().requires_grad_(True)
    phase = spectrum.angle().requires_grad_(True)
    optimiser = torch.optim.Adam([log_magnitude, phase], lr=SMOOTH_WAVEFORM_LR)

    def audio() -> torch.Tensor:
        return torch.istft(torch.polar(log_magnitude.exp(), phase), config.n_fft, config.hop_length, window=window, length=start.shape[-1])

    with torch.enable_grad():
        for _ in range(iterations):
            optimiser.zero_grad()
            targets.distance(audio()).backward()
            optimiser.step()
    return audio().detach()
