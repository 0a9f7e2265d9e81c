"""Progressive distillation: BSA for the diffusion generator (SPEC 4, Algorithm 1 of seed 003)
and its flow counterpart for the editor.

Generator (diffusion time s; SPEC 4 calls it t):

    variable   name in SPEC 4                 value
    --------   --------------                 -----
    s          t                              i / N,  i ~ U{1..N},  N = student steps
    s_half     t'                             t - 0.5 / N
    s_next     t''                            t - 1 / N
    z_s        z_t                            alpha_t z_0 + sigma_t eps
    z_half     z_t'   (one teacher DDIM step)
    z_next     z_t''  (two teacher DDIM steps)
    x0_target  x~_0   (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)

x~_0 is the x-prediction that carries z_t to z_t'' in ONE DDIM step, so a student trained to
predict it with ``w(lambda_t) || x~_0 - x_theta(z_t) ||^2`` does the teacher's two steps in one.
The teacher is the *guided* teacher (a ``Denoiser`` over ``ClassifierFreeGuidance``); the
student learns the guided prediction from the conditional input alone, so it is sampled
without guidance (scale 1), and a student that becomes the next teacher is not guided again
(``progressive_rounds`` sets the teacher's scale to 1 after the first round).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping

import torch

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.ode import euler_step
from foleyflow.diffusion.samplers import ddim_step
from foleyflow.diffusion.tensors import batch_times, expand_as, rng_device
from foleyflow.errors import InputError


class Weighting(str, Enum):
    """Loss weight w(lambda_t) as a function of SNR = alpha_t^2 / sigma_t^2 (SPEC 4)."""

    BSA = "bsa"  # min(SNR + 1, gamma)                                                          (10)
    SALIMANS_MAX = "salimans-max"  # max(SNR, 1)                                                 (7)
    SALIMANS_PLUS1 = "salimans-plus1"  # SNR + 1                                                 (8)
    MIN_SNR = "min-snr"  # min(SNR, gamma)                                                       (9)
    NONE = "none"  # 1


def parse_weighting(value: "Weighting | str") -> Weighting:
    try:
        return Weighting(value)
    except ValueError:
        choices = ", ".join(w.value for w in Weighting)
        raise InputError(f"unknown weighting {value!r}; choose one of {choices}") from None


def loss_weight(snr: torch.Tensor, weighting: Weighting | str = Weighting.BSA, gamma: float = 5.0) -> torch.Tensor:
    """w for each SNR, by the formula of the chosen weighting (equations 7-10 of seed 003)."""
    weighting = parse_weighting(weighting)
    if weighting is Weighting.BSA:
        return (snr + 1).clamp(max=gamma)
    if weighting is Weighting.SALIMANS_MAX:
        return snr.clamp(min=1)
    if weighting is Weighting.SALIMANS_PLUS1:
        return snr + 1
    if weighting is Weighting.MIN_SNR:
        return snr.clamp(max=gamma)
    return torch.ones_like(snr)


# -- generator: BSA / Algorithm 1 ----------------------------------------------------------------
@dataclass
class DistillationTarget:
    """One batch of Algorithm 1; tensors (batch, channels, frames, bins), times (batch,)."""

    z_s: torch.Tensor  # z_t, what the student sees
    s: torch.Tensor  # t = i / N
    x0_target: torch.Tensor  # x~_0
    snr: torch.Tensor  # alpha_t^2 / sigma_t^2, for w(lambda_t)


def sample_student_times(batch: int, student_steps: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """(batch,) t = i / N with i ~ U{1, ..., N}."""
    i = torch.randint(1, student_steps + 1, (batch,), generator=generator, device=rng_device(generator, device))
    t = i.to(torch.float64) / student_steps
    return t.to(device) if device is not None else t


def two_step_x0_target(z_s, z_next, alpha_s, sigma_s, alpha_next, sigma_next) -> torch.Tensor:
    """x~_0 = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)   (Algorithm 1)

    Solving ``ddim_step(z_t, x, t -> t'') = z_t''`` for x; coefficients scalars or (batch,).
    """
    ratio = expand_as(sigma_next, z_s) / expand_as(sigma_s, z_s)
    return (z_next - ratio * z_s) / (expand_as(alpha_next, z_s) - ratio * expand_as(alpha_s, z_s))


@torch.no_grad()
def teacher_target(
    teacher: Denoiser,
    z_0: torch.Tensor,
    eps: torch.Tensor,
    s: torch.Tensor,
    student_steps: int,
    extra_args: Mapping[str, Any] | None = None,
) -> DistillationTarget:
    """Noise z_0 to z_t and run two DDIM steps of the (guided) teacher to get x~_0.

    z_0, eps: (batch, channels, frames, bins); s: (batch,) from ``sample_student_times``.
    """
    extra_args = extra_args or {}
    schedule = teacher.schedule
    s = batch_times(s, z_0).to(torch.float32 if z_0.device.type == "mps" else torch.float64)
    s_half, s_next = s - 0.5 / student_steps, s - 1.0 / student_steps
    alpha, sigma = schedule.alpha(s), schedule.sigma(s)
    alpha_half, sigma_half = schedule.alpha(s_half), schedule.sigma(s_half)
    alpha_next, sigma_next = schedule.alpha(s_next), schedule.sigma(s_next)
    z_s = schedule.add_noise(z_0, eps, s)
    x_first = teacher(z_s, s.to(z_0.dtype), **extra_args)
    z_half = ddim_step(z_s, x_first, alpha, sigma, alpha_half, sigma_half)
    x_second = teacher(z_half, s_half.to(z_0.dtype), **extra_args)
    z_next = ddim_step(z_half, x_second, alpha_half, sigma_half, alpha_next, sigma_next)
    x0_target = two_step_x0_target(z_s, z_next, alpha, sigma, alpha_next, sigma_next)
    return DistillationTarget(z_s=z_s, s=s.to(z_0.dtype), x0_target=x0_target, snr=schedule.snr(s).to(z_0.dtype))


def distillation_loss(student_x0: torch.Tensor, target: DistillationTarget, weighting: Weighting | str = Weighting.BSA, gamma: float = 5.0) -> torch.Tensor:
    """w(lambda_t) || x~_0 - x_theta(z_t) ||^2, mean over elements then over the batch.

    ``student_x0`` is the student's x-prediction: ``Denoiser(student, schedule, "epsilon" or "v")``
    converts its eps/v output (see ``parametrization.to_x0``).
    """
    per_sample = (student_x0.float() - target.x0_target.float()).pow(2).flatten(1).mean(dim=1)
    return (loss_weight(target.snr.float(), weighting, gamma) * per_sample).mean()


# -- editor: progressive halving of Euler steps -------------------------------------------------
# Why halving rather than reflow: a halving round costs two teacher calls per training
# sample, while reflow must first integrate the teacher's whole trajectory (e.g. 200 calls)
# for every (source, noise) pair -- the dominant cost on the 2-core machines we target.
# Halving also reuses Algorithm 1's structure and the trainer's round loop unchanged, and it
# makes the student at N/2 Euler steps reproduce the teacher's own N-step Euler trajectory,
# which is exactly what the editing benchmark compares.
@dataclass
class FlowDistillationTarget:
    """One batch of flow halving: the student's one Euler step of 2 dt lands where the teacher's two land."""

    x_t: torch.Tensor
    t: torch.Tensor  # (batch,) flow times on the student's grid
    velocity_target: torch.Tensor  # v~ = (x_{t+2dt} - x_t) / (2 dt)


def sample_student_flow_times(batch: int, student_steps: int, t_start: float = 0.0, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """(batch,) t = t_start + k (1 - t_start) / N, k ~ U{0, ..., N - 1}: the student's Euler grid."""
    k = torch.randint(0, student_steps, (batch,), generator=generator, device=rng_device(generator, device))
    t = t_start + k.to(torch.float64) * (1.0 - t_start) / student_steps
    return t.to(device) if device is not None else t


