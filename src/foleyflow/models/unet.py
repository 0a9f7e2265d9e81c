"""The denoiser: diffusers ``UNet2DConditionModel`` on VAE latents (SPEC 1, 2, 6).

Input (batch, in_channels, 256, 16) for a 10.24 s clip, output (batch, 8, 256, 16).
``in_channels`` is 8 for generation (Tango) and 16 for editing (RFM-Edit / AUDIT: the noisy
latent concatenated with the source latent on the channel axis).

Presets:
    "tango-paper"  Tango's UNet (SPEC 6): 320/640/1280/1280, 2 layers per block, three
                   cross-attention down blocks + one plain, cross-attention dim 1024.
    "cpu-small"    for two CPU cores: three levels (32/64/128), one layer per block,
                   attention (self + cross) only at the lowest level (64 x 4 positions):
                   at 256 x 16 or 128 x 8 positions attention dominates the CPU time.
                   Cross-attention dim = the text encoder's width (384, MiniLM).
                   Measured: 0.11 s per forward of a (2, 8, 256, 16) batch on 2 cores, so
                   25 steps with CFG take ~2.7 s per 10.24 s clip (docs/models.md).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel

from foleyflow.errors import InputError
from foleyflow.models.checkpoint import load_config, load_weights, resolve_model_dir, save_model_folder

GENERATION_CHANNELS = 8
EDITING_CHANNELS = 16

PRESETS: dict[str, dict[str, Any]] = {
    "tango-paper": {
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "attention_head_dim": [5, 10, 20, 20],
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "upcast_attention": True,
        "norm_num_groups": 32,
    },
    "cpu-small": {
        "block_out_channels": [32, 64, 128],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "attention_head_dim": 32,
        "cross_attention_dim": 384,
        "use_linear_projection": True,
        "upcast_attention": False,
        "norm_num_groups": 16,
    },
}


def unet_config(preset: str = "cpu-small", in_channels: int = GENERATION_CHANNELS, **overrides: Any) -> dict[str, Any]:
    if preset not in PRESETS:
        raise InputError(f"unknown UNet preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if in_channels not in (GENERATION_CHANNELS, EDITING_CHANNELS):
        raise InputError(f"UNet in_channels must be {GENERATION_CHANNELS} (generation) or {EDITING_CHANNELS} (editing); got {in_channels}")
    config = {"sample_size": [256, 16], "in_channels": in_channels, "out_channels": GENERATION_CHANNELS, **PRESETS[preset]}
    config.update(overrides)
    return config


def unet_from_config(config: dict[str, Any]) -> UNet2DConditionModel:
    accepted = inspect.signature(UNet2DConditionModel.__init__).parameters
    arguments = {key: value for key, value in config.items() if key in accepted and key != "self"}
    try:
        return UNet2DConditionModel(**arguments)
    except (TypeError, ValueError) as error:
        raise InputError(f"bad UNet config ({error})") from None


def build_unet(preset: str = "cpu-small", in_channels: int = GENERATION_CHANNELS, **overrides: Any) -> UNet2DConditionModel:
    return unet_from_config(unet_config(preset, in_channels, **overrides))


def save_unet(unet: UNet2DConditionModel, folder: str | os.PathLike, card: str | None = None, extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """The UNet's model folder; ``extra_tensors`` (e.g. text-encoder LoRA adapters under a
    prefix) travel in the same safetensors file."""
    config = {"_class_name": "UNet2DConditionModel", **{k: v for k, v in unet.config.items() if not k.startswith("_")}}
    state = dict(unet.state_dict())
    state.update(extra_tensors or {})
    return save_model_folder(folder, state, config, card=card)


def load_unet(name: str | os.PathLike, component: str = "unet") -> tuple[UNet2DConditionModel, dict[str, torch.Tensor]]:
    """(UNet, the folder's other tensors, e.g. LoRA adapters) from a model folder."""
    from foleyflow.models.vae import load_state_strict

    folder = resolve_model_dir(name, component)
    unet = unet_from_config(load_config(folder))
    tensors = load_weights(folder)
    own = set(unet.state_dict())
    load_state_strict(unet, {k: v for k, v in tensors.items() if k in own}, str(folder))
    return unet.eval(), {k: v for k, v in tensors.items() if k not in own}


# ----------------------------------------------------------------------------- generator -> editor


def reversed_time_features(time_proj: torch.nn.Module, horizon: float) -> torch.Tensor:
    """M with time_proj(horizon - t) = time_proj(t) @ M.T for every t (float64).

    diffusers' sinusoidal features are a cos and a sin of omega * t per frequency; reversing time
    is a fixed reflection of each (cos, sin) pair: cos w(H - t) = cos wH cos wt + sin wH sin wt,
    sin w(H - t) = sin wH cos wt - cos wH sin wt. So a UNet trained on one direction of time can
    be fed the other exactly, by folding M into the first layer after the features.
    """
    channels = time_proj.num_channels
    half = channels // 2
    # diffusers' frequencies (get_timestep_embedding), in float64: its helper computes in float32,
    # and a phase of omega * 1000 rad needs the extra precision to fold in exactly.
    exponent = -torch.log(torch.tensor(10000.0, dtype=torch.float64)) * torch.arange(half, dtype=torch.float64) / (half - time_proj.downscale_freq_shift)
    omega_h = time_proj.scale * torch.exp(exponent) * horizon
    cos_at, sin_at = (torch.arange(half), torch.arange(half, 2 * half)) if time_proj.flip_sin_to_cos else (torch.arange(half, 2 * half), torch.arange(half))
    reflection = torch.zeros(channels, channels, dtype=torch.float64)
    reflection[cos_at, cos_at] = torch.cos(omega_h)
    reflection[cos_at, sin_at] = torch.sin(omega_h)
    reflection[sin_at, cos_at] = torch.sin(omega_h)
    reflection[sin_at, sin_at] = -torch.cos(omega_h)
    return reflection


def editor_unet_from_generator(generator_unet: UNet2DConditionModel, editor_unet: UNet2DConditionModel, time_horizon: float = 1000.0) -> UNet2DConditionModel:
    """Start an editing UNet from a text-to-audio one (InstructPix2Pix's initialisation), in place.

    Every weight is copied except three, which are adapted so that at the start
    editor(x (+) source, T * t)[:C] == -generator(x, T * (1 - t)) for any source:
      - conv_in: the generator's filters on the noisy latent's channels, zeros on the source's
        (InstructPix2Pix), so the source starts with no effect and its weights learn from zero;
      - the time MLP's first layer: time reversed (``reversed_time_features``), because the
        editor's flow time runs noise (0) -> data (T) and the DDPM index data (0) -> noise (T);
      - conv_out: negated on the latent's channels (a DDPM v-prediction, alpha eps - sigma x0,
        points against the flow velocity x0 - eps), zeros on a mask head's extra channel.
    The noise levels of the two time axes still differ (DDPM's alpha-bar against the straight
    path's t); fine-tuning has to learn that, not the whole network.
    """
    source, target = generator_unet.state_dict(), editor_unet.state_dict()
    latent = generator_unet.config.in_channels
    if editor_unet.config.in_channels != 2 * latent or editor_unet.config.out_channels not in (latent, latent + 1):
        raise InputError(f"an editor UNet takes {2 * latent} channels and gives {latent} (+1 with a mask head); this one {editor_unet.config.in_channels} -> {editor_unet.config.out_channels}")
    mismatched = sorted(k for k in target if k not in source or (source[k].shape != target[k].shape and not k.startswith(("conv_in.", "conv_out."))))
    if mismatched:
        raise InputError(f"the generator's UNet is not this editor's configuration: {', '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}")
    state = {k: source[k].clone() for k in target}
    state["conv_in.weight"] = torch.cat([source["conv_in.weight"], torch.zeros_like(source["conv_in.weight"])], dim=1)
    for name in ("conv_out.weight", "conv_out.bias"):
        extra = target[name].shape[0] - latent
        state[name] = torch.cat([-source[name], torch.zeros(extra, *source[name].shape[1:], dtype=source[name].dtype)])
    first = "time_embedding.linear_1.weight"
    reflection = reversed_time_features(generator_unet.time_proj, time_horizon)
    state[first] = (source[first].double() @ reflection).to(source[first].dtype)
    editor_unet.load_state_dict(state)
    return editor_unet
