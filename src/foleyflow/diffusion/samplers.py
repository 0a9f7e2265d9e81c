"""Samplers for the text-to-audio generator (SPEC 1): DDIM, DDPM and DPM-Solver++.

Every sampler has one signature (k-diffusion's):

    sample_x(model, x, times, extra_args=None, callback=None, disable=None, generator=None) -> x_0

- ``model``: a ``Denoiser`` (``model(z_s, s, **extra_args) -> x_hat_0``, with ``.schedule``);
  guidance belongs in it, not here.
- ``x``: the starting noise z_1, (batch, channels, frames, bins).
- ``times``: the diffusion times to visit, from 1 down to 0 (``schedule.diffusion_times``).
- ``callback``: called after each step with {"i", "x", "s", "denoised"}.
- ``disable``: hide the progress bar.  ``generator``: for stochastic samplers (DDPM).

DDIM is written here by hand because progressive distillation needs the same update at
half-grid times that diffusers' integer timesteps cannot express, and student sampling must
use exactly the update the distillation target assumed.  On integer grids it agrees with
diffusers' ``DDIMScheduler`` ("trailing" spacing, eta = 0; tested).  DDPM ancestral sampling
and DPM-Solver++(2M) run on diffusers' schedulers, fed the denoiser's x_hat_0 ("sample"
prediction), so any network parametrisation and any guidance reach them unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm, trange

from foleyflow.diffusion.schedule import DDPMSchedule
from foleyflow.diffusion.tensors import batch_times, expand_as
from foleyflow.errors import InputError

Callback = Callable[[dict], None] | None


def ddim_step(z_s: torch.Tensor, x_0: torch.Tensor, alpha_s, sigma_s, alpha_next, sigma_next) -> torch.Tensor:
    """One deterministic DDIM step from s to s' (SPEC 4, the teacher-step formula):

        z_{s'} = alpha_{s'} x + (sigma_{s'} / sigma_s) (z_s - alpha_s x)

    variable -> name in paper: x_0 -> x_eta(z_t), (alpha_s, sigma_s) -> (alpha_t, sigma_t),
    (alpha_next, sigma_next) -> (alpha_t', sigma_t').  Coefficients are scalars or (batch,).
    """
    a, s = expand_as(alpha_s, z_s), expand_as(sigma_s, z_s)
    a_next, s_next = expand_as(alpha_next, z_s), expand_as(sigma_next, z_s)
    return a_next * x_0 + (s_next / s) * (z_s - a * x_0)


def sample_ddim(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """DDIM (eta = 0): the deterministic sampler of Tango's evaluation and of distilled students."""
    schedule: DDPMSchedule = model.schedule
    extra_args = extra_args or {}
    times = _check_times(times, x)
    for i in trange(len(times) - 1, disable=disable, desc="DDIM"):
        s, s_next = times[i], times[i + 1]
        denoised = model(x, batch_times(s, x), **extra_args)
        x = ddim_step(x, denoised, schedule.alpha(s), schedule.sigma(s), schedule.alpha(s_next), schedule.sigma(s_next))
        _report(callback, i, x, s, denoised)
    return x


def sample_ddpm(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """DDPM ancestral sampling (posterior variance beta-tilde) via diffusers' ``DDPMScheduler``."""
    scheduler = DDPMScheduler(**_diffusers_kwargs(model.schedule), variance_type="fixed_small", clip_sample=False)
    return _run_diffusers(scheduler, "DDPM", model, x, times, extra_args, callback, disable, generator)


def sample_dpmpp_2m(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """DPM-Solver++(2M), the fast solver (good at 10-25 steps), via diffusers."""
    scheduler = DPMSolverMultistepScheduler(
        **_diffusers_kwargs(model.schedule),
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type="zero",
        lower_order_final=True,
    )
    return _run_diffusers(scheduler, "DPM-Solver++", model, x, times, extra_args, callback, disable, generator)


SAMPLERS: Mapping[str, Callable[..., torch.Tensor]] = {
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpm": sample_dpmpp_2m,
}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name`` ("ddim", "ddpm" or "dpm")."""
    if name not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def initial_noise(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Seeded starting noise; one generator per sample (a list) makes each sample batch-independent."""
    return randn_tensor(tuple(shape), generator=generator, device=torch.device(device) if device else None, dtype=dtype)


# -- helpers ----------------------------------------------------------------------------------
def _diffusers_kwargs(schedule: DDPMSchedule) -> dict[str, Any]:
    return {**schedule.diffusers_kwargs(), "trained_betas": schedule.betas.tolist(), "prediction_type": "sample"}


def _run_diffusers(scheduler, desc, model, x, times, extra_args, callback, disable, generator) -> torch.Tensor:
    schedule: DDPMSchedule = model.schedule
    extra_args = extra_args or {}
    scheduler.set_timesteps(timesteps=_grid_indices(schedule, _check_times(times, x)), device=x.device)
    for i, index in enumerate(_progress(scheduler.timesteps, disable, desc)):
        s = schedule.time_of(index).to(x)
        denoised = model(x, batch_times(s, x), **extra_args)
        x = scheduler.step(denoised, index, x, generator=generator).prev_sample
        _report(callback, i, x, s, denoised)
    return x


def _grid_indices(schedule: DDPMSchedule, times: torch.Tensor) -> list[int]:
    """The integer DDPM indices of a time grid that ends at s = 0 (diffusers needs integers)."""
    if times[-1] != 0:
        raise InputError("this sampler needs a time grid that ends at s = 0")
    index = schedule.index_of(times[:-1].double())
    rounded = index.round()
    if (index - rounded).abs().max() > 1e-4 or rounded.min() < 0:
        raise InputError("this sampler needs times on the training grid s = (i + 1) / N")
    return [int(i) for i in rounded]


def _check_times(times, x: torch.Tensor) -> torch.Tensor:
    times = torch.as_tensor(times, device=x.device)
    if times.ndim != 1 or len(times) < 2 or not bool((times[1:] < times[:-1]).all()) or times[0] > 1 or times[-1] < 0:
        raise InputError("diffusion times must decrease within [0, 1] and hold at least two entries")
    return times


def _progress(items, disable, desc):
    return tqdm(items, disable=disable, desc=desc)


def _report(callback: Callback, i: int, x, s, denoised) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "s": s, "denoised": denoised})
