"""Loading the public AudioLDM / Tango VAE and HiFi-GAN from local files.

Formats (all read without unpickling code):
    AudioLDM .ckpt     Lightning checkpoint; the VAE under ``first_stage_model.*`` with LDM
                       names (encoder.down.0.block.0.conv1, encoder.mid.attn_1.q, ...), its
                       HiFi-GAN under ``first_stage_model.vocoder.*`` (conv_pre, ups.N, ...).
    diffusers folder   ``vae/`` (AutoencoderKL: config.json + diffusion_pytorch_model.*) and
                       ``vocoder/`` (SpeechT5HifiGan: config.json + model.safetensors or
                       pytorch_model.bin), as in the diffusers AudioLDM pipelines.
    Tango folder       ``vae_config.json`` (LDM ddconfig) + ``pytorch_model_vae.bin`` (LDM
                       names; Tango's VAE carries its HiFi-GAN as ``vocoder.*``), optionally a
                       separate ``vocoder_config.json`` + ``pytorch_model_vocoder.bin``.
The name maps are written from the LDM and diffusers module layouts; keys that are neither
mapped nor expected raise InputError naming them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from diffusers import AutoencoderKL
from transformers import SpeechT5HifiGan

from foleyflow.errors import InputError
from foleyflow.models.checkpoint import load_legacy_state_dict, read_json
from foleyflow.models.vae import AUDIOLDM_SCALING_FACTOR, load_state_strict, vae_config, vae_from_config
from foleyflow.models.vocoder import vocoder_config, vocoder_from_config

LDM_VAE_PREFIX = "first_stage_model."
VOCODER_SUBKEY = "vocoder."
# The VAE's training loss (LPIPS + patch discriminator) is saved with it by LDM; it is not
# part of the autoencoder, so it is dropped rather than reported as unknown.
TRAINING_ONLY_PREFIXES = ("loss.",)

# ----------------------------------------------------------------------------- VAE names

_LDM_RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_LDM_ATTENTION_PARTS = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_DEPRECATED_DIFFUSERS_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def ldm_vae_key_to_diffusers(key: str, levels: int) -> str:
    """One LDM VAE key -> the diffusers AutoencoderKL key (``levels`` = len(ch_mult))."""
    simple = {"encoder.norm_out": "encoder.conv_norm_out", "decoder.norm_out": "decoder.conv_norm_out"}
    for old, new in simple.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    if match := re.fullmatch(r"(encoder|decoder)\.mid\.block_([12])\.(\w+)\.(\w+)", key):
        side, index, part, leaf = match.groups()
        return f"{side}.mid_block.resnets.{int(index) - 1}.{_LDM_RESNET_PARTS.get(part, part)}.{leaf}"
    if match := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(\w+)", key):
        side, part, leaf = match.groups()
        return f"{side}.mid_block.attentions.0.{_LDM_ATTENTION_PARTS.get(part, part)}.{leaf}"
    if match := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
        level, block, part, leaf = match.groups()
        return f"encoder.down_blocks.{level}.resnets.{block}.{_LDM_RESNET_PARTS.get(part, part)}.{leaf}"
    if match := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(\w+)", key):
        level, leaf = match.groups()
        return f"encoder.down_blocks.{level}.downsamplers.0.conv.{leaf}"
    # LDM numbers decoder levels from the lowest resolution up; diffusers in running order.
    if match := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
        level, block, part, leaf = match.groups()
        return f"decoder.up_blocks.{levels - 1 - int(level)}.resnets.{block}.{_LDM_RESNET_PARTS.get(part, part)}.{leaf}"
    if match := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(\w+)", key):
        level, leaf = match.groups()
        return f"decoder.up_blocks.{levels - 1 - int(level)}.upsamplers.0.conv.{leaf}"
    return key  # conv_in, conv_out, quant_conv, post_quant_conv keep their names


def ldm_vae_to_diffusers(state_dict: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    converted = {}
    for key, value in state_dict.items():
        new_key = ldm_vae_key_to_diffusers(key, levels)
        if ".attentions.0.to_" in new_key and new_key.endswith(".weight") and value.ndim == 4:
            value = value[:, :, 0, 0]  # LDM's 1x1 convolutions are diffusers' linear layers
        converted[new_key] = value
    return converted


def upgrade_deprecated_attention_names(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older diffusers folders name the VAE attention query/key/value/proj_attn."""
    upgraded = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if ".attentions." in key and len(parts) >= 2 and parts[-2] in _DEPRECATED_DIFFUSERS_ATTENTION:
            key = ".".join(parts[:-2] + [_DEPRECATED_DIFFUSERS_ATTENTION[parts[-2]], parts[-1]])
            if value.ndim == 4:
                value = value[:, :, 0, 0]
        upgraded[key] = value
    return upgraded


