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
