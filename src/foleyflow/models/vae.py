"""The mel VAE: diffusers ``AutoencoderKL`` on log-mel spectrograms (SPEC 0 and 6).

Layout: mel (batch, 1, frames, 64) in, latents (batch, 8, frames / 4, 16) out, multiplied by
the config's ``scaling_factor`` (the diffusers convention; for our trained VAE it is
1 / std of the unscaled latents on the corpus, so scaled latents have unit variance).

Presets:
    "paper"  AudioLDM's VAE (block_out_channels 128/256/512, 2 layers per block, C = 8),
             the shape of the public AudioLDM / Tango checkpoints.
    "cpu"    a small VAE (0.65M parameters) that trains on two shared CPU cores: same r = 4
             and C = 8, 16/32/64 channels, one layer per block, no attention in the mid
             block (attention over 4096 positions is the slowest layer on CPU). Measured on
             this machine: a training step (8 x 1.28 s) takes 2.0 s, 6.7 s at 32/64/128.

Public checkpoints load from local files through ``foleyflow.models.interop``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL

from foleyflow.errors import InputError
from foleyflow.models.checkpoint import check_keys, load_config, load_weights, resolve_model_dir, save_model_folder

LATENT_CHANNELS = 8
COMPRESSION = 4  # mel frames and mel bins are each divided by 4
AUDIOLDM_SCALING_FACTOR = 0.9227914214134216  # audioldm-s-full (SPEC 6)

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "block_out_channels": [128, 256, 512],
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "mid_block_add_attention": True,
        "scaling_factor": AUDIOLDM_SCALING_FACTOR,
    },
    "cpu": {
        "block_out_channels": [16, 32, 64],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "mid_block_add_attention": False,
        "scaling_factor": 1.0,  # replaced by 1 / std measured on data after training
    },
}


def vae_config(preset: str = "cpu", **overrides: Any) -> dict[str, Any]:
    """The full AutoencoderKL constructor arguments of a preset (overrides win)."""
    if preset not in PRESETS:
        raise InputError(f"unknown VAE preset {preset!r}; choose one of {', '.join(PRESETS)}")
    levels = len(PRESETS[preset]["block_out_channels"])
    config = {
        "in_channels": 1,
        "out_channels": 1,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "latent_channels": LATENT_CHANNELS,
        "act_fn": "silu",
        "sample_size": 256,
        "force_upcast": False,
        **PRESETS[preset],
    }
    config.update(overrides)
    return config


def build_vae(preset: str = "cpu", **overrides: Any) -> AutoencoderKL:
    return AutoencoderKL(**vae_config(preset, **overrides))


def vae_from_config(config: dict[str, Any]) -> AutoencoderKL:
    # diffusers folders also carry bookkeeping keys (_class_name, _diffusers_version).
    accepted = inspect.signature(AutoencoderKL.__init__).parameters
    arguments = {key: value for key, value in config.items() if key in accepted and key != "self"}
    try:
        return AutoencoderKL(**arguments)
    except TypeError as error:
        raise InputError(f"VAE config has an argument AutoencoderKL does not take ({error})") from None


def check_mel_layout(mel: torch.Tensor) -> None:
    if mel.ndim != 4 or mel.shape[1] != 1:
        raise InputError(f"the VAE takes mel as (batch, 1, frames, mels); got shape {tuple(mel.shape)}")
    if mel.shape[2] % COMPRESSION or mel.shape[3] % COMPRESSION:
        raise InputError(f"mel frames and bins must be multiples of {COMPRESSION}; got {tuple(mel.shape[2:])}")


def encode(vae: AutoencoderKL, mel: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """mel (batch, 1, frames, 64) -> scaled latents (batch, 8, frames / 4, 16).

    ``sample=False`` takes the posterior mean (deterministic, what editing and evaluation
    want); ``sample=True`` draws from the posterior as AudioLDM's training does.
    """
    check_mel_layout(mel)
    posterior = vae.encode(mel).latent_dist
    latents = posterior.sample(generator) if sample else posterior.mode()
    return latents * vae.config.scaling_factor


def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """scaled latents (batch, 8, frames / 4, 16) -> mel (batch, 1, frames, 64)."""
    if latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise InputError(f"latents must be (batch, {vae.config.latent_channels}, time, freq); got {tuple(latents.shape)}")
    return vae.decode(latents / vae.config.scaling_factor).sample


def latent_scaling_factor(unscaled_latents: torch.Tensor) -> float:
    """1 / std of unscaled latents: the factor that gives the diffusion model unit-variance input."""
    return float(1.0 / unscaled_latents.float().std().clamp_min(1e-8))


def save_vae(vae: AutoencoderKL, folder: str | os.PathLike, card: str | None = None, dtype: torch.dtype | None = None) -> Path:
    config = {"_class_name": "AutoencoderKL", **{k: v for k, v in vae.config.items() if not k.startswith("_")}}
    return save_model_folder(folder, vae.state_dict(), config, card=card, dtype=dtype)


def load_state_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    """Load every key or none: names the missing and unexpected keys, and checks shapes."""
    expected = module.state_dict()
    check_keys(set(expected), set(state_dict), source)
    wrong = [f"{key} {tuple(value.shape)} != {tuple(expected[key].shape)}" for key, value in state_dict.items() if value.shape != expected[key].shape]
    if wrong:
        raise InputError(f"{source}: {len(wrong)} tensors have the wrong shape ({', '.join(wrong[:3])})")
    module.load_state_dict({key: value.to(expected[key].dtype) for key, value in state_dict.items()})
    return module


def load_vae(name: str | os.PathLike = "default") -> AutoencoderKL:
    """A VAE model folder (ours), or "default" for the shipped one."""
    folder = resolve_model_dir(name, "vae")
    vae = vae_from_config(load_config(folder))
    load_state_strict(vae, load_weights(folder), str(folder))
    return vae.eval()