def vae_config_from_ldm(ddconfig: Mapping[str, Any], embed_dim: int, scaling_factor: float) -> dict[str, Any]:
    """LDM ``ddconfig`` -> AutoencoderKL arguments."""
    if ddconfig.get("attn_resolutions"):
        raise InputError(f"LDM VAE with attention at resolutions {ddconfig['attn_resolutions']} is not the AudioLDM layout")
    channel = ddconfig.get("ch", 128)
    return vae_config(
        "paper",
        block_out_channels=[channel * mult for mult in ddconfig.get("ch_mult", [1, 2, 4])],
        layers_per_block=ddconfig.get("num_res_blocks", 2),
        latent_channels=embed_dim,
        in_channels=ddconfig.get("in_channels", 1),
        out_channels=ddconfig.get("out_ch", 1),
        scaling_factor=scaling_factor,
    )


def _vae_from_ldm_state(state: Mapping[str, torch.Tensor], config: dict[str, Any], source: str) -> AutoencoderKL:
    levels = len(config["block_out_channels"])
    kept = {key: value for key, value in state.items() if not key.startswith(TRAINING_ONLY_PREFIXES)}
    vae = vae_from_config(config)
    return load_state_strict(vae, ldm_vae_to_diffusers(kept, levels), source).eval()


# ----------------------------------------------------------------------------- HiFi-GAN names


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weight = g * v / ||v|| for checkpoints saved before ``remove_weight_norm``.

    Handles both the old (weight_g / weight_v) and the parametrization
    (parametrizations.weight.original0 / original1) spellings; the norm is over every
    dimension except the first, as torch's weight_norm(dim=0) computes it.
    """
    spellings = [(".weight_g", ".weight_v"), (".parametrizations.weight.original0", ".parametrizations.weight.original1")]
    folded = dict(state_dict)
    for g_suffix, v_suffix in spellings:
        for key in [k for k in folded if k.endswith(g_suffix)]:
            base = key[: -len(g_suffix)]
            g, v = folded.pop(key), folded.pop(base + v_suffix)
            folded[base + ".weight"] = torch._weight_norm(v, g, 0)
    return folded


def hifigan_to_speecht5(state_dict: Mapping[str, torch.Tensor], config: SpeechT5HifiGan | Any) -> dict[str, torch.Tensor]:
    """Original HiFi-GAN names (ups.N) -> SpeechT5HifiGan names (upsampler.N), plus the
    mean/scale buffers, which the original has no counterpart for (identity values)."""
    converted = {}
    for key, value in fold_weight_norm(state_dict).items():
        converted[re.sub(r"^ups\.", "upsampler.", key)] = value
    if "mean" not in converted:
        converted["mean"] = torch.zeros(config.model_in_dim)
        converted["scale"] = torch.ones(config.model_in_dim)
    return converted


def vocoder_config_from_hifigan(hifigan: Mapping[str, Any]) -> dict[str, Any]:
    """A HiFi-GAN json (upsample_rates, ..., num_mels) -> SpeechT5HifiGan arguments."""
    if str(hifigan.get("resblock", "1")) != "1":
        raise InputError("only HiFi-GAN resblock type 1 is supported (the AudioLDM vocoder uses it)")
    return vocoder_config(
        "paper",
        model_in_dim=hifigan.get("num_mels", 64),
        sampling_rate=hifigan.get("sampling_rate", 16000),
        upsample_initial_channel=hifigan["upsample_initial_channel"],
        upsample_rates=list(hifigan["upsample_rates"]),
        upsample_kernel_sizes=list(hifigan["upsample_kernel_sizes"]),
        resblock_kernel_sizes=list(hifigan["resblock_kernel_sizes"]),
        resblock_dilation_sizes=[list(d) for d in hifigan["resblock_dilation_sizes"]],
    )


def _vocoder_from_hifigan_state(state: Mapping[str, torch.Tensor], config: dict[str, Any], source: str) -> SpeechT5HifiGan:
    vocoder = vocoder_from_config(config)
    return load_state_strict(vocoder, hifigan_to_speecht5(state, vocoder.config), source).eval()


def _split_vocoder(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    vae = {k: v for k, v in state.items() if not k.startswith(VOCODER_SUBKEY)}
    vocoder = {k[len(VOCODER_SUBKEY):]: v for k, v in state.items() if k.startswith(VOCODER_SUBKEY)}
    return vae, vocoder


# ----------------------------------------------------------------------------- formats


def load_audioldm_ckpt(path: str | os.PathLike) -> tuple[AutoencoderKL, SpeechT5HifiGan | None]:
    """AudioLDM's original .ckpt -> (VAE, vocoder or None when the file has none)."""
    state = load_legacy_state_dict(path)
    first_stage = {k[len(LDM_VAE_PREFIX):]: v for k, v in state.items() if k.startswith(LDM_VAE_PREFIX)}
    if not first_stage:
        raise InputError(f"{path}: no {LDM_VAE_PREFIX}* keys; not an AudioLDM checkpoint")
    vae_state, vocoder_state = _split_vocoder(first_stage)
    # LatentDiffusion keeps the latent scale as a top-level buffer when it was computed from data.
    scale = float(state["scale_factor"]) if "scale_factor" in state else AUDIOLDM_SCALING_FACTOR
    vae = _vae_from_ldm_state(vae_state, vae_config("paper", scaling_factor=scale), f"{path} ({LDM_VAE_PREFIX}*)")
    vocoder = _vocoder_from_hifigan_state(vocoder_state, vocoder_config("paper"), f"{path} ({LDM_VAE_PREFIX}{VOCODER_SUBKEY}*)") if vocoder_state else None
    return vae, vocoder


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: no weights file (looked for {', '.join(names)})")


