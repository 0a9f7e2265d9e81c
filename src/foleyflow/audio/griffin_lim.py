"""Phase from a magnitude: Griffin-Lim (Griffin & Lim 1984) and its fast variant (Perraudin,
Balazs & Søndergaard 2013).

Both alternate two projections: keep the wanted magnitude with the current phase, then make
the spectrum consistent (istft, then stft). The fast variant extrapolates each consistent
spectrum by ``momentum`` times its change since the previous iteration:
    c_n = P_consistent(P_magnitude(t_{n-1})),  t_n = c_n + momentum * (c_n - c_{n-1}),
and ``momentum = 0`` is Griffin-Lim exactly. torchaudio has both, but it has no build for the
pinned torch, so this is written on torch.stft / istft.

Measured on 10 held-out corpus clips (MR-STFT distance to the original): with the true STFT
magnitude, 32 iterations give 0.60 plain and 0.43 with momentum 0.99; with the mel filters'
pseudo-inverse magnitude both give 1.32. The magnitude, not the phase search, limits
Griffin-Lim on our 64-band mel, which is why the magnitude vocoder (``IstftVocoder`` with
``phase="griffin-lim"``) learns the magnitude and leaves the phase to this.
"""

from __future__ import annotations

import math

import torch


def unit_phasor(spectrum: torch.Tensor) -> torch.Tensor:
    """spectrum / |spectrum| (1 where it is 0): exp(i angle) without the complex exp and atan2,
    which took over half of Griffin-Lim's time on CPU (about 1.8x faster without them)."""
    magnitude = spectrum.abs()
    return torch.where(magnitude > 0, spectrum / magnitude.clamp_min(1e-30), torch.ones_like(spectrum))


def griffin_lim(
    magnitude: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    length: int,
    iterations: int = 32,
    momentum: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """STFT magnitude (batch, n_fft // 2 + 1, frames) of a centred Hann STFT -> waveform
    (batch, length). Starts from a seeded uniform random phase; ``momentum`` 0 is the
    original algorithm, 0.99 the fast one."""
    window = torch.hann_window(n_fft, dtype=magnitude.dtype, device=magnitude.device)
    stft_args = {"n_fft": n_fft, "hop_length": hop_length, "win_length": n_fft, "window": window}
    generator = torch.Generator().manual_seed(seed)
    phase = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype)).to(magnitude.device)
    audio = torch.istft(magnitude * phase, length=length, **stft_args)
    previous = None
    for _ in range(iterations):
        consistent = torch.stft(audio, center=True, return_complex=True, **stft_args)
        target = consistent if previous is None or not momentum else consistent + momentum * (consistent - previous)
        previous = consistent
        audio = torch.istft(magnitude * unit_phasor(target), length=length, **stft_args)
    return audio
