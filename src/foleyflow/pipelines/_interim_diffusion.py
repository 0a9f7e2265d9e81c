"""Editing maths (rectified flow, and the DDPM baseline) used until ``foleyflow.diffusion`` lands on main.

INTERIM: the diffusion branch owns these equations (SPEC 2, (1)-(5)); when it is merged the
editor and the edit recipe import from there and this module is deleted. Kept in one file so
that swap is one import line per caller.

Time convention (as in ``foleyflow.diffusion``): flow time t, 0 = noise, 1 = data.
Shapes: latents are (batch, channels, frames, bins); t is a float or a (batch,) tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
UNET_TIME_SCALE = 1000.0  # the UNet's sinusoidal embedding expects timesteps on a 0..1000 scale


def _broadcast(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.ndim - 1))) if t.ndim else t


@dataclass(frozen=True)
class RectifiedFlowPath:
    """The straight path between noise eps (t = 0) and data x_0 (t = 1)."""

    sigma_min: float = 0.0

    def x_t(self, x_0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """x_t = (1 - (1 - sigma_min) t) eps + t x_0   (1)"""
        t = _broadcast(t, x_0)
        return (1 - (1 - self.sigma_min) * t) * eps + t * x_0

    def target_velocity(self, x_0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v_target = x_0 - (1 - sigma_min) eps   (2)"""
        return x_0 - (1 - self.sigma_min) * eps

    def x_start(self, x_source: torch.Tensor, eps: torch.Tensor, t_start: float) -> torch.Tensor:
        """x_start = (1 - (1 - sigma_min) t_start) eps + t_start x_T   (4): the path towards the *source*."""
        return self.x_t(x_source, eps, t_start)


def flow_matching_loss(v_pred: torch.Tensor, v_target: torch.Tensor) -> torch.Tensor:
    """L_FM = E || v_theta - v_target ||^2   (3), averaged over elements."""
    return torch.mean((v_pred.float() - v_target.float()) ** 2)


def time_grid(t_start: float, steps: int) -> torch.Tensor:
    """(steps + 1,) uniformly spaced flow times from t_start to 1."""
    return torch.linspace(float(t_start), 1.0, steps + 1)


def sample_euler(velocity: VelocityFn, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """x_{t+dt} = x_t + dt v(x_t, t)   (5), over consecutive ``times``."""
    for t, t_next in zip(times[:-1], times[1:]):
        x = x + (t_next - t) * velocity(x, t)
    return x


def sample_heun(velocity: VelocityFn, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Heun's second-order method (two velocity evaluations per step)."""
    for t, t_next in zip(times[:-1], times[1:]):
        dt = t_next - t
        v = velocity(x, t)
        x_euler = x + dt * v
        x = x + dt * 0.5 * (v + velocity(x_euler, t_next))
    return x


SOLVERS = {"euler": (sample_euler, 1), "heun": (sample_heun, 2)}  # name -> (solver, forwards per step)


def concat_velocity(
    unet: torch.nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor | float,
    x_source: torch.Tensor,
    states: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """v_theta(x_t (+) x_T, t, E_I): the source latent concatenated on channels (SPEC 2)."""
    t = torch.as_tensor(t, dtype=x_t.dtype).expand(x_t.shape[0]) * UNET_TIME_SCALE
    sample = torch.cat([x_t, x_source], dim=1)
    return unet(sample, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample


def guided_velocity(
    unet: torch.nn.Module,
    x_source: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor | None],
    uncond: tuple[torch.Tensor, torch.Tensor | None],
    scale: float,
) -> VelocityFn:
    """CFG on the instruction, v = v_u + w (v_c - v_u); both branches see the source latent.

    Both branches run as one batch of 2B (unconditional first), one network forward per call.
    With ``scale == 1`` only the conditional branch runs.
    """
    if scale == 1.0:
        return lambda x, t: concat_velocity(unet, x, t, x_source, *cond)
    states, mask = _stack_branches(uncond, cond)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_uncond, v_cond = concat_velocity(unet, torch.cat([x, x]), t, torch.cat([x_source, x_source]), states, mask).chunk(2)
        return v_uncond + scale * (v_cond - v_uncond)

    return velocity


def _stack_branches(uncond, cond):
    (u_states, u_mask), (c_states, c_mask) = uncond, cond
    length = max(u_states.shape[1], c_states.shape[1])
    u_states, u_mask = _pad_tokens(u_states, u_mask, length)
    c_states, c_mask = _pad_tokens(c_states, c_mask, length)
    return torch.cat([u_states, c_states]), torch.cat([u_mask, c_mask])


def _pad_tokens(states: torch.Tensor, mask: torch.Tensor | None, length: int):
    if mask is None:
        mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
    extra = length - states.shape[1]
    if extra:
        states = torch.nn.functional.pad(states, (0, 0, 0, extra))
        mask = torch.nn.functional.pad(mask, (0, extra))
    return states, mask


# -- the AUDIT-style baseline: DDPM noise prediction with the source concatenated (SPEC 6) ----------
# Diffusion time here follows diffusers' discrete indices (0 = data side, 999 = noise).
def ddpm_scheduler():
    """Tango's 1000-step DDPM with scaled-linear betas 0.00085..0.012, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon")


def ddpm_concat_loss(unet, scheduler, x_0, x_source, states, mask, generator=None) -> torch.Tensor:
    """|| eps_theta(z_i (+) x_T, i, E_I) - eps ||^2 with i ~ U{0..N-1}."""
    eps = torch.randn(x_0.shape, generator=generator)
    index = torch.randint(0, scheduler.config.num_train_timesteps, (x_0.shape[0],), generator=generator)
    z = scheduler.add_noise(x_0, eps, index)
    pred = unet(torch.cat([z, x_source], dim=1), index, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    return torch.mean((pred.float() - eps.float()) ** 2)


def sample_ddim_concat(unet, x_source, noise, cond, uncond, steps: int, scale: float) -> torch.Tensor:
    """DDIM (eta 0) from pure noise in ``steps`` network evaluations, CFG as in ``guided_velocity``."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(ddpm_scheduler().config)
    scheduler.set_timesteps(steps)
    states, mask = _stack_branches(uncond, cond)
    z = noise
    for index in scheduler.timesteps:
        if scale == 1.0:
            eps = unet(torch.cat([z, x_source], 1), index, encoder_hidden_states=cond[0], encoder_attention_mask=cond[1]).sample
        else:
            pair = torch.cat([torch.cat([z, x_source], 1)] * 2)
            eps_u, eps_c = unet(pair, index, encoder_hidden_states=states, encoder_attention_mask=mask).sample.chunk(2)
            eps = eps_u + scale * (eps_c - eps_u)
        z = scheduler.step(eps, index, z).prev_sample
    return z
