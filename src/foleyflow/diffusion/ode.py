"""ODE solvers for flow models (SPEC 2, equation 5), integrating flow time t upward to 1.

One signature for all (k-diffusion's):

    solve_x(model, x, times, extra_args=None, callback=None, disable=None, generator=None) -> x_1

- ``model(x, t, **extra_args) -> velocity``, e.g.
  ``ClassifierFreeGuidance(ConcatSource(net), w)`` with extra_args
  ``{"source": x_T, "cond": {...}, "uncond": {...}}``.
- ``x``: the start point (``RectifiedFlowPath.edit_start``), (batch, channels, frames, bins).
- ``times``: increasing flow times from t_start to 1 (``flow.flow_times``).
- ``callback`` gets {"i", "x", "t", "velocity"} after each step; ``generator`` is unused
  (the solvers are deterministic) and kept so every sampler and solver is interchangeable.

Written by hand: diffusers has no Heun or midpoint for an arbitrary velocity field with a
start time t_start, and these are a few lines each.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from tqdm.auto import trange

from foleyflow.diffusion.tensors import batch_times
from foleyflow.errors import InputError

Callback = Callable[[dict], None] | None


def euler_step(x: torch.Tensor, velocity: torch.Tensor, dt) -> torch.Tensor:
    """x_{t+dt} = x_t + dt * v_theta(x_t, t)                                                  (5)"""
    return x + dt * velocity


def solve_euler(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """Explicit Euler, the paper's solver (one network call per step)."""
    extra_args, times = extra_args or {}, _check_times(times, x)
    for i in trange(len(times) - 1, disable=disable, desc="Euler"):
        t, dt = times[i], times[i + 1] - times[i]
        velocity = model(x, batch_times(t, x), **extra_args)
        x = euler_step(x, velocity, dt)
        _report(callback, i, x, t, velocity)
    return x


def solve_heun(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """Heun's method (explicit trapezoid): second order, two network calls per step."""
    extra_args, times = extra_args or {}, _check_times(times, x)
    for i in trange(len(times) - 1, disable=disable, desc="Heun"):
        t, t_next = times[i], times[i + 1]
        velocity = model(x, batch_times(t, x), **extra_args)
        x_euler = euler_step(x, velocity, t_next - t)
        velocity_end = model(x_euler, batch_times(t_next, x), **extra_args)
        x = euler_step(x, 0.5 * (velocity + velocity_end), t_next - t)
        _report(callback, i, x, t, velocity)
    return x


def solve_midpoint(model, x, times, extra_args=None, callback: Callback = None, disable=None, generator=None) -> torch.Tensor:
    """Explicit midpoint method: second order, two network calls per step."""
    extra_args, times = extra_args or {}, _check_times(times, x)
    for i in trange(len(times) - 1, disable=disable, desc="Midpoint"):
        t, dt = times[i], times[i + 1] - times[i]
        velocity = model(x, batch_times(t, x), **extra_args)
        x_half = euler_step(x, velocity, dt / 2)
        velocity_mid = model(x_half, batch_times(t + dt / 2, x), **extra_args)
        x = euler_step(x, velocity_mid, dt)
        _report(callback, i, x, t, velocity_mid)
    return x


SOLVERS: Mapping[str, Callable[..., torch.Tensor]] = {
    "euler": solve_euler,
    "heun": solve_heun,
    "midpoint": solve_midpoint,
}

NFE_PER_STEP: Mapping[str, int] = {"euler": 1, "heun": 2, "midpoint": 2}


def get_solver(name: str) -> Callable[..., torch.Tensor]:
    """The solver called ``name`` ("euler", "heun" or "midpoint")."""
    if name not in SOLVERS:
        raise InputError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return SOLVERS[name]


def _check_times(times, x: torch.Tensor) -> torch.Tensor:
    times = torch.as_tensor(times, device=x.device, dtype=x.dtype)
    if times.ndim != 1 or len(times) < 2 or not bool((times[1:] > times[:-1]).all()) or times[0] < 0 or times[-1] > 1:
        raise InputError("flow times must increase within [0, 1] and hold at least two entries")
    return times


def _report(callback: Callback, i: int, x, t, velocity) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "t": t, "velocity": velocity})