@torch.no_grad()
def flow_teacher_target(
    teacher: Callable[..., torch.Tensor],
    x_t: torch.Tensor,
    t: torch.Tensor,
    student_steps: int,
    t_start: float = 0.0,
    extra_args: Mapping[str, Any] | None = None,
) -> FlowDistillationTarget:
    """Two Euler steps (5) of the (guided) teacher velocity, dt = (1 - t_start) / (2 N), as one velocity.

    x_t: points on the path (1) at the student's times t (``RectifiedFlowPath.x_t``).
    """
    extra_args = extra_args or {}
    t = batch_times(t, x_t)
    dt = (1.0 - t_start) / (2 * student_steps)
    x_half = euler_step(x_t, teacher(x_t, t, **extra_args), dt)
    x_next = euler_step(x_half, teacher(x_half, t + dt, **extra_args), dt)
    return FlowDistillationTarget(x_t=x_t, t=t, velocity_target=(x_next - x_t) / (2 * dt))


def flow_distillation_loss(student_velocity: torch.Tensor, target: FlowDistillationTarget) -> torch.Tensor:
    """|| v_theta(x_t, t) - v~ ||^2, averaged like the flow-matching loss (3)."""
    return (student_velocity.float() - target.velocity_target.float()).pow(2).mean()


