"""Tango's DDPM noise schedule (SPEC 1), in discrete indices and in diffusion time s.

Diffusion time follows the convention of ``foleyflow.diffusion`` (s = 0 data, s = 1 noise;
index i <-> s = (i + 1) / N).  Symbols, as in the papers:

    variable          name in paper
    --------          -------------
    betas[i]          beta_i                 (DDPM, Ho et al.)
    alphas_cumprod[i] alpha-bar_i            = prod_{j <= i} (1 - beta_j)
    alpha(s)          alpha_s                = sqrt(alpha-bar)      (signal level)
    sigma(s)          sigma_s                = sqrt(1 - alpha-bar)  (noise level)
    snr(s)            SNR = alpha_s^2 / sigma_s^2                   (SPEC 4)
    log_snr(s)        lambda_s = log SNR                            (log-SNR)

diffusers' schedulers only know integer indices.  BSA distillation evaluates the teacher
half-way between the student's grid points (t' = t - 0.5/N: at N = 200 that is 2.5 indices
apart), so the schedule is extended to continuous s by interpolating log alpha-bar linearly
between neighbouring indices; it is exact at every integer index and gives alpha = 1,
sigma = 0 at s = 0 (alpha-bar_{-1} = 1, as diffusers' ``set_alpha_to_one``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from foleyflow.diffusion.tensors import expand_as
from foleyflow.errors import InputError

BETA_SCHEDULES = ("scaled_linear", "linear")


@dataclass(frozen=True)
class DDPMSchedule:
    """A discrete DDPM beta schedule; the defaults are Tango's (1000 steps, scaled-linear 0.00085..0.012)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise InputError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {self.beta_schedule!r}")
        if self.num_train_timesteps < 2 or not 0 < self.beta_start < self.beta_end < 1:
            raise InputError("a DDPM schedule needs num_train_timesteps >= 2 and 0 < beta_start < beta_end < 1")

    # -- tables over the discrete indices (float64, CPU) -----------------------------------
    @cached_property
    def betas(self) -> torch.Tensor:
        """(N,) beta_i.  "scaled_linear" is linear in sqrt(beta), as Stable Diffusion and Tango."""
        n = self.num_train_timesteps
        if self.beta_schedule == "scaled_linear":
            return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, n, dtype=torch.float64) ** 2
        return torch.linspace(self.beta_start, self.beta_end, n, dtype=torch.float64)

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        """(N,) alpha-bar_i = prod_{j <= i} (1 - beta_j)."""
        return torch.cumprod(1.0 - self.betas, dim=0)

    @cached_property
    def _log_alpha_bar_table(self) -> torch.Tensor:
        """(N + 1,) log alpha-bar at indices -1, 0, ..., N - 1 (index -1 is clean data)."""
        return torch.cat([torch.zeros(1, dtype=torch.float64), self.alphas_cumprod.log()])

    # -- indices <-> diffusion time ---------------------------------------------------------
    def time_of(self, index: torch.Tensor | int | float) -> torch.Tensor:
        """Diffusion time s = (i + 1) / N of an index (integer or fractional)."""
        index = torch.as_tensor(index)
        return (index.to(_work_dtype(index.device)) + 1) / self.num_train_timesteps

    def index_of(self, s: torch.Tensor | float) -> torch.Tensor:
        """Fractional index i = s N - 1 of a diffusion time; what the network is fed as its timestep."""
        s = torch.as_tensor(s)
        return s * self.num_train_timesteps - 1

    # -- continuous coefficients ----------------------------------------------------------------
    def log_alpha_bar(self, s: torch.Tensor | float) -> torch.Tensor:
        """log alpha-bar(s), piecewise linear in the index, exact on the integer grid."""
        s = torch.as_tensor(s)
        dtype = s.dtype if s.is_floating_point() else torch.get_default_dtype()
        work = _work_dtype(s.device)
        table = self._log_alpha_bar_table.to(device=s.device, dtype=work)
        position = (s.to(work) * self.num_train_timesteps).clamp(0, self.num_train_timesteps)
        lower = position.floor().clamp(max=self.num_train_timesteps - 1)
        frac = position - lower
        lower = lower.long()
        value = table[lower] * (1 - frac) + table[lower + 1] * frac
        return value.to(dtype)

    def alpha(self, s: torch.Tensor | float) -> torch.Tensor:
        """alpha_s, the signal level."""
        return (0.5 * self.log_alpha_bar(s)).exp()

    def sigma(self, s: torch.Tensor | float) -> torch.Tensor:
        """sigma_s, the noise level; expm1 keeps it accurate near s = 0."""
        return (-torch.expm1(self.log_alpha_bar(s))).clamp(min=0).sqrt()

    def snr(self, s: torch.Tensor | float) -> torch.Tensor:
        """SNR = alpha_s^2 / sigma_s^2 (infinite at s = 0)."""
        return self.log_snr(s).exp()

    def log_snr(self, s: torch.Tensor | float) -> torch.Tensor:
        """lambda_s = log(alpha_s^2 / sigma_s^2)."""
        log_ab = self.log_alpha_bar(s)
        return log_ab - torch.log(-torch.expm1(log_ab))

    def add_noise(self, z_0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """z_s = alpha_s z_0 + sigma_s eps (the forward process; SPEC 4's first line).

        z_0, eps: (batch, channels, frames, bins); s: (batch,).
        """
        return expand_as(self.alpha(s), z_0) * z_0 + expand_as(self.sigma(s), z_0) * eps

    # -- interop ------------------------------------------------------------------------------
    def diffusers_kwargs(self) -> dict:
        """Keyword arguments that make a diffusers scheduler use exactly these betas."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": self.beta_schedule,
        }


def diffusion_times(steps: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(steps + 1,) the uniform sampling grid s = 1, (steps-1)/steps, ..., 0 (diffusers' "trailing" spacing)."""
    if steps < 1:
        raise InputError(f"the number of sampling steps must be at least 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=dtype)


def _work_dtype(device: torch.device) -> torch.dtype:
    """float64 for schedule arithmetic, except on Apple's MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64
