"""The editing UNet seen through ``foleyflow.diffusion``'s interfaces, and the two edit samplers.

    flow (RFM-Edit, SPEC 2): ClassifierFreeGuidance(ConcatSource(velocity net)), started at
        x_start (4) on the path towards the source, solved from t_start to 1 (5).
    ddpm (the AUDIT-style baseline, SPEC 6): the same concatenation and guidance around an
        epsilon network, DDIM from pure noise (AUDIT has no t_start).
The UNet's sinusoidal timestep embedding was designed for DDPM indices 0..999, so flow time
t in [0, 1] is fed as 1000 t. Both CFG branches see the source latent.
"""

from __future__ import annotations

from typing import Any

import torch

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.flow import RectifiedFlowPath, flow_times
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource
from foleyflow.diffusion.ode import NFE_PER_STEP, get_solver
from foleyflow.diffusion.samplers import sample_ddim
from foleyflow.diffusion.schedule import DDPMSchedule, diffusion_times

FLOW_TIME_SCALE = 1000.0
Branch = tuple[torch.Tensor, torch.Tensor | None]  # (states (batch, tokens, dim), mask (batch, tokens))


def split_mask_channel(output: torch.Tensor, latent_channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(prediction, edit-mask logits) of a UNet output; the logits are None without a mask head.

    A mask-head editor's UNet has ``latent_channels + 1`` output channels; the last one holds
    the logits of the edit region (pipelines.masks), so the mask costs no extra network call.
    """
    if output.shape[1] == latent_channels:
        return output, None
    if output.shape[1] != latent_channels + 1:
        raise ValueError(f"UNet output has {output.shape[1]} channels; expected {latent_channels} or {latent_channels + 1}")
    return output[:, :latent_channels], output[:, latent_channels:]


class UNetVelocity:
    """``net(x_t (+) x_T, t, context=, mask=) -> v``: a diffusers UNet on flow time t.

    A mask head's extra output channel is dropped here; ``with_mask_logits`` keeps it.
    """

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet

    def __call__(self, sample: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.with_mask_logits(sample, t, context, mask)[0]

    def with_mask_logits(self, sample, t, context, mask=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self.unet(sample, t * FLOW_TIME_SCALE, encoder_hidden_states=context, encoder_attention_mask=mask).sample
        return split_mask_channel(output, sample.shape[1] // 2)  # input: x (+) x_T


class UNetNoise:
    """``net(z_i (+) x_T, i, context=, mask=) -> eps``: a diffusers UNet on DDPM indices."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet

    def __call__(self, sample: torch.Tensor, index: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.with_mask_logits(sample, index, context, mask)[0]

    def with_mask_logits(self, sample, index, context, mask=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self.unet(sample, index, encoder_hidden_states=context, encoder_attention_mask=mask).sample
        return split_mask_channel(output, sample.shape[1] // 2)  # input: x (+) x_T


def branch_kwargs(cond: Branch, uncond: Branch) -> tuple[dict[str, Any], dict[str, Any]]:
    """Condition kwargs of both CFG branches, padded to one token count so they run as one batch."""
    length = max(cond[0].shape[1], uncond[0].shape[1])
    return _padded(*cond, length), _padded(*uncond, length)


def _padded(states: torch.Tensor, mask: torch.Tensor | None, length: int) -> dict[str, Any]:
    if mask is None:
        mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
    extra = length - states.shape[1]
    if extra:
        states = torch.nn.functional.pad(states, (0, 0, 0, extra))
        mask = torch.nn.functional.pad(mask, (0, extra))
    return {"context": states, "mask": mask}


def flow_edit(
    unet: torch.nn.Module,
    x_source: torch.Tensor,
    noise: torch.Tensor,
    cond: Branch,
    uncond: Branch,
    steps: int,
    cfg_scale: float,
    t_start: float,
    solver: str = "euler",
    sigma_min: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """RFM-Edit: the edited latent x_1 and the number of network evaluations."""
    x_start = RectifiedFlowPath(sigma_min).edit_start(x_source, noise, t_start)
    model = ClassifierFreeGuidance(ConcatSource(UNetVelocity(unet)), cfg_scale)
    cond_kwargs, uncond_kwargs = branch_kwargs(cond, uncond)
    extra = {"source": x_source, "cond": cond_kwargs, "uncond": uncond_kwargs}
    x_1 = get_solver(solver)(model, x_start, flow_times(steps, t_start), extra_args=extra, disable=True)
    return x_1, steps * NFE_PER_STEP[solver]


def ddpm_edit(
    unet: torch.nn.Module,
    x_source: torch.Tensor,
    noise: torch.Tensor,
    cond: Branch,
    uncond: Branch,
    steps: int,
    cfg_scale: float,
) -> tuple[torch.Tensor, int]:
    """The AUDIT-style baseline: DDIM in ``steps`` evaluations from pure noise, source concatenated."""
    model = Denoiser(ClassifierFreeGuidance(ConcatSource(UNetNoise(unet)), cfg_scale), DDPMSchedule(), "epsilon")
    cond_kwargs, uncond_kwargs = branch_kwargs(cond, uncond)
    extra = {"source": x_source, "cond": cond_kwargs, "uncond": uncond_kwargs}
    return sample_ddim(model, noise, diffusion_times(steps), extra_args=extra, disable=True), steps
