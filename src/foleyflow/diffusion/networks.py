"""Adapters from library networks to the call every wrapper here expects: ``net(x, time, **kwargs)``."""

from __future__ import annotations

import torch


class UNetNetwork:
    """A diffusers ``UNet2DConditionModel`` as ``net(x, time, context, context_mask=None)``.

    ``time_scale`` maps the caller's time to the UNet's timestep: 1 for diffusion (the
    Denoiser already passes DDPM indices), 1000 for flow time t in [0, 1] so that the
    sinusoidal embedding sees the range it was designed for.
    x: (batch, channels, frames, bins); context: (batch, tokens, dim); context_mask: (batch, tokens).
    """

    def __init__(self, unet: torch.nn.Module, time_scale: float = 1.0):
        self.unet = unet
        self.time_scale = float(time_scale)

    def __call__(self, x: torch.Tensor, time: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        timestep = time * self.time_scale
        return self.unet(x, timestep, encoder_hidden_states=context, encoder_attention_mask=context_mask).sample
