"""The editing UNet seen through ``foleyflow.diffusion``'s interfaces, and the two edit samplers.

    flow (RFM-Edit, SPEC 2): ClassifierFreeGuidance(ConcatSource(velocity net)), started at
        x_start (4) on the path towards the source, solved from t_start to 1 (5).
    ddpm (the AUDIT-style baseline, SPEC 6): the same concatenation and guidance around an
        epsilon network, DDIM from pure noise (AUDIT has no t_start).
The UNet's sinusoidal timestep embedding was designed for DDPM indices 0..999, so flow time
t in [0, 1] is fed as 1000 t. Both CFG branches see the source latent.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.flow import RectifiedFlowPath, flow_times
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource, _match_batch
from foleyflow.diffusion.ode import NFE_PER_STEP, get_solver
from foleyflow.diffusion.samplers import sample_ddim
from foleyflow.diffusion.schedule import DDPMSchedule, diffusion_times
from foleyflow.pipelines.compositing import blended_flow_solve
from foleyflow.pipelines.masks import MaskEvidence

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


def _prediction_and_mask(output: torch.Tensor, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An editing UNet sees x (+) x_T (half its input channels are the latent); a generation
    UNet (the distillation teacher, say) sees x alone and has no mask head."""
    if output.shape[1] == sample.shape[1]:
        return output, None
    return split_mask_channel(output, sample.shape[1] // 2)


class UNetNoise:
    """``net(z_i (+) x_T, i, context=, mask=) -> eps``: a diffusers UNet on DDPM indices.

    A mask head's extra output channel is dropped here; ``with_mask_logits`` keeps it, and so
    does ``raw=True`` (for ``RecordingGuidance``, which needs it per CFG branch).
    """

    time_scale = 1.0  # the UNet's own time: DDPM indices

    def __init__(self, unet: torch.nn.Module, raw: bool = False) -> None:
        self.unet = unet
        self.raw = raw

    def __call__(self, sample: torch.Tensor, time: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return _prediction_or_raw(self.with_mask_logits(sample, time, context, mask), self.raw)

    def with_mask_logits(self, sample, time, context, mask=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self.unet(sample, time * self.time_scale, encoder_hidden_states=context, encoder_attention_mask=mask).sample
        return _prediction_and_mask(output, sample)


class UNetVelocity(UNetNoise):
    """``net(x_t (+) x_T, t, context=, mask=) -> v``: the same UNet on flow time t, fed as 1000 t."""

    time_scale = FLOW_TIME_SCALE


def _prediction_or_raw(split: tuple[torch.Tensor, torch.Tensor | None], raw: bool) -> torch.Tensor:
    prediction, logits = split
    return torch.cat([prediction, logits], dim=1) if raw and logits is not None else prediction


class RecordingGuidance(ClassifierFreeGuidance):
    """Classifier-free guidance that also feeds each call's branch outputs to a ``MaskEvidence``.

    Wraps a network giving the *raw* output (prediction + a mask head's channel): guidance mixes
    the prediction channels only. With ``both_branches`` the unconditional branch runs even at
    w = 1 (in the same doubled batch: one NFE, twice the batch) because the diffedit mask needs it.
    """

    def __init__(self, model, scale: float, evidence: MaskEvidence, both_branches: bool = False) -> None:
        super().__init__(model, scale)
        self.evidence = evidence
        self.both_branches = both_branches

    def __call__(self, x: torch.Tensor, time: torch.Tensor, *, cond, uncond, **shared) -> torch.Tensor:
        channels = x.shape[1]
        if self.scale == 1.0 and not self.both_branches:
            out_cond = self.model(x, time, **cond, **shared)
            self.evidence.record(out_cond, None)
            return out_cond[:, :channels]
        uncond = {key: _match_batch(value, cond.get(key)) for key, value in uncond.items()}
        out_cond, out_uncond = self._both_branches(x, time, cond, uncond, shared)
        self.evidence.record(out_cond, out_uncond)
        return self.scale * out_cond[:, :channels] + (1.0 - self.scale) * out_uncond[:, :channels]


def guided(adapter, unet, cfg_scale: float, evidence: MaskEvidence | None, both_branches: bool):
    """CFG(ConcatSource(adapter(unet))), recording mask evidence when asked."""
    if evidence is None:
        return ClassifierFreeGuidance(ConcatSource(adapter(unet)), cfg_scale)
    return RecordingGuidance(ConcatSource(adapter(unet, raw=True)), cfg_scale, evidence, both_branches)


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


def network_evaluations(objective: str, steps: int, solver: str = "euler") -> int:
    """Network evaluations of an edit's sampling: DDIM takes one per step, a flow solver its own count."""
    return steps if objective == "ddpm" else steps * NFE_PER_STEP[solver]


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
    evidence: MaskEvidence | None = None,
    both_branches: bool = False,
    keep_mask: Callable[[], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, int]:
    """RFM-Edit: the edited latent x_1 and the number of network evaluations.

    ``evidence`` records mask evidence from every network call (``RecordingGuidance``);
    ``keep_mask`` turns on every-step compositing (``compositing.blended_flow_solve``).
    """
    path = RectifiedFlowPath(sigma_min)
    x_start = path.edit_start(x_source, noise, t_start)
    model = guided(UNetVelocity, unet, cfg_scale, evidence, both_branches)
    cond_kwargs, uncond_kwargs = branch_kwargs(cond, uncond)
    extra = {"source": x_source, "cond": cond_kwargs, "uncond": uncond_kwargs}
    times = flow_times(steps, t_start)
    if keep_mask is None:
        x_1 = get_solver(solver)(model, x_start, times, extra_args=extra, disable=True)
    else:
        x_1 = blended_flow_solve(get_solver(solver), model, x_start, times, extra, path, x_source, noise, keep_mask)
    return x_1, network_evaluations("flow", steps, solver)


def ddpm_edit(
    unet: torch.nn.Module,
    x_source: torch.Tensor,
    noise: torch.Tensor,
    cond: Branch,
    uncond: Branch,
    steps: int,
    cfg_scale: float,
    evidence: MaskEvidence | None = None,
    both_branches: bool = False,
) -> tuple[torch.Tensor, int]:
    """The AUDIT-style baseline: DDIM in ``steps`` evaluations from pure noise, source concatenated."""
    model = Denoiser(guided(UNetNoise, unet, cfg_scale, evidence, both_branches), DDPMSchedule(), "epsilon")
    cond_kwargs, uncond_kwargs = branch_kwargs(cond, uncond)
    extra = {"source": x_source, "cond": cond_kwargs, "uncond": uncond_kwargs}
    return sample_ddim(model, noise, diffusion_times(steps), extra_args=extra, disable=True), network_evaluations("ddpm", steps)
