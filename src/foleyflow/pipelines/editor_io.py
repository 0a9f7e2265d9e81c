"""The editor's model folder: config.json + model.safetensors + MODEL_CARD.md (+ codec/).

config.json is ``EditorConfig``: the UNet's full diffusers config, the text encoder's spec and
the codec's name. model.safetensors holds ``unet.*`` (every UNet weight) and ``text_encoder.*``
(only the LoRA adapters: the base text encoder is frozen and comes from its own files), and
``localiser.*`` when the editor has a localiser (config key ``localiser``: its LocaliserConfig),
``remover.*`` when it has a remover (config key ``remover``; with ``members`` N > 1 an ensemble,
weights ``remover.members.0.*`` ... ``remover.members.N-1.*``).
Components named by ``{"factory": "module:callable", ...arguments}`` are built by calling
that factory, so a user's own text encoder or codec plugs in without code changes.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from foleyflow.errors import FoleyflowError, InputError
from foleyflow.models.checkpoint import check_keys, load_config, load_weights, resolve_model_dir, save_model_folder

COMPONENT = "editor"
DEFAULT_TEXT_ENCODER = {"factory": "foleyflow.models.text:build_text_encoder", "config": {"source": "minilm"}}
LORA_MARKER = "lora_"


def build_component(spec: dict[str, Any] | str, what: str):
    """Call ``spec["factory"]`` ("module:callable") with the rest of ``spec`` as keyword arguments."""
    if isinstance(spec, str):
        spec = {"factory": "foleyflow.models.codec:Codec.from_pretrained", "name": spec}
    target = spec.get("factory", "")
    module_name, _, attribute = target.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise FoleyflowError(f"{what}: cannot import {target!r} ({error})") from None
    return factory(**{key: value for key, value in spec.items() if key != "factory"})


def lora_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value for key, value in module.state_dict().items() if LORA_MARKER in key}


def save_editor(editor, folder: str | os.PathLike, card: str | None = None) -> Path:
    folder = Path(folder)
    config = asdict(editor.config)
    config["unet"] = dict(editor.unet.config)
    if config["codec"] != "default" and hasattr(editor.codec, "save_pretrained"):
        editor.codec.save_pretrained(folder / "codec")
        config["codec"] = "codec"
    weights = {f"unet.{key}": value for key, value in editor.unet.state_dict().items()}
    if isinstance(editor.text_encoder, torch.nn.Module):
        weights.update({f"text_encoder.{key}": value for key, value in lora_state_dict(editor.text_encoder).items()})
    for role in ("localiser", "remover"):  # the two EditLocaliser networks, each under its own prefix
        network = getattr(editor, role)
        if network is not None:
            config[role] = network.to_spec()
            weights.update({f"{role}.{key}": value for key, value in network.state_dict().items()})
    return save_model_folder(folder, weights, config, card)


def load_editor(name: str | os.PathLike = "default"):
    from diffusers import UNet2DConditionModel

    from foleyflow.pipelines.editor import Editor, EditorConfig

    folder = resolve_model_dir(name, COMPONENT)
    config = EditorConfig.from_dict(load_config(folder))
    weights = load_weights(folder)
    unet = UNet2DConditionModel.from_config(config.unet)
    unet_weights = _with_prefix(weights, "unet.")
    check_keys(set(unet.state_dict()), set(unet_weights), f"{folder} (unet)")
    unet.load_state_dict(unet_weights)
    text_encoder = build_component(config.text_encoder or DEFAULT_TEXT_ENCODER, "text encoder")
    _load_lora(text_encoder, _with_prefix(weights, "text_encoder."), folder)
    codec = build_component(_codec_spec(config.codec, folder), "codec")
    return Editor(unet, text_encoder, codec, config, _load_localiser(config.localiser, _with_prefix(weights, "localiser."), folder),
                  remover=_load_localiser(config.remover, _with_prefix(weights, "remover."), folder, "remover"))


def ensemble_removers(names: Sequence[str | os.PathLike]):
    """The first editor of ``names`` with the removers of all of them averaged
    (``models.localiser.LocaliserEnsemble``; an editor whose remover is already an ensemble gives
    each of its members). A remover reads its editor's instruction token states and codec latents,
    so every editor must have the first one's instruction encoder (LoRA weights included) and
    latent encoder."""
    from foleyflow.models.localiser import LocaliserEnsemble, ensemble_members
    from foleyflow.pipelines.editor import Editor
    from foleyflow.training.cache import hash_latent_encoder

    if len(names) < 2:
        raise InputError("an ensemble of removers needs at least two editors")
    editors = [load_editor(name) for name in names]
    base = editors[0]
    # The feature cache's own hashes: the whole instruction encoder, and the codec's encoder half
    # (a remover never reads what the decoder or vocoder do).
    base_text, base_latents = _text_encoder_hash(base), hash_latent_encoder(base.codec)
    for name, editor in zip(names, editors):
        if editor.remover is None:
            raise InputError(f"{name}: this editor has no remover (foleyflow train localise, target removal-gains)")
        if editor.config.text_encoder != base.config.text_encoder or _text_encoder_hash(editor) != base_text:
            raise InputError(f"{name}: its instruction encoder differs from {names[0]}'s; its remover reads other token states")
        if hash_latent_encoder(editor.codec) != base_latents:
            raise InputError(f"{name}: its codec encodes other latents than {names[0]}'s; its remover reads other latents")
    remover = LocaliserEnsemble([member for editor in editors for member in ensemble_members(editor.remover)])
    config = replace(base.config, remover=remover.to_spec())
    return Editor(base.unet, base.text_encoder, base.codec, config, base.localiser, remover=remover)


def _text_encoder_hash(editor) -> str | None:
    """The feature cache's hash of an editor's instruction encoder; None for a non-module encoder (a
    user's plug-in), which its spec in the config names alone."""
    from foleyflow.training.cache import hash_module

    return hash_module(editor.text_encoder) if isinstance(editor.text_encoder, torch.nn.Module) else None


def _load_localiser(spec: dict | None, weights: dict[str, torch.Tensor], folder: Path, role: str = "localiser"):
    """The localiser (or the removal gains' network, ``role`` "remover") of an editor folder."""
    from foleyflow.models.localiser import build_localiser

    if spec is None:
        check_keys(set(), set(weights), f"{folder} ({role})")
        return None
    localiser = build_localiser(spec)
    check_keys(set(localiser.state_dict()), set(weights), f"{folder} ({role})")
    localiser.load_state_dict({key: value.float() for key, value in weights.items()})
    return localiser


def _codec_spec(codec: str | dict, folder: Path):
    if isinstance(codec, str) and codec != "default" and not Path(codec).is_absolute():
        return str(folder / codec)
    return codec


def _load_lora(text_encoder, weights: dict[str, torch.Tensor], folder: Path) -> None:
    expected = set(lora_state_dict(text_encoder)) if isinstance(text_encoder, torch.nn.Module) else set()
    check_keys(expected, set(weights), f"{folder} (text-encoder LoRA)")
    if weights:
        text_encoder.load_state_dict(weights, strict=False)


def _with_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in weights.items() if key.startswith(prefix)}


