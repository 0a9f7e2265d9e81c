"""RFM-Edit's rectified-flow path and flow-matching objective (SPEC 2, equations 1-4).

Flow time t follows the convention of ``foleyflow.diffusion`` (t = 0 noise, t = 1 data).

    variable      name in SPEC 2
    --------      --------------
    x_0           x_0, the latent of the edited (target) clip
    source        x_T, the latent of the source clip
    eps           eps ~ N(0, I)
    x_t           x_t                                               (1)
    dx_t          v_target, the velocity d x_t / d t               (2)

Tensors are (batch, channels, frames, bins); times are (batch,).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from foleyflow.diffusion.tensors import expand_as, rng_device, weighted_mse
from foleyflow.errors import InputError


@dataclass
class FlowSample:
    """A point on the path and its velocity, named after SPEC 2's symbols."""

    x_0: torch.Tensor
    eps: torch.Tensor
    t: torch.Tensor  # (batch,)
    x_t: torch.Tensor
    dx_t: torch.Tensor  # v_target


@dataclass(frozen=True)
class RectifiedFlowPath:
    """The straight path from noise (t = 0) to data (t = 1), blurred by sigma_min at t = 1.

    The papers do not give sigma_min; 1e-4 is our default (Lipman et al.'s OT path uses a
    small positive value so that the end point keeps a non-degenerate density).
    """

    sigma_min: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.sigma_min < 1.0:
            raise InputError(f"sigma_min must be in [0, 1), got {self.sigma_min}")

    def x_t(self, x_0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """x_t = (1 - (1 - sigma_min) t) eps + t x_0                                          (1)"""
        t = expand_as(t, x_0)
        return (1 - (1 - self.sigma_min) * t) * eps + t * x_0

    def dx_t(self, x_0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v_target = d x_t / d t = x_0 - (1 - sigma_min) eps                                  (2)"""
        return x_0 - (1 - self.sigma_min) * eps

    def sample(self, x_0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> FlowSample:
        """The training pair (x_t, v_target) at flow times t (batch,)."""
        return FlowSample(x_0=x_0, eps=eps, t=t, x_t=self.x_t(x_0, eps, t), dx_t=self.dx_t(x_0, eps))

    def edit_start(self, source: torch.Tensor, eps: torch.Tensor, t_start: float = 0.01) -> torch.Tensor:
        """x_start = (1 - (1 - sigma_min) t_start) eps + t_start x_T                          (4)

        Equation (4) is the path (1) at t_start with the source latent x_T in place of data.
        """
        if not 0.0 <= t_start < 1.0:
            raise InputError(f"t_start must be in [0, 1), got {t_start}")
        return self.x_t(source, eps, t_start)


@dataclass(frozen=True)
class SourceBridgePath:
    """The straight path from the edit's start state (4) to the target: not in the papers.

    Sampling (4)-(5) starts at t_start on the path from noise to the *source*, but the network
    of (1)-(3) only ever saw states on the path to the *target*; where the two differ (the edit
    region) the start state looks as if the target already had the source's sound there, and
    the network keeps it (issue 9, session 9 diagnostics). This path trains on the states the
    sampler visits: for t in [t_start, 1]

        x_start = (1 - (1 - sigma_min) t_start) eps + t_start x_T           (equation (4))
        x_end   = sigma_min eps + x_0                                         (path (1) at t = 1)
        x_t     = x_start + (t - t_start) / (1 - t_start) (x_end - x_start)
        dx_t    = (x_end - x_start) / (1 - t_start)

    Where source and target agree, x_t is path (1) exactly, so the unedited region is trained
    as before; Euler steps (5) from t_start with this velocity end on x_end.
    """

    t_start: float = 0.5
    sigma_min: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.t_start < 1.0:
            raise InputError(f"the bridge's t_start must be in [0, 1), got {self.t_start}")
        RectifiedFlowPath(self.sigma_min)  # checks sigma_min

    def ends(self, x_0: torch.Tensor, source: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_start, x_end): equation (4) and path (1) at t = 1."""
        path = RectifiedFlowPath(self.sigma_min)
        return path.edit_start(source, eps, self.t_start), path.x_t(x_0, eps, 1.0)

    def times(self, u: torch.Tensor) -> torch.Tensor:
        """Map training times u in [0, 1] (any TimeSampling) onto [t_start, 1]."""
        return self.t_start + (1.0 - self.t_start) * u

    def sample(self, x_0: torch.Tensor, source: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> FlowSample:
        """The training pair (x_t, dx_t) at times t (batch,) in [t_start, 1]."""
        x_start, x_end = self.ends(x_0, source, eps)
        progress = expand_as((t - self.t_start) / (1.0 - self.t_start), x_0)
        return FlowSample(x_0=x_0, eps=eps, t=t, x_t=x_start + progress * (x_end - x_start),
                          dx_t=(x_end - x_start) / (1.0 - self.t_start))


def flow_matching_loss(velocity: torch.Tensor, sample: FlowSample, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L_FM = E || v_theta(x_t (+) x_T, t, E_I) - v_target ||^2                                (3)

    The squared norm is averaged over elements and the batch (a constant rescaling of (3)).
    ``weights`` (broadcastable to the velocity) make it a weighted mean, e.g. to stress the
    edit region (issue 9); uniform weights give (3) exactly.
    """
    return weighted_mse(velocity, sample.dx_t, weights)


class TimeSampling(str, Enum):
    UNIFORM = "uniform"  # the paper
    LOGIT_NORMAL = "logit-normal"  # Esser et al. 2024: more weight on the middle of the path


def sample_flow_times(
    batch: int,
    distribution: TimeSampling | str = TimeSampling.UNIFORM,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    loc: float = 0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """(batch,) training times t in [0, 1]: uniform, or sigmoid of N(loc, scale^2)."""
    try:
        distribution = TimeSampling(distribution)
    except ValueError:
        raise InputError(f"time sampling must be uniform or logit-normal, got {distribution!r}") from None
    source_device = rng_device(generator, device)
    if distribution is TimeSampling.UNIFORM:
        t = torch.rand(batch, generator=generator, device=source_device)
    else:
        t = torch.sigmoid(loc + scale * torch.randn(batch, generator=generator, device=source_device))
    return t.to(device) if device is not None else t


def flow_times(steps: int, t_start: float = 0.0, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(steps + 1,) the uniform solver grid t_start, ..., 1."""
    if steps < 1:
        raise InputError(f"the number of solver steps must be at least 1, got {steps}")
    if not 0.0 <= t_start < 1.0:
        raise InputError(f"t_start must be in [0, 1), got {t_start}")
    return torch.linspace(t_start, 1.0, steps + 1, device=device, dtype=dtype)
