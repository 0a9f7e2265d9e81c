"""Broadcasting and random-number helpers shared by this folder's modules."""

from __future__ import annotations

import torch


def expand_as(coefficient: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A per-sample (batch,) or scalar coefficient shaped to broadcast against (batch, ...)."""
    if not torch.is_tensor(coefficient):  # a Python number: build it at the full precision of `like`
        coefficient = torch.tensor(coefficient, device=like.device, dtype=like.dtype if like.is_floating_point() else None)
    coefficient = coefficient.to(device=like.device, dtype=like.dtype if like.is_floating_point() else None)
    if coefficient.ndim == 0:
        return coefficient
    return coefficient.reshape(-1, *([1] * (like.ndim - 1)))


def batch_times(time: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (batch,) time as a (batch,) tensor on x's device and dtype."""
    time = torch.as_tensor(time, device=x.device, dtype=x.dtype)
    return time.expand(x.shape[0]) if time.ndim == 0 else time


def schedule_dtype(device: torch.device) -> torch.dtype:
    """float64 for schedule arithmetic, except on Apple's MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


def rng_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """Where to draw random numbers: the generator's device, else the target device (global RNG)."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over every element; with ``weights`` (broadcastable), the weighted mean."""
    error = (prediction.float() - target.float()).pow(2)
    if weights is None:
        return error.mean()
    weights = weights.float().expand_as(error)
    return (weights * error).sum() / weights.sum().clamp_min(1e-12)
