"""Removal by time-frequency gains (issue 9): what a remove keeps of the recording, cell by cell.

The editor's "remove" ends, under spectral compositing, as a gain on the recording itself: each
STFT bin of the source scaled by the regenerated edit's local level over the source's
(``compositing.keep_levels``). The UNet's content enters only through that ratio. The removal
gains ask a network for the ratio directly: per latent cell (4 mel frames x 4 mel bands, the VAE
latent's grid), the share of the source's level that the scene without the named sound has there,
trained against the true scene (the data set knows it: a remove's target, a replace's bare scene
``X``). This is text-queried source separation by masking (as in LASS-Net and AudioSep), not in
RFM-Edit: the paper's regenerated content stays selectable (``removal: unet``).

Measured before it was built (val, 60 removes and 60 replaces, the true scene's cell levels applied
as the gain; ``/work/scratch/s23/gainceil.py``): vs no edit -0.100 / -0.030 inside the shipped
localiser's mask and -0.242 / -0.080 over the whole clip, where the UNet's content scores +0.001 /
+0.041 on the same triplets. The trained remover, on 200 test triplets per task: as good as the
UNet's content on remove, better on replace (BENCHMARKS.md "Editor benchmark, session 23").

Written by hand: the target and its loss are specific to this data set's mixes, and the
interpolation back to the compositing's STFT grid is two small linear maps.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from foleyflow.audio.mel import MelConfig, magnitude_spectrogram, slaney_mel_filters

# One latent cell: 4 mel frames (640 samples) x 4 mel bands (the VAE's downsampling, r = 4).
CELL_FRAMES, CELL_BANDS = 4, 4


def cell_levels(audio: torch.Tensor | np.ndarray, frames: int | None = None, config: MelConfig = MelConfig()) -> torch.Tensor:
    """(batch, mel bands / 4, frames) mean mel magnitude per latent cell of (batch, samples) audio:
    groups of 4 mel bands, and the mel frames split evenly into ``frames`` (default: groups of 4,
    the codec's latent frames; a test codec with other frames passes its count)."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.ndim == 1:
        audio = audio[None]
    mel = magnitude_spectrogram(audio, config) @ slaney_mel_filters(config)  # (batch, frames, bands)
    frames = mel.shape[1] // CELL_FRAMES if frames is None else frames
    return F.adaptive_avg_pool2d(mel[:, None].transpose(2, 3), (config.n_mels // CELL_BANDS, frames))[:, 0]


def removal_gain_loss(log_gains: torch.Tensor, source_levels: torch.Tensor, kept_levels: torch.Tensor,
                      floor: float = MelConfig().clamp_min) -> torch.Tensor:
    """Mean |log(g L_source + floor) - log(L_kept + floor)| over cells, g = exp(log_gains): the
    benchmark's log-mel L1 at the cell's resolution, with the log-mel's floor (a cell quieter than
    the floor on both sides costs nothing, whatever its gain).

    Why log-gains, unbounded in training: most cells keep everything (g = 1). Through a sigmoid,
    their gradient pushes the logits up without end, the sigmoid saturates and the cells that do
    change stop learning (a first run here collapsed to g = 1 everywhere within 40 steps). Free,
    g has a finite target in every cell; ``gains`` caps it at 1 for use."""
    return torch.mean(torch.abs(torch.log(log_gains.float().exp() * source_levels + floor) - torch.log(kept_levels + floor)))


def gains(log_gains: torch.Tensor) -> torch.Tensor:
    """The gains a removal applies: exp(log_gains) capped at 1 (a removal never makes a cell louder)."""
    return log_gains.float().clamp(max=0.0).exp()


def linear_interpolation(coordinates: np.ndarray, size: int) -> torch.Tensor:
    """(len(coordinates), size) weights reading a length-``size`` axis at fractional ``coordinates``
    linearly, clamped to the ends."""
    coordinates = np.clip(np.asarray(coordinates, dtype=np.float64), 0, size - 1)
    low = np.floor(coordinates).astype(int)
    high = np.minimum(low + 1, size - 1)
    weight = coordinates - low
    matrix = np.zeros((coordinates.size, size))
    np.add.at(matrix, (np.arange(coordinates.size), low), 1 - weight)
    np.add.at(matrix, (np.arange(coordinates.size), high), weight)
    return torch.from_numpy(matrix)


@lru_cache(maxsize=4)
def cell_bin_coordinates(n_fft: int, config: MelConfig = MelConfig()) -> np.ndarray:
    """(n_fft // 2 + 1,) each STFT bin's place on the cells' frequency axis: its frequency read
    against the mel bands' peak frequencies, then grouped four bands to a cell (cell b's centre is
    band 4 b + 1.5)."""
    peaks_hz = slaney_mel_filters(config).argmax(0).numpy() * config.sample_rate / config.n_fft
    bins_hz = np.arange(n_fft // 2 + 1) * config.sample_rate / n_fft
    band = np.interp(bins_hz, peaks_hz, np.arange(peaks_hz.size))
    return (band - (CELL_BANDS - 1) / 2) / CELL_BANDS


def stft_gains(gains: torch.Tensor | np.ndarray, n_fft: int, hop: int, stft_frames: int,
               samples_per_cell: int = CELL_FRAMES * MelConfig().hop_length) -> torch.Tensor:
    """(cells' bins, cells' frames) gains -> (n_fft // 2 + 1, stft_frames) on a centred STFT grid
    (frame k at sample k hop; cell j centred on sample (j + 1/2) samples_per_cell), bilinear."""
    gains = torch.as_tensor(gains, dtype=torch.float64)
    frequency = linear_interpolation(cell_bin_coordinates(n_fft), gains.shape[0])
    time = linear_interpolation(np.arange(stft_frames) * hop / samples_per_cell - 0.5, gains.shape[1])
    return frequency @ gains @ time.T
