"""Thin wrappers around networks: classifier-free guidance and source concatenation.

A *model* here is any callable ``model(x, time, **kwargs) -> tensor`` whose output is linear
in what guidance mixes (eps, v or x for diffusion at a fixed z; the velocity for flows).
Guidance lives in these wrappers, never inside a sampler.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

Model = Callable[..., torch.Tensor]


class ClassifierFreeGuidance:
    """Tango's guidance (SPEC 1):  out = w * out(x, tau) + (1 - w) * out(x).

    Called as ``guided(x, time, cond={...}, uncond={...}, **shared)``: ``cond`` and ``uncond``
    hold the condition kwargs of each branch (e.g. ``context`` = the prompt's states and the
    empty prompt's states); ``shared`` kwargs reach both branches (RFM-Edit's source latent).
    Both branches run as one doubled batch when their tensors have equal shapes.
    """

    def __init__(self, model: Model, scale: float):
        self.model = model
        self.scale = float(scale)

    def __call__(self, x: torch.Tensor, time: torch.Tensor, *, cond: Mapping[str, Any], uncond: Mapping[str, Any], **shared: Any) -> torch.Tensor:
        if self.scale == 1.0:  # w = 1 leaves only the conditional branch: save the second pass
            return self.model(x, time, **cond, **shared)
        uncond = {key: _match_batch(value, cond.get(key)) for key, value in uncond.items()}
        out_cond, out_uncond = self._both_branches(x, time, cond, uncond, shared)
        return self.scale * out_cond + (1.0 - self.scale) * out_uncond

    def _both_branches(self, x, time, cond, uncond, shared) -> tuple[torch.Tensor, torch.Tensor]:
        if _stackable(cond, uncond):
            doubled = {key: _cat_pair(cond[key], uncond[key]) for key in cond}
            shared2 = {key: _cat_pair(value, value) for key, value in shared.items()}
            out = self.model(torch.cat([x, x]), _cat_pair(time, time), **doubled, **shared2)
            return out.chunk(2)
        return self.model(x, time, **cond, **shared), self.model(x, time, **uncond, **shared)


class ConcatSource:
    """RFM-Edit's input (SPEC 2): the network sees x_t (+) x_T on the channel axis.

    ``ConcatSource(net)(x_t, t, source=x_T, **kw) = net(cat([x_t, x_T], dim=1), t, **kw)``;
    wrap it in ``ClassifierFreeGuidance`` with ``source`` as a shared kwarg so both branches see it.
    """

    def __init__(self, network: Model):
        self.network = network

    def __call__(self, x: torch.Tensor, time: torch.Tensor, *, source: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.network(torch.cat([x, source.to(x)], dim=1), time, **kwargs)


def _stackable(cond: Mapping[str, Any], uncond: Mapping[str, Any]) -> bool:
    if cond.keys() != uncond.keys():
        return False
    for key in cond:
        a, b = cond[key], uncond[key]
        if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
            return False
        if isinstance(a, torch.Tensor) and a.shape != b.shape:
            return False
        if not isinstance(a, torch.Tensor) and a != b:
            return False
    return True


def _match_batch(value: Any, like: Any) -> Any:
    """Broadcast a one-row unconditional tensor (the empty prompt's states) to the batch."""
    if isinstance(value, torch.Tensor) and isinstance(like, torch.Tensor) and value.ndim > 0 and value.shape[0] == 1 and value.shape[1:] == like.shape[1:]:
        return value.expand_as(like)
    return value


def _cat_pair(a: Any, b: Any) -> Any:
    """Concatenate two batch tensors; non-tensors (and 0-d times) pass through unchanged."""
    if isinstance(a, torch.Tensor) and a.ndim > 0:
        return torch.cat([a, b])
    return a
