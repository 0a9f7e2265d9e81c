"""LAION-CLAP (HTSAT audio tower + RoBERTa text tower) from a local folder, for the CLAP score.

The architecture is transformers' ``ClapModel`` (the field's implementation of LAION's
HTSAT-based CLAP); we add only what the CLAP score convention needs (SPEC 6):
    48 kHz input, at most 10 s: longer audio is cropped deterministically to its first 10 s
    (LAION's "rand_trunc" would pick a random window), shorter audio is repeat-padded by the
    feature extractor; samples are quantised to int16 and back, as LAION-CLAP's own
    inference does; embeddings are L2-normalised by the metric.
Accepted: a transformers-format folder (config.json, weights, tokenizer files and
optionally preprocessor_config.json), e.g. a local copy of laion/clap-htsat-unfused or
-fused. Original LAION .pt checkpoints use other key names; convert them once with
transformers' own conversion script (models/clap/convert_clap_original_pytorch_to_hf.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from foleyflow.errors import InputError

SAMPLE_RATE = 48_000
MAX_SECONDS = 10.0
INT16_SCALE = 32767.0


def int16_round_trip(audio: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1], quantise to int16 and scale back (LAION-CLAP's input quantisation)."""
    quantised = (np.clip(audio, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    return (quantised / INT16_SCALE).astype(np.float32)


def deterministic_crop(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, seconds: float = MAX_SECONDS) -> np.ndarray:
    return audio[: int(sample_rate * seconds)]


def _folder_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class LaionClapBackbone:
    kind = "clap"
    sample_rate = SAMPLE_RATE

    def __init__(self, folder: str | os.PathLike):
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        folder = Path(folder).expanduser()
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder}: not a transformers CLAP folder (config.json missing); convert LAION .pt checkpoints first")
        try:
            self.model = ClapModel.from_pretrained(str(folder), local_files_only=True).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as error:
            raise InputError(f"{folder}: cannot load a CLAP model and tokenizer ({str(error).splitlines()[0][:200]})") from None
        fused = bool(self.model.config.audio_config.enable_fusion)
        options = {"truncation": "fusion" if fused else "rand_trunc", "padding": "repeatpad"}
        if (folder / "preprocessor_config.json").is_file():
            self.feature_extractor = ClapFeatureExtractor.from_pretrained(str(folder), **options)
        else:
            self.feature_extractor = ClapFeatureExtractor(**options)
        self.fingerprint = f"laion-clap-{_folder_fingerprint(folder)}"
        self.name = f"LAION-CLAP ({folder.name}{', fused' if fused else ''})"

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """``audio``: mono at 48 kHz. Cropped to 10 s first, so no random window is ever drawn."""
        audio = int16_round_trip(deterministic_crop(np.asarray(audio, dtype=np.float32)))
        inputs = self.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        embedding = self.model.get_audio_features(**{k: v for k, v in inputs.items() if k in ("input_features", "is_longer")})
        return {"audio_embedding": _tensor(embedding)[0].numpy()}

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        return _tensor(self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])).numpy()


def _tensor(output) -> torch.Tensor:
    """transformers returns either the projected tensor or an output object holding it."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "audio_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise InputError(f"unexpected CLAP output type {type(output).__name__}")