# -- rounds ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistillationRound:
    """One round: the teacher samples with ``teacher_steps``, the student learns ``student_steps``."""

    number: int  # 1-based
    teacher_steps: int
    student_steps: int
    teacher_guidance: float  # CFG scale applied inside the teacher's steps


def progressive_rounds(start_steps: int, rounds: int, guidance: float = 1.0) -> list[DistillationRound]:
    """K rounds halving N (Algorithm 1's outer loop): 200 -> 100 -> 50 -> 25 for start 200, K = 3.

    Only the first teacher is guided at ``guidance``; later teachers are students that have
    absorbed the guidance already.
    """
    if rounds < 1:
        raise InputError(f"distillation needs at least one round, got {rounds}")
    if start_steps < 2 or start_steps % (2**rounds):
        raise InputError(f"{start_steps} steps cannot be halved {rounds} times into whole numbers of steps")
    return [
        DistillationRound(number=k + 1, teacher_steps=start_steps >> k, student_steps=start_steps >> (k + 1), teacher_guidance=guidance if k == 0 else 1.0)
        for k in range(rounds)
    ]


# -- one training step, for a trainer recipe's ``losses`` -----------------------------------------------
def progressive_distillation_loss(
    student: Denoiser,
    teacher: Denoiser,
    z_0: torch.Tensor,
    student_steps: int,
    weighting: Weighting | str = Weighting.BSA,
    gamma: float = 5.0,
    generator: torch.Generator | None = None,
    student_args: Mapping[str, Any] | None = None,
    teacher_args: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Algorithm 1's inner loop body for one batch: draw t and eps, build x~_0, score the student.

    ``teacher_args`` hold the guided teacher's ``cond``/``uncond``; ``student_args`` the
    student's plain condition (e.g. ``{"context": tau}``).  Returns (loss, figures to log).
    """
    s = sample_student_times(z_0.shape[0], student_steps, generator, device=z_0.device)
    eps = torch.randn(z_0.shape, generator=generator, device=rng_device(generator, z_0.device)).to(z_0)
    target = teacher_target(teacher, z_0, eps, s, student_steps, teacher_args)
    student_x0 = student(target.z_s, target.s, **(student_args or {}))
    loss = distillation_loss(student_x0, target, weighting, gamma)
    return loss, {"distill_loss": float(loss.detach())}


def flow_halving_loss(
    student: Callable[..., torch.Tensor],
    teacher: Callable[..., torch.Tensor],
    path,
    x_0: torch.Tensor,
    student_steps: int,
    t_start: float = 0.0,
    generator: torch.Generator | None = None,
    student_args: Mapping[str, Any] | None = None,
    teacher_args: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One batch of Euler-step halving for a flow model (velocity callables, ``RectifiedFlowPath``).

    The source latent travels in both ``student_args`` and ``teacher_args`` (``source=x_T``).
    """
    t = sample_student_flow_times(x_0.shape[0], student_steps, t_start, generator, device=x_0.device).to(x_0.dtype)
    eps = torch.randn(x_0.shape, generator=generator, device=rng_device(generator, x_0.device)).to(x_0)
    target = flow_teacher_target(teacher, path.x_t(x_0, eps, t), t, student_steps, t_start, teacher_args)
    loss = flow_distillation_loss(student(target.x_t, target.t, **(student_args or {})), target)
    return loss, {"distill_loss": float(loss.detach())}
