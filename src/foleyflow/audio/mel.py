"""The log-mel front-end of AudioLDM and Tango, and Tango's waveform preparation.

Numbers (SPEC 0 and 6): 16 kHz, n_fft 1024, Hann window 1024, hop 160, 64 Slaney mel bins
from 0 to 8000 Hz, magnitude (not power) spectrum, natural log of the magnitude clamped at
1e-5. The STFT is centred with reflect padding, as AudioLDM's Tacotron STFT is, which gives
``samples // hop + 1`` frames; like Tango we keep ``samples // hop`` (10.24 s -> 1024 frames).
These values must match the public AudioLDM VAE and HiFi-GAN, or their checkpoints misbehave.

Layout: ``log_mel`` returns (batch, frames, n_mels); the VAE takes (batch, 1, frames, n_mels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from foleyflow.audio.io import SAMPLE_RATE

TANGO_NUM_SAMPLES = 163_840  # 10.24 s at 16 kHz = 1024 mel frames
TANGO_PEAK = 0.5
# A log-mel value within this of the floor (or below it: a decoded mel is not clamped) counts as
# floored; 0.01 is 1% in energy and above float16's step near the floor (0.008).
FLOOR_TOLERANCE = 0.01


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    clamp_min: float = 1e-5

    def frames_for(self, num_samples: int) -> int:
        return num_samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def slaney_mel_filters(config: MelConfig = MelConfig()) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) Slaney-scale, Slaney-normalised triangles (librosa's default)."""
    filters = mel_filter_bank(
        num_frequency_bins=config.n_fft // 2 + 1,
        num_mel_filters=config.n_mels,
        min_frequency=config.f_min,
        max_frequency=config.f_max,
        sampling_rate=config.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters.astype(np.float32))


