"""Feature extractors behind the metrics, all with one interface.

A backbone maps mono 16 kHz audio to named features:
    "embedding"  (dim,)          one clip-level vector (FD)
    "logits"     (classes,)      class logits (KL, IS)
    "frames"     (examples, dim) frame-level vectors pooled over files (FAD)
    "audio_embedding"            CLAP audio vector; text goes through ``embed_text``
Each backbone has a ``fingerprint`` (weights hash + front-end settings) that keys the
feature cache. Public backbones load official checkpoints from local files only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from foleyflow.errors import InputError
from foleyflow.models.checkpoint import WEIGHTS_NAME, check_keys, load_legacy_state_dict

OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked",)  # BatchNorm counters; older checkpoints lack them


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Weights from a model folder, a .safetensors file, or a legacy .pth/.ckpt/.bin (read with
    torch.load(weights_only=True), the wrapper of the official releases unwrapped: "model" for
    PANNs, "state_dict" for Lightning)."""
    path = Path(path).expanduser()
    return load_legacy_state_dict(path / WEIGHTS_NAME if path.is_dir() else path, unwrap=("model", "state_dict"))


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every key, with shapes checked; BatchNorm counters may be absent."""
    expected = {k for k in module.state_dict() if not k.endswith(OPTIONAL_KEY_SUFFIXES)}
    found = {k for k in state_dict if not k.endswith(OPTIONAL_KEY_SUFFIXES)}
    check_keys(expected, found, source)
    own = module.state_dict()
    wrong = [f"{k} {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}" for k in sorted(expected) if state_dict[k].shape != own[k].shape]
    if wrong:
        raise InputError(f"{source}: {len(wrong)} tensors have the wrong shape ({'; '.join(wrong[:3])})")
    module.load_state_dict(dict(state_dict), strict=False)


def weights_fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A short hash of every tensor's name and bytes, so the cache notices a different checkpoint."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def as_batch(audio: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1))
