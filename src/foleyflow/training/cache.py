"""A content-addressed cache of encoder outputs (VAE latents, text-encoder states) for training.

Frozen encoders give the same output for the same input every epoch, so the recipes encode each
clip and caption once and train from the cache. An entry is found by two hashes:

    encoder hash  SHA-256 of the encoder's class, config and every weight, plus the settings
                  of the preprocessing that feeds it (sample rate, clip length, mel, ...); for a
                  codec's latents, of its encoder half only (``hash_latent_encoder``)
    content hash  SHA-256 of the input: an audio file's bytes, a caption's UTF-8 text, or the
                  content hashes of the clips a mixture is made of

so a changed model, changed preprocessing or changed audio file gives a new key, and a stale
entry can never be read. Entries are safetensors files written atomically under
``$FOLEYFLOW_HOME/cache/features/<kind>/<encoder hash>/<content hash[:2]>/<content hash>.safetensors``;
an unreadable entry is recomputed. Nothing is ever deleted automatically; the folder per encoder
hash makes old entries easy to remove by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError
from foleyflow.training.config import foleyflow_home

log = logging.getLogger(__name__)

Features = dict[str, torch.Tensor]
_CHUNK = 1 << 20


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_text(text: str) -> str:
    return hash_bytes(text.encode("utf-8"))


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the audio content hash)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    return digest.hexdigest()


def hash_parts(*parts: str) -> str:
    """One hash for an ordered list of hashes or words (e.g. the two clips of a mixture)."""
    return hash_bytes("\x00".join(parts).encode("utf-8"))


def hash_module(module: torch.nn.Module, settings: Mapping[str, Any] | None = None) -> str:
    """SHA-256 of a module's class, its config (when it has one), every tensor of its state
    dict (name, dtype, shape and bytes) and the given preprocessing ``settings``."""
    digest = hashlib.sha256()
    digest.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    config = getattr(module, "config", None)
    if config is not None:
        digest.update(_stable_json(dict(config) if isinstance(config, Mapping) else getattr(config, "to_dict", lambda: str(config))()).encode())
    digest.update(_stable_json(dict(settings or {})).encode())
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def hash_latent_encoder(codec: torch.nn.Module, settings: Mapping[str, Any] | None = None) -> str:
    """The encoder hash of a codec's latents: its mel front-end settings, the VAE's config and the
    tensors of the VAE's encoder half (``encoder``, ``quant_conv``), plus ``settings``.

    The decoder and the vocoder are left out on purpose: they never touch a latent, and hashing
    them made fine-tuning the decoder (session 12) re-encode the whole editing set for nothing.
    A codec without a VAE (a test's stand-in) is hashed whole."""
    vae = getattr(codec, "vae", None)
    if vae is None or not hasattr(codec, "mel_config"):
        return hash_module(codec, settings)
    halves = torch.nn.ModuleDict({name: getattr(vae, name) for name in ("encoder", "quant_conv") if getattr(vae, name, None) is not None})
    return hash_module(halves, {**dict(settings or {}), "vae": dict(vae.config), "mel": dataclasses.asdict(codec.mel_config)})


class FeatureCache:
    """Tensors by (kind, encoder hash, content hash); see the module docstring."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else foleyflow_home() / "cache" / "features"

    def path(self, kind: str, encoder_hash: str, content_hash: str) -> Path:
        return self.root / kind / encoder_hash / content_hash[:2] / f"{content_hash}.safetensors"

    def get(self, kind: str, encoder_hash: str, content_hash: str) -> Features | None:
        path = self.path(kind, encoder_hash, content_hash)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            log.warning("cache entry %s is unreadable (%s); recomputing it", path, error)
            return None

    def has(self, kind: str, encoder_hash: str, content_hash: str) -> bool:
        """Whether a readable entry exists (checks the safetensors header, not the data)."""
        path = self.path(kind, encoder_hash, content_hash)
        if not path.is_file():
            return False
        try:
            with safe_open(str(path), framework="pt") as handle:
                return handle.metadata().get("content") == content_hash
        except (SafetensorError, OSError, AttributeError):
            return False

    def put(self, kind: str, encoder_hash: str, content_hash: str, features: Mapping[str, torch.Tensor]) -> None:
        payload = {key: value.detach().cpu().contiguous() for key, value in features.items()}
        with atomic_path(self.path(kind, encoder_hash, content_hash)) as tmp:
            save_file(payload, str(tmp), metadata={"kind": kind, "encoder": encoder_hash, "content": content_hash})

    def fill(
        self,
        kind: str,
        encoder_hash: str,
        items: Sequence[tuple[str, Any]],
        encode_batch: Callable[[list[Any]], list[Features]],
        batch_size: int = 8,
        progress: bool = False,
    ) -> int:
        """Encode every ``(content_hash, input)`` not yet cached, ``batch_size`` at a time.

        ``encode_batch`` maps a list of inputs to one feature dict per input. Returns how many
        entries were computed (0 when everything was cached already).
        """
        missing = _unique([(key, value) for key, value in items if not self.has(kind, encoder_hash, key)])
        chunks = range(0, len(missing), batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"caching {kind}", unit="batch")
        for start in chunks:
            batch = missing[start : start + batch_size]
            with torch.no_grad():
                outputs = encode_batch([value for _, value in batch])
            if len(outputs) != len(batch):
                raise ValueError(f"encode_batch returned {len(outputs)} results for {len(batch)} inputs")
            for (key, _), features in zip(batch, outputs):
                self.put(kind, encoder_hash, key, features)
        return len(missing)

    def load(self, kind: str, encoder_hash: str, content_hash: str) -> Features:
        features = self.get(kind, encoder_hash, content_hash)
        if features is None:
            raise InputError(f"no cached {kind} for {content_hash[:12]} (encoder {encoder_hash[:12]}); fill the cache first")
        return features


class CachedFeatures(Dataset):
    """Training items read from the cache.

    ``items[i]`` maps a field name to ``(kind, content hash)``; ``encoders`` maps each kind to
    its encoder hash. Item ``i`` is ``{field: cached feature dict, ...}`` plus ``extras[i]``
    (e.g. the caption text), so a recipe's dataset never runs an encoder.
    """

    def __init__(self, cache: FeatureCache, encoders: Mapping[str, str], items: Sequence[Mapping[str, tuple[str, str]]], extras: Sequence[Mapping[str, Any]] | None = None):
        self.cache, self.encoders, self.items = cache, dict(encoders), list(items)
        self.extras = list(extras) if extras is not None else [{} for _ in self.items]
        if len(self.extras) != len(self.items):
            raise ValueError("extras must have one entry per item")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = dict(self.extras[index])
        for field, (kind, content_hash) in self.items[index].items():
            item[field] = self.cache.load(kind, self.encoders[kind], content_hash)
        return item


def _unique(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        seen.setdefault(key, value)
    return list(seen.items())


def _stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
