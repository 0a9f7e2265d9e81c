"""Training recipes of the in-world backbones (``foleyflow train tagger`` / ``train clap``)
and their held-out figures (tagger mAP, CLAP text-to-audio recall@K).

Both read a clip list: JSON Lines, one clip per line,
    {"path": "dog/01.wav", "labels": ["dog", "rain"], "caption": "a dog barks in the rain", "split": "train"}
with paths relative to the list's folder and splits "train", "val" and "test" (held out).
Training crops ``seconds`` at random (train) or from the middle (val/test); shorter clips
are zero-padded. Class names are the sorted labels of the whole list, so every split
shares one class order.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.errors import InputError
from foleyflow.evaluation.backbones import as_batch
from foleyflow.evaluation.backbones.inworld import (
    INWORLD_CHANNELS,
    ClapModel,
    InworldClapBackbone,
    InworldTaggerBackbone,
    build_tagger,
    save_clap,
    save_tagger,
    sentence_embeddings,
)
from foleyflow.models.text import TextEncoder
from foleyflow.training.config import dataclass_from_dict

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    labels: tuple[str, ...]
    caption: str
    split: str


def read_clip_list(path: str | os.PathLike) -> list[Clip]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such clip list")
    clips = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            clip = Clip(path.parent / row["path"], tuple(row.get("labels", ())), str(row.get("caption", "")), str(row["split"]))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{path}:{number}: expected a JSON object with path and split ({error})") from None
        if clip.split not in SPLITS:
            raise InputError(f"{path}:{number}: split {clip.split!r} is not one of {', '.join(SPLITS)}")
        clips.append(clip)
    if not clips:
        raise InputError(f"{path}: the clip list is empty")
    return clips


def crop(audio: np.ndarray, length: int, random: bool) -> np.ndarray:
    if audio.size <= length:
        return np.pad(audio, (0, length - audio.size))
    start = int(torch.randint(0, audio.size - length + 1, ()).item()) if random else (audio.size - length) // 2
    return audio[start : start + length]


class ClipDataset(Dataset):
    """(audio crop, multi-hot labels, caption) per clip of one split."""

    def __init__(self, clips: list[Clip], class_names: list[str], seconds: float, random_crop: bool):
        self.clips, self.random_crop = clips, random_crop
        self.index = {name: i for i, name in enumerate(class_names)}
        self.length = int(seconds * SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: int):
        clip = self.clips[item]
        audio = crop(load_audio(clip.path), self.length, self.random_crop)
        target = torch.zeros(len(self.index))
        for label in clip.labels:
            target[self.index[label]] = 1.0
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), target, clip.caption


def collate(items: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    audio, targets, captions = zip(*items)
    return torch.stack(audio), torch.stack(targets), list(captions)


@dataclasses.dataclass
class BackboneOptions:
    clips: str = ""
    seconds: float = 4.0
    channels: tuple[int, ...] = INWORLD_CHANNELS
    embed_dim: int = 128  # CLAP only
    init_audio_from: str = ""  # CLAP only: a tagger folder whose trunk starts the audio encoder


class _ClipRecipe:
    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = dataclass_from_dict(BackboneOptions, options or {}, "recipe_options")
        if not self.options.clips:
            raise InputError("recipe_options.clips: the clip list (JSON Lines) is required")
        self.clips = read_clip_list(self.options.clips)
        self.class_names = sorted({label for clip in self.clips for label in clip.labels})

    def dataset(self, split: str) -> Dataset:
        chosen = [clip for clip in self.clips if clip.split == split]
        return ClipDataset(chosen, self.class_names, self.options.seconds, random_crop=split == "train")

    def collate(self, items: list[Any]) -> Any:
        return collate(items)


class TaggerRecipe(_ClipRecipe):
    """Multi-label tagger: binary cross-entropy on the corpus classes."""

    name = "tagger"

    def build(self) -> dict[str, torch.nn.Module]:
        if not self.class_names:
            raise InputError(f"{self.options.clips}: no clip has labels; a tagger needs classes")
        return {"tagger": build_tagger(self.class_names, tuple(self.options.channels))}

    def optimizer_groups(self) -> dict[str, list[str]]:
        return {"main": ["tagger"]}

    def losses(self, modules, batch, group, step):
        audio, targets, _ = batch
        loss = F.binary_cross_entropy_with_logits(modules["tagger"](audio)["logits"], targets)
        return loss, {"bce": loss.item()}

    def validate(self, modules, batch):
        audio, targets, _ = batch
        return {"val_loss": float(F.binary_cross_entropy_with_logits(modules["tagger"](audio)["logits"], targets))}

    def export(self, modules, folder: Path, card: str) -> Path:
        return save_tagger(folder, modules["tagger"], self.class_names, card)


class ClapRecipe(_ClipRecipe):
    """Contrastive audio-caption training; the MiniLM text tower stays frozen."""

    name = "clap"

    def build(self) -> dict[str, torch.nn.Module]:
        clap = ClapModel(self.options.embed_dim, tuple(self.options.channels))
        if self.options.init_audio_from:
            trunk = InworldTaggerBackbone(self.options.init_audio_from).model.state_dict()
            own = clap.audio_encoder.state_dict()
            clap.audio_encoder.load_state_dict({k: v for k, v in trunk.items() if k in own and own[k].shape == v.shape}, strict=False)
        return {"clap": clap, "text": TextEncoder("minilm")}

    def optimizer_groups(self) -> dict[str, list[str]]:
        return {"main": ["clap"]}

    def _loss(self, modules, batch) -> torch.Tensor:
        audio, _, captions = batch
        with torch.no_grad():
            text_features = sentence_embeddings(modules["text"], captions)
        clap = modules["clap"]
        return clap.contrastive_loss(clap.embed_audio(audio), clap.embed_text(text_features))

    def losses(self, modules, batch, group, step):
        loss = self._loss(modules, batch)
        return loss, {"contrastive": loss.item()}

    def validate(self, modules, batch):
        return {"val_loss": float(self._loss(modules, batch))}

    def export(self, modules, folder: Path, card: str) -> Path:
        return save_clap(folder, modules["clap"], card)


# --- held-out figures ---------------------------------------------------------------------


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """AP of one class: mean precision at the rank of each positive (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the classes that have at least one positive."""
    values = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
    values = [v for v in values if np.isfinite(v)]
    if not values:
        raise InputError("mAP needs at least one labelled clip")
    return float(np.mean(values))


def recall_at_k(similarity: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Text-to-audio retrieval: row i (caption i) should rank column i (its clip) in the top k."""
    correct = similarity[np.arange(len(similarity)), np.arange(len(similarity))]
    rank = (similarity > correct[:, None]).sum(axis=1)  # 0 = first
    return {k: float((rank < k).mean()) for k in ks}


def _split_clips(clip_list: str | os.PathLike, split: str) -> list[Clip]:
    clips = [clip for clip in read_clip_list(clip_list) if clip.split == split]
    if not clips:
        raise InputError(f"{clip_list}: no clips in split {split!r}")
    return clips


@torch.no_grad()
def tagger_map(folder: str | os.PathLike, clip_list: str | os.PathLike, split: str = "test", seconds: float = 10.0) -> tuple[float, int]:
    """Held-out mAP of a tagger on a split (middle crop of ``seconds``); returns (mAP, clips)."""
    backbone = InworldTaggerBackbone(folder)
    clips = _split_clips(clip_list, split)
    index = {name: i for i, name in enumerate(backbone.class_names)}
    scores, targets = [], []
    for clip in clips:
        audio = crop(load_audio(clip.path), int(seconds * SAMPLE_RATE), random=False)
        scores.append(backbone.model(as_batch(audio))["logits"][0].numpy())
        target = np.zeros(len(index))
        target[[index[label] for label in clip.labels if label in index]] = 1
        targets.append(target)
    return mean_average_precision(np.stack(scores), np.stack(targets)), len(clips)


@torch.no_grad()
def clap_recall(folder: str | os.PathLike, clip_list: str | os.PathLike, split: str = "test", seconds: float = 10.0) -> tuple[dict[int, float], int]:
    """Held-out text-to-audio recall@1/@5 of a CLAP on a split; returns (recalls, clips)."""
    backbone = InworldClapBackbone(folder)
    clips = _split_clips(clip_list, split)
    audio = np.stack([backbone.features(crop(load_audio(c.path), int(seconds * SAMPLE_RATE), random=False))["audio_embedding"] for c in clips])
    text = backbone.embed_text([clip.caption for clip in clips])
    return recall_at_k(text @ audio.T), len(clips)
