"""The model-folder format and the registry of shipped models.

Every model is a folder:
    config.json          every constructor argument, enough to rebuild the network
    model.safetensors    the weights (never a pickle)
    MODEL_CARD.md        what it was trained on, with which command, its measured figures
The name "default" resolves to the models shipped inside the package
(``foleyflow/pretrained/<component>``); any other name is a folder on disk.
Legacy checkpoints (.ckpt/.pth/.bin) are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError, preview

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "MODEL_CARD.md"
PRETRAINED_ROOT = Path(__file__).resolve().parent.parent / "pretrained"
LEGACY_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")

log = logging.getLogger(__name__)


def shipped_model_dir(component: str) -> Path:
    return PRETRAINED_ROOT / component


def list_shipped_models() -> dict[str, Path]:
    """component -> folder, for every shipped model that has weights."""
    if not PRETRAINED_ROOT.is_dir():
        return {}
    return {
        folder.name: folder
        for folder in sorted(PRETRAINED_ROOT.iterdir())
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()
    }


def resolve_model_dir(name: str | os.PathLike, component: str) -> Path:
    """"default" -> the shipped ``component``; anything else -> an existing model folder."""
    if str(name) == "default":
        folder = shipped_model_dir(component)
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"no default {component} model is shipped with this foleyflow; pass a model folder")
        return folder
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such model folder (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
    if not (folder / CONFIG_NAME).is_file():
        raise InputError(f"{folder}: not a model folder, {CONFIG_NAME} is missing")
    return folder


def save_model_folder(
    folder: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    card: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write config.json, model.safetensors and (if given) MODEL_CARD.md, each atomically.

    ``dtype`` (e.g. torch.float16) casts floating-point tensors for a smaller file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        key: (value.to(dtype) if dtype is not None and value.is_floating_point() else value).detach().contiguous().cpu()
        for key, value in state_dict.items()
    }
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
    if card is not None:
        with atomic_path(folder / CARD_NAME) as tmp:
            tmp.write_text(card)
    return folder


def load_config(folder: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(folder) / CONFIG_NAME)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file; a missing or malformed one is an InputError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None


def load_weights(folder: str | os.PathLike, dtype: torch.dtype | None = torch.float32) -> dict[str, torch.Tensor]:
    """The folder's safetensors weights; floating-point tensors cast to ``dtype``."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise InputError(f"{path}: missing")
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own types for corrupt headers
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    if dtype is None:
        return tensors
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in tensors.items()}


def load_legacy_state_dict(path: str | os.PathLike, unwrap: tuple[str, ...] = ("state_dict",)) -> dict[str, torch.Tensor]:
    """Read a .ckpt/.pth/.bin state dict without unpickling code (weights_only=True).

    Lightning checkpoints keep the weights under "state_dict"; the first level named in
    ``unwrap`` that is present is unwrapped (HiFi-GAN training files use "generator").
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own types for corrupt headers
            raise InputError(f"{path}: not a readable safetensors file ({_first_line(error)})") from None
    log.info("reading legacy checkpoint %s with torch.load(weights_only=True)", path)
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(f"{path}: cannot be read safely as a weights-only checkpoint ({_first_line(error)})") from None
    for wrapper in unwrap:
        if isinstance(payload, Mapping) and isinstance(payload.get(wrapper), Mapping):
            payload = payload[wrapper]
            break
    if not isinstance(payload, Mapping):
        raise InputError(f"{path}: expected a state dict, found {type(payload).__name__}")
    return {str(key): value for key, value in payload.items() if isinstance(value, torch.Tensor)}


def check_keys(expected: set[str], found: set[str], source: str) -> None:
    """Raise InputError naming missing and unexpected keys (never load a checkpoint halfway)."""
    missing = sorted(expected - found)
    unexpected = sorted(found - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({preview(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys ({preview(unexpected)})")
        raise InputError(f"{source}: " + "; ".join(parts))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
