"""The iSTFT vocoder: log-mel -> 16 kHz waveform through a predicted short-time spectrum.

Vocos' design (Siuzdak 2023): a ConvNeXt stack runs at the mel frame rate, a linear head
predicts each frame's log-magnitude and phase, and ``torch.istft`` turns that spectrum into
audio. Nothing in the network runs at the sample rate.

Why it exists beside HiFi-GAN: the CPU HiFi-GAN had not come near Griffin-Lim after 13,736
steps (session 4, held-out MR-STFT 1.98 vs 1.23). A training step of this network costs about
as much per second of audio, but it learns far faster per step: 1.62 after 3,500 steps
(BENCHMARKS.md, "The iSTFT vocoder"). HiFi-GAN stays for the public AudioLDM checkpoints
(``foleyflow.models.vocoder``). It is written here because the ``vocos`` package pulls
torchaudio, which has no build for the pinned torch.

Phase: ``torch.istft`` reads each frame's phase relative to that frame's own start, so a steady
sinusoid at bin k advances by 2 pi k hop / n_fft per frame. A convolution stack gives the same
output for the same input wherever it sits, so asked for that phase directly it must invent the
advance; asked for the phase relative to absolute time (``frame_phase_advance`` is added), a
constant output already is a steady tone. Measured on 15 test clips with their true
magnitudes: a constant phase gives log-mel L1 1.72 frame-relative and 0.31 absolute (random
phase: 0.64), so the head predicts the absolute one.

Frames: our log-mel keeps ``samples // hop`` frames of a centred STFT, one fewer than
``torch.istft`` needs for ``frames * hop`` samples, so the last mel frame is repeated on the
way in (as ``griffin_lim`` repeats the last magnitude frame).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CLASS_NAME = "IstftVocoder"
# Log-magnitudes above this are clipped before exp (Vocos clips the magnitude at 1e2): a
# diverging head must not produce inf samples.
MAX_LOG_MAGNITUDE = 4.6


@dataclasses.dataclass(frozen=True)
class IstftVocoderConfig:
    model_in_dim: int = 64
    sampling_rate: int = 16000
    dim: int = 256
    intermediate_dim: int = 768
    num_layers: int = 8
    kernel_size: int = 7
    n_fft: int = 640  # 4 x hop, as Vocos
    hop_length: int = 160
    phase_advance: bool = True  # the head predicts phase relative to absolute time (module docstring)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # Vocos' published mel model (24 kHz there): width 512, 1536 inside, 8 blocks, frame-relative phase.
    "istft-vocos": {"dim": 512, "intermediate_dim": 1536, "num_layers": 8, "phase_advance": False},
    "istft-cpu": {"dim": 256, "intermediate_dim": 768, "num_layers": 8},
}


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, pointwise expand / GELU / contract, layer-scaled residual."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.expand = nn.Linear(dim, intermediate_dim)
        self.contract = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (batch, dim, frames)
        update = self.depthwise(hidden).transpose(1, 2)
        update = self.contract(F.gelu(self.expand(self.norm(update))))
        return hidden + (self.gamma * update).transpose(1, 2)


class IstftVocoder(nn.Module):
    def __init__(self, config: IstftVocoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Conv1d(config.model_in_dim, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.norm_in = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate_dim, config.kernel_size, 1.0 / config.num_layers) for _ in range(config.num_layers)
        )
        self.norm_out = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, config.n_fft + 2)  # log-magnitude and phase of n_fft/2 + 1 bins
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (batch, frames, mels) -> complex STFT (batch, n_fft/2 + 1, frames + 1)."""
        hidden = self.embed(F.pad(mel.transpose(1, 2), (0, 1), mode="replicate"))
        hidden = self.norm_in(hidden.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden)
        log_magnitude, phase = self.head(self.norm_out(hidden.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        if self.config.phase_advance:
            phase = phase + frame_phase_advance(phase.shape[1], phase.shape[2], self.config.n_fft, self.config.hop_length).to(phase)
        return torch.polar(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE).exp(), phase)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (batch, frames, mels) -> waveform (batch, frames * hop)."""
        config = self.config
        return torch.istft(self.spectrum(mel), config.n_fft, config.hop_length, config.n_fft, self.window,
                           center=True, length=mel.shape[1] * config.hop_length)


def frame_phase_advance(bins: int, frames: int, n_fft: int, hop: int) -> torch.Tensor:
    """(bins, frames): 2 pi k hop t / n_fft, the frame-relative phase of a steady tone at bin k's
    centre frequency in frame t. Reduced modulo n_fft in integers first, so it stays exact for
    long clips."""
    k = torch.arange(bins)[:, None]
    t = torch.arange(frames)[None]
    return (2 * torch.pi / n_fft) * ((k * t * hop) % n_fft).double()

