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

Magnitude vocoder (``phase="griffin-lim"``, preset "istft-gla-cpu"): the same stack predicts
only the log-magnitude of the mel's own STFT (n_fft 1024, hop 160), as a correction to the log
of the mel filters' pseudo-inverse magnitude (zero-initialised head: untrained, it is
Griffin-Lim's own magnitude), and fast Griffin-Lim (``foleyflow.audio.griffin_lim``, momentum
0.99) finds the phase: Tacotron's mel -> linear spectrogram network + Griffin-Lim, with Vocos'
backbone. Why: on 10 held-out clips Griffin-Lim from the pseudo-inverse magnitude scores
MR-STFT 1.32, from the *true* magnitude 0.60 (0.43 with momentum), while no phase search helps
the pseudo-inverse one (1.32 with momentum). The magnitude is what the 64-band mel loses, and
it is learnable without synthesising audio, so a training step is a frame-rate regression (no
istft, no discriminator). A first run that predicted the whole log-magnitude (no pseudo-inverse
start) was far behind Griffin-Lim after 1,000 steps (MR-STFT 2.14 vs 1.24, 15 test clips).
Before the phase search, ``mel_projection_iterations`` NNLS updates match the magnitude's mel to
the input mel (inference only). Shipped as the default vocoder: BENCHMARKS.md, "The magnitude
vocoder". Since session 30 its weights are fine-tuned on the waveform of the whole inference
pipeline (``trainable_audio``; the recipe's ``through_phase_search``).

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

from foleyflow.audio.griffin_lim import griffin_lim_spectrum, unit_phasor
from foleyflow.audio.mel import MelConfig, MelProjection, mel_to_magnitude, project_onto_mel, repeat_last_frame

CLASS_NAME = "IstftVocoder"
PHASE_SOURCES = ("network", "griffin-lim")
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
    # "network": the head predicts the phase (Vocos). "griffin-lim": the head predicts only the
    # log-magnitude and fast Griffin-Lim finds the phase (module docstring, "Magnitude vocoder").
    phase: str = "network"
    griffin_lim_iterations: int = 32
    griffin_lim_momentum: float = 0.99
    # Griffin-Lim phase only: multiplicative updates that match the predicted magnitude's mel to
    # the input mel before the phase search (``foleyflow.audio.mel.project_onto_mel``).
    mel_projection_iterations: int = 0
    # Griffin-Lim phase only: phase-search iterations after the fixed-magnitude ones in which the
    # magnitude kept is the consistent spectrum's own, moved onto the input mel by
    # ``mel_consistent_updates`` projection updates (``foleyflow.audio.griffin_lim``, "refine").
    mel_consistent_iterations: int = 0
    mel_consistent_updates: int = 1

    def __post_init__(self) -> None:
        if self.phase not in PHASE_SOURCES:
            raise ValueError(f"phase must be one of {', '.join(PHASE_SOURCES)}; got {self.phase!r}")
        if self.mel_consistent_iterations < 0 or self.mel_consistent_updates < 1:
            raise ValueError("mel_consistent_iterations must be >= 0 and mel_consistent_updates >= 1")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # Vocos' published mel model (24 kHz there): width 512, 1536 inside, 8 blocks, frame-relative phase.
    "istft-vocos": {"dim": 512, "intermediate_dim": 1536, "num_layers": 8, "phase_advance": False},
    "istft-cpu": {"dim": 256, "intermediate_dim": 768, "num_layers": 8},
    # The magnitude vocoder: the same stack predicts the mel's own STFT magnitude (n_fft 1024),
    # fast Griffin-Lim the phase, ending with mel-consistent iterations (session 22).
    "istft-gla-cpu": {"dim": 256, "intermediate_dim": 768, "num_layers": 8, "n_fft": 1024, "phase": "griffin-lim", "mel_projection_iterations": 30,
                      "mel_consistent_iterations": 32, "mel_consistent_updates": 2},
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
        # log-magnitude (and phase, unless Griffin-Lim finds it) of n_fft/2 + 1 bins
        self.head = nn.Linear(config.dim, config.bins * (1 if config.phase == "griffin-lim" else 2))
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        if config.phase == "griffin-lim":
            if config.n_fft != MelConfig().n_fft or config.hop_length != MelConfig().hop_length:
                raise ValueError(f"the Griffin-Lim-phase vocoder predicts the mel's own STFT (n_fft {MelConfig().n_fft}, hop {MelConfig().hop_length})")
            # Start as Griffin-Lim's own magnitude: the correction is zero until training moves it.
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _head_output(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (batch, frames, mels) -> head output (batch, channels, frames + 1)."""
        hidden = self.embed(repeat_last_frame(mel).transpose(1, 2))
        hidden = self.norm_in(hidden.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden)
        return self.head(self.norm_out(hidden.transpose(1, 2))).transpose(1, 2)

    def log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (batch, frames, mels) -> predicted log STFT magnitude (batch, n_fft/2 + 1, frames + 1),
        clipped above at ``MAX_LOG_MAGNITUDE``. With Griffin-Lim phase the head predicts a
        correction to the log of the mel filters' pseudo-inverse magnitude (``pseudo_inverse_log_magnitude``)."""
        output = self._head_output(mel)[:, : self.config.bins]
        if self.config.phase == "griffin-lim":
            output = output + pseudo_inverse_log_magnitude(mel)
        return output.clamp(max=MAX_LOG_MAGNITUDE)

    def magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """The magnitude Griffin-Lim gets: exp(log_magnitude), projected onto the input mel with
        ``mel_projection_iterations`` updates (batch, n_fft/2 + 1, frames + 1)."""
        return self.project_onto_input(self.log_magnitude(mel).exp(), mel)

    def project_onto_input(self, magnitude: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """``mel_projection_iterations`` NNLS updates moving ``magnitude`` (batch, bins, frames + 1)
        onto ``mel``: the step between any magnitude and this vocoder's phase search."""
        projected = project_onto_mel(magnitude.transpose(1, 2), repeat_last_frame(mel), self.config.mel_projection_iterations)
        return projected.transpose(1, 2)

    def phase_search(self, magnitude: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Fast Griffin-Lim from ``magnitude`` (batch, bins, frames + 1), then the mel-consistent
        iterations, whose magnitude is the consistent spectrum's projected onto ``mel``."""
        return self._istft(self._searched_spectrum(magnitude, mel), mel)

    def _searched_spectrum(self, magnitude: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.phase != "griffin-lim":
            raise ValueError("this vocoder predicts its phase; only a Griffin-Lim-phase vocoder searches for one")
        projection = MelProjection(repeat_last_frame(mel))

        def onto_mel(consistent_magnitude: torch.Tensor) -> torch.Tensor:
            return projection(consistent_magnitude.transpose(1, 2), config.mel_consistent_updates).transpose(1, 2)

        return griffin_lim_spectrum(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, length=mel.shape[1] * config.hop_length,
                                    iterations=config.griffin_lim_iterations, momentum=config.griffin_lim_momentum,
                                    refine_iterations=config.mel_consistent_iterations, refine=onto_mel)

    def _istft(self, spectrum: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        config = self.config
        return torch.istft(spectrum, config.n_fft, config.hop_length, config.n_fft, self.window.to(spectrum.real.dtype), center=True,
                           length=mel.shape[1] * config.hop_length)

    def trainable_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """The inference waveform, with a gradient to the predicted magnitude: the phase search
        runs without a graph, and its last spectrum enters the istft plus the predicted
        magnitude's zero-valued change times the found phase (a straight-through estimate: the
        search and the mel-consistent refinement count as passing the magnitude through, the phase
        as fixed). Its value is exactly what inference returns, so a loss on it is a loss on that."""
        magnitude = self.magnitude(mel)
        with torch.no_grad():
            searched = self._searched_spectrum(magnitude.detach(), mel)
        return self._istft(searched + (magnitude - magnitude.detach()) * unit_phasor(searched), mel)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (batch, frames, mels) -> complex STFT (batch, n_fft/2 + 1, frames + 1); network phase only."""
        if self.config.phase != "network":
            raise ValueError("this vocoder predicts no phase; its spectrum comes from Griffin-Lim in forward()")
        log_magnitude, phase = self._head_output(mel).chunk(2, dim=1)
        if self.config.phase_advance:
            phase = phase + frame_phase_advance(phase.shape[1], phase.shape[2], self.config.n_fft, self.config.hop_length).to(phase)
        return torch.polar(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE).exp(), phase)

    def forward(self, mel: torch.Tensor, output: str = "audio") -> torch.Tensor:
        """log-mel (batch, frames, mels) -> waveform (batch, frames * hop); ``output`` "magnitude",
        "log_magnitude" or "trainable_audio" returns that method's result instead, so that
        training can reach it through a distributed wrapper's forward (DDP synchronises gradients
        of forward calls)."""
        if output != "audio":
            if output not in ("magnitude", "log_magnitude", "trainable_audio"):
                raise ValueError(f"output must be audio, magnitude, log_magnitude or trainable_audio, got {output!r}")
            return getattr(self, output)(mel)
        config = self.config
        length = mel.shape[1] * config.hop_length
        if config.phase == "griffin-lim":
            return self.phase_search(self.magnitude(mel), mel)
        return torch.istft(self.spectrum(mel), config.n_fft, config.hop_length, config.n_fft, self.window, center=True, length=length)


def pseudo_inverse_log_magnitude(mel: torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """log-mel (batch, frames, mels) -> log of the pseudo-inverse magnitude Griffin-Lim starts
    from (batch, n_fft/2 + 1, frames + 1; last frame repeated), floored at the mel's own floor."""
    magnitude = mel_to_magnitude(repeat_last_frame(mel), config)
    return magnitude.clamp_min(config.clamp_min).log().transpose(1, 2)



def frame_phase_advance(bins: int, frames: int, n_fft: int, hop: int) -> torch.Tensor:
    """(bins, frames): 2 pi k hop t / n_fft, the frame-relative phase of a steady tone at bin k's
    centre frequency in frame t. Reduced modulo n_fft in integers first, so it stays exact for
    long clips."""
    k = torch.arange(bins)[:, None]
    t = torch.arange(frames)[None]
    return (2 * torch.pi / n_fft) * ((k * t * hop) % n_fft).double()

