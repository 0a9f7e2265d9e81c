"""Tango's DDPM training objective (SPEC 1): noise (or v) regression at sampled indices.

    L = E_{z_0, eps, i} w_i || f_theta(z_s, i, tau) - target ||^2,   z_s = alpha_s z_0 + sigma_s eps

with s = (i + 1) / N, target eps or v (``parametrization``), and w_i = 1 or the Min-SNR-gamma
weight (Hang et al. 2023), which caps the x-space weight at gamma.  Also the classifier-free
guidance dropout of the condition during training (Tango: 10% of samples get zeroed text states).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foleyflow.diffusion.parametrization import Prediction, prediction_target
from foleyflow.diffusion.schedule import DDPMSchedule
from foleyflow.diffusion.tensors import rng_device
from foleyflow.errors import InputError


@dataclass
class NoisedSample:
    """One batch on the forward process; shapes (batch, channels, frames, bins) unless noted."""

    z_s: torch.Tensor  # the noisy latent the network sees
    index: torch.Tensor  # (batch,) integer DDPM indices i, the network's timestep input
    s: torch.Tensor  # (batch,) diffusion times (i + 1) / N
    target: torch.Tensor  # what the network regresses (eps or v)
    snr: torch.Tensor  # (batch,) alpha_s^2 / sigma_s^2


def sample_indices(batch: int, schedule: DDPMSchedule, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(batch,) indices drawn uniformly from {0, ..., N - 1}."""
    index = torch.randint(0, schedule.num_train_timesteps, (batch,), generator=generator, device=rng_device(generator, device))
    return index.to(device) if device is not None else index


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: Prediction) -> torch.Tensor:
    """Min-SNR-gamma weight for a loss written in ``prediction`` space.

    The x-space weight min(SNR, gamma) becomes min(SNR, gamma) / SNR for epsilon and
    min(SNR, gamma) / (SNR + 1) for v, because ||eps - eps^||^2 = SNR ||x - x^||^2 and
    ||v - v^||^2 = (SNR + 1) ||x - x^||^2.
    """
    capped = snr.clamp(max=gamma)
    if prediction is Prediction.EPSILON:
        return capped / snr
    if prediction is Prediction.V:
        return capped / (snr + 1)
    return capped


@dataclass(frozen=True)
class DiffusionObjective:
    """Noise the data at given indices and score a network output against the right target."""

    schedule: DDPMSchedule = DDPMSchedule()
    prediction: Prediction = Prediction.EPSILON
    min_snr_gamma: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prediction", Prediction.parse(self.prediction))
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0:
            raise InputError(f"min_snr_gamma must be positive, got {self.min_snr_gamma}")

    def noise(self, z_0: torch.Tensor, eps: torch.Tensor, index: torch.Tensor) -> NoisedSample:
        """The forward process at integer indices ``index`` (batch,)."""
        s = self.schedule.time_of(index).to(device=z_0.device)
        alpha, sigma = self.schedule.alpha(s), self.schedule.sigma(s)
        z_s = self.schedule.add_noise(z_0, eps, s)
        target = prediction_target(self.prediction, z_0, eps, alpha, sigma)
        return NoisedSample(z_s=z_s, index=index, s=s.to(z_0.dtype), target=target, snr=self.schedule.snr(s).to(z_0.dtype))

    def loss(self, output: torch.Tensor, sample: NoisedSample) -> torch.Tensor:
        """Scalar loss: per-sample mean squared error, optionally Min-SNR weighted, averaged over the batch."""
        per_sample = (output.float() - sample.target.float()).pow(2).flatten(1).mean(dim=1)
        if self.min_snr_gamma is not None:
            per_sample = per_sample * min_snr_weight(sample.snr.float(), self.min_snr_gamma, self.prediction)
        return per_sample.mean()


def drop_condition(
    states: torch.Tensor,
    probability: float,
    generator: torch.Generator | None = None,
    replacement: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free guidance dropout: replace the condition of a random ``probability`` share of samples.

    states: (batch, tokens, dim) text/instruction states.  Dropped rows become zeros (Tango's
    choice) or ``replacement`` (e.g. the empty prompt's states, broadcastable to one row).
    Returns (new states, (batch,) bool mask of dropped rows) so a caller can drop masks too.
    """
    if not 0.0 <= probability <= 1.0:
        raise InputError(f"condition dropout probability must be in [0, 1], got {probability}")
    draw = torch.rand(states.shape[0], generator=generator, device=rng_device(generator, states.device))
    dropped = (draw < probability).to(states.device)
    fill = torch.zeros_like(states) if replacement is None else replacement.to(states).expand_as(states)
    keep = (~dropped).reshape(-1, *([1] * (states.ndim - 1)))
    return torch.where(keep, states, fill), dropped