@lru_cache(maxsize=8)  # asked once per clip by the benchmarks
def mel_band_of_bins(config: MelConfig = MelConfig(), n_fft: int | None = None, every_bin: bool = False) -> torch.Tensor:
    """(n_fft // 2 + 1,) the mel band whose triangle is highest at each bin of an ``n_fft`` STFT
    (the mel's own by default), -1 for a bin no band covers (DC and Nyquist), or with
    ``every_bin`` the nearest band (the first below half the bins, the last above)."""
    filters = slaney_mel_filters(config).numpy()  # (mel bins, bands)
    if n_fft is not None and n_fft != config.n_fft:  # the triangles at another STFT's bin frequencies
        mel_frequencies = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)
        frequencies = np.fft.rfftfreq(n_fft, 1.0 / config.sample_rate)
        filters = np.stack([np.interp(frequencies, mel_frequencies, filters[:, band]) for band in range(filters.shape[1])], axis=1)
    band = torch.from_numpy(filters.argmax(1))
    uncovered = torch.nonzero(torch.from_numpy(filters.max(1) <= 0)).flatten()
    band[uncovered] = torch.where(uncovered < band.numel() // 2, 0, filters.shape[1] - 1) if every_bin else -1
    return band


@lru_cache(maxsize=8)
def _hann(win_length: int) -> torch.Tensor:
    return torch.hann_window(win_length, periodic=True)


def magnitude_spectrogram(audio: torch.Tensor, config: MelConfig = MelConfig(), keep_last_frame: bool = False) -> torch.Tensor:
    """(batch, samples) -> (batch, frames, n_fft // 2 + 1) STFT magnitudes, ``samples // hop`` frames
    (the mel's), or with ``keep_last_frame`` one more: the whole centred STFT istft inverts."""
    num_frames = max(config.frames_for(audio.shape[-1]), 1) + int(keep_last_frame)
    if audio.shape[-1] <= config.n_fft // 2:
        # Reflect padding needs more samples than the pad; zero-pad very short input first.
        audio = torch.nn.functional.pad(audio, (0, config.n_fft // 2 + 1 - audio.shape[-1]))
    spec = torch.stft(
        audio,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_hann(config.win_length).to(audio.device, audio.dtype),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return spec.abs().transpose(-1, -2)[..., :num_frames, :]


def log_mel(audio: torch.Tensor | np.ndarray, config: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-mel of (samples,) or (batch, samples) audio -> (batch, frames, n_mels), float32."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.ndim == 1:
        audio = audio[None]
    return magnitude_to_log_mel(magnitude_spectrogram(audio, config), config)


def magnitude_to_log_mel(magnitudes: torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """STFT magnitudes (..., frames, n_fft // 2 + 1) -> log-mel (..., frames, n_mels)."""
    mel = magnitudes @ slaney_mel_filters(config).to(magnitudes.device)
    return torch.log(torch.clamp(mel, min=config.clamp_min))


@lru_cache(maxsize=8)
def _mel_pseudo_inverse(config: MelConfig) -> torch.Tensor:
    return torch.linalg.pinv(slaney_mel_filters(config))  # (n_mels, n_fft // 2 + 1)


def mel_to_magnitude(mel: torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """log-mel (batch, frames, n_mels) -> STFT magnitudes (batch, frames, n_fft // 2 + 1) by the
    filters' pseudo-inverse, clamped at zero: the least-squares magnitude whose mel is closest,
    where Griffin-Lim starts. The pseudo-inverse is computed once per config."""
    return (torch.exp(mel) @ _mel_pseudo_inverse(config).to(mel)).clamp_min(0.0)


def repeat_last_frame(mel: torch.Tensor) -> torch.Tensor:
    """(batch, frames, bands) -> (batch, frames + 1, bands): our mel keeps ``samples // hop`` frames
    of a centred STFT, one fewer than istft needs for ``frames * hop`` samples."""
    return torch.cat([mel, mel[:, -1:]], dim=1)


class MelProjection:
    """Moves STFT magnitudes (batch, frames, n_fft // 2 + 1) towards those whose mel energies are
    exp(``mel``) (batch, frames, n_mels), staying non-negative: multiplicative updates of
    non-negative least squares (Lee & Seung 2001), M <- M * (m F^T) / (M F F^T). Each update
    does not increase the error; a bin at zero stays at zero, so the structure inside each band
    is kept while the band energies are matched. Bins no filter covers are left as they are.

    A band at the log floor (``config.clamp_min``) only says its energy is at most the floor
    (digital silence gives 0 there), so it is an upper bound, not a target: its target is
    min(current energy, floor). The error is then sum (M F - m)^2 over the other bands plus
    sum max(M F - floor, 0)^2 over the floored ones; the update with that target majorises it,
    so it still does not increase.

    Built once per mel (filters, targets and floored bands), applied many times: the
    mel-consistent phase search projects a new magnitude in every iteration."""

    def __init__(self, mel: torch.Tensor, config: MelConfig = MelConfig()) -> None:
        self.filters = slaney_mel_filters(config).to(mel)
        self.wanted = torch.exp(mel)
        self.floored = mel <= math.log(config.clamp_min) + FLOOR_TOLERANCE
        self.covered = self.filters.sum(dim=1) > 0  # DC and Nyquist lie in no band: the mel says nothing of them

    def __call__(self, magnitude: torch.Tensor, updates: int) -> torch.Tensor:
        for _ in range(updates):
            energies = magnitude @ self.filters
            target = torch.where(self.floored, torch.minimum(energies, self.wanted), self.wanted)
            numerator, denominator = target @ self.filters.T, energies @ self.filters.T
            # a bin whose bands hold no energy is zero itself and stays so: no floor on the
            # denominator, which would shrink very quiet bins
            keep = ~self.covered | (denominator <= 0)
            magnitude = magnitude * torch.where(keep, 1.0, numerator / torch.where(keep, 1.0, denominator))
        return magnitude


def project_onto_mel(magnitude: torch.Tensor, mel: torch.Tensor, iterations: int, config: MelConfig = MelConfig()) -> torch.Tensor:
    """``iterations`` updates of ``MelProjection(mel, config)`` on ``magnitude``."""
    return MelProjection(mel, config)(magnitude, iterations)


def to_vae_layout(mel: torch.Tensor) -> torch.Tensor:
    """(batch, frames, n_mels) -> (batch, 1, frames, n_mels), the AudioLDM VAE's input layout."""
    return mel.unsqueeze(1)


def pad_or_crop(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop to exactly ``num_samples``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] >= num_samples:
        return audio[..., :num_samples].copy()
    padding = [(0, 0)] * (audio.ndim - 1) + [(0, num_samples - audio.shape[-1])]
    return np.pad(audio, padding)


def tango_waveform_prep(audio: np.ndarray, num_samples: int | None = TANGO_NUM_SAMPLES) -> np.ndarray:
    """Tango's preparation: remove the mean, scale the peak to 0.5, then pad or crop.

    ``num_samples=None`` keeps the length (for windowed processing of long input).
    """
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio - audio.mean()
    audio = TANGO_PEAK * audio / (np.abs(audio).max() + 1e-8)
    return audio if num_samples is None else pad_or_crop(audio, num_samples)
