"""What this installation is: versions, compute device, shipped models."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import torch

from foleyflow import __version__
from foleyflow.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, list_shipped_models

LIBRARIES = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "soundfile", "soxr", "numpy")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def compute_device() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def model_class(config: dict) -> str:
    """What a model folder holds: diffusers' ``_class_name``, transformers' ``model_type``, our
    in-world backbones' ``class``; an editor folder (no class key) by its objective, localiser and remover."""
    for key in ("_class_name", "model_type", "class"):
        if config.get(key):
            return str(config[key])
    if "objective" in config and "mask" in config:
        parts = [config["objective"]] + [_network(name, config[name]) for name in ("localiser", "remover") if config.get(name)]
        return f"Editor ({', '.join(parts)})"
    return "?"


def _network(name: str, spec: dict) -> str:
    """"remover", or "4 removers averaged" for an ensemble (``models.localiser.LocaliserEnsemble``)."""
    members = spec.get("members", 1)
    return name if members == 1 else f"{members} {name}s averaged"


def shipped_models() -> dict[str, dict]:
    """component -> {path, size_mb, parameters, config summary} for each shipped model."""
    models = {}
    for component, folder in list_shipped_models().items():
        config = json.loads((folder / CONFIG_NAME).read_text())
        models[component] = {
            "path": str(folder),
            "size_mb": round((folder / WEIGHTS_NAME).stat().st_size / 2**20, 2),
            "class": model_class(config),
        }
    return models


def system_info() -> dict:
    return {
        "foleyflow": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": compute_device(),
        "libraries": library_versions(),
        "shipped_models": shipped_models(),
    }