def load_diffusers_vae(folder: str | os.PathLike) -> AutoencoderKL:
    """A diffusers ``vae/`` folder (config.json + diffusion_pytorch_model.safetensors|.bin)."""
    folder = Path(folder)
    config = read_json(folder / "config.json")
    weights = _first_existing(folder, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    vae = vae_from_config(config)
    state = upgrade_deprecated_attention_names(load_legacy_state_dict(weights))
    return load_state_strict(vae, state, str(weights)).eval()


def load_diffusers_vocoder(folder: str | os.PathLike) -> SpeechT5HifiGan:
    """A diffusers pipeline's ``vocoder/`` folder (transformers SpeechT5HifiGan)."""
    folder = Path(folder)
    config = read_json(folder / "config.json")
    weights = _first_existing(folder, ("model.safetensors", "pytorch_model.bin"))
    vocoder = vocoder_from_config(config)
    return load_state_strict(vocoder, load_legacy_state_dict(weights), str(weights)).eval()


def load_tango_folder(folder: str | os.PathLike) -> tuple[AutoencoderKL, SpeechT5HifiGan | None]:
    """Tango's released layout -> (VAE, vocoder or None)."""
    folder = Path(folder)
    tango = read_json(folder / "vae_config.json")
    if "ddconfig" not in tango:
        raise InputError(f"{folder / 'vae_config.json'}: no ddconfig; not a Tango VAE config")
    scale = float(tango.get("scale_factor", AUDIOLDM_SCALING_FACTOR))
    config = vae_config_from_ldm(tango["ddconfig"], tango.get("embed_dim", 8), scale)
    weights = folder / "pytorch_model_vae.bin"
    vae_state, vocoder_state = _split_vocoder(load_legacy_state_dict(weights))
    vae = _vae_from_ldm_state(vae_state, config, str(weights))
    if (folder / "pytorch_model_vocoder.bin").is_file():
        hifigan = read_json(folder / "vocoder_config.json") if (folder / "vocoder_config.json").is_file() else None
        vocoder_state = load_legacy_state_dict(folder / "pytorch_model_vocoder.bin", unwrap=("generator", "state_dict"))
        voc_config = vocoder_config_from_hifigan(hifigan) if hifigan else vocoder_config("paper")
        return vae, _vocoder_from_hifigan_state(vocoder_state, voc_config, str(folder / "pytorch_model_vocoder.bin"))
    if vocoder_state:
        return vae, _vocoder_from_hifigan_state(vocoder_state, vocoder_config("paper"), f"{weights} ({VOCODER_SUBKEY}*)")
    return vae, None


def detect_format(path: str | os.PathLike) -> str:
    """"audioldm-ckpt", "diffusers", "tango" or "foleyflow" for a file or folder on disk."""
    path = Path(path)
    if path.is_file() and path.suffix in (".ckpt", ".pth", ".pt", ".safetensors"):
        return "audioldm-ckpt"
    if (path / "vae_config.json").is_file():
        return "tango"
    if (path / "vae" / "diffusion_pytorch_model.safetensors").is_file() or (path / "vae" / "diffusion_pytorch_model.bin").is_file():
        return "diffusers"
    if (path / "vae" / "config.json").is_file():
        return "foleyflow"
    raise InputError(f"{path}: not a known codec checkpoint (AudioLDM .ckpt, diffusers folder, Tango folder, foleyflow codec folder)")
