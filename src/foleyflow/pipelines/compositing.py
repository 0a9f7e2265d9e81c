"""Compositing an edit into its source with an edit mask (issue 9): the source outside, the edit inside.

Modes (``Editor.edit(composite=...)``):
    none              the edited latent as sampled (the paper)
    end               once, on latents: x = m * x_edited + (1 - m) * x_T
    every-step        blended diffusion: after every solver step to time t, the region outside the
                      mask is put back on the source's own path, x_t(x_T) = (1 - (1 - sigma_min) t)
                      eps + t x_T with the *same* noise eps the edit started from, so the inside
                      is generated in the context of the source it will sit in
    audio             once, on waveforms: y = m * decode(x_edited) + (1 - m) * source audio, with
                      the mask interpolated to samples; the codec round trip never touches the
                      unedited region (a source passed through the codec is not the source)
    every-step+audio  both
Masks are (batch, 1, latent frames, 1) in [0, 1] (``pipelines.masks``) and broadcast over
channels and frequency.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from foleyflow.diffusion.flow import RectifiedFlowPath
from foleyflow.errors import InputError

MODES = ("none", "end", "every-step", "audio", "every-step+audio")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"composite must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def latent_end(mode: str) -> bool:
    return mode == "end"


def every_step(mode: str) -> bool:
    return mode.startswith("every-step")


def in_audio(mode: str) -> bool:
    return mode.endswith("audio")


def blend(edited: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m * edited + (1 - m) * source; written out (not lerp) so m = 0 gives ``source`` and m = 1 ``edited`` bit for bit."""
    mask = mask.to(edited)
    return mask * edited + (1 - mask) * source


def blended_flow_solve(
    solver: Callable[..., torch.Tensor],
    model: Callable[..., torch.Tensor],
    x_start: torch.Tensor,
    times: torch.Tensor,
    extra_args: dict,
    path: RectifiedFlowPath,
    x_source: torch.Tensor,
    noise: torch.Tensor,
    mask: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """Solve step by step; after each step to t, keep only the mask's region and take the rest from
    the source path at t. ``mask()`` is asked after every step, so a mask estimated while sampling
    (its running average) can be used as it is known."""
    x = x_start
    for i in range(len(times) - 1):
        x = solver(model, x, times[i : i + 2], extra_args=extra_args, disable=True)
        x = blend(x, path.x_t(x_source, noise, times[i + 1]), mask())
    return x


def blend_audio(edited: np.ndarray, source: np.ndarray, sample_mask: np.ndarray) -> np.ndarray:
    """Waveform compositing: (samples,) edit inside the per-sample mask, the source itself outside."""
    sample_mask = np.asarray(sample_mask, dtype=np.float64)
    return (sample_mask * edited + (1.0 - sample_mask) * source).astype(np.float32)
