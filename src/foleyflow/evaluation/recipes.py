"""Training recipes of the in-world backbones (``foleyflow train tagger`` / ``train clap``);
their held-out figures are in ``foleyflow.evaluation.heldout``.

Both read a clip list: JSON Lines, one clip per line, either
    {"path": "dog/01.wav", "labels": ["dog", "rain"], "caption": "a dog barks in the rain", "split": "train"}
with paths relative to the list's folder, or a foleyflow corpus's ``clips.jsonl`` as it is
(``clip_id`` -> ``audio/<clip_id>.wav``, ``label``, ``captions``); splits are "train", "val"
and "test" (held out). Training crops ``seconds`` at random and places a shorter clip at a
random offset in silence (generated clips put their event anywhere); val/test crop the middle
and pad a shorter clip at its end. The CLAP trains on a caption drawn per access from the
clip's captions. Class names are the sorted labels of the whole list, so every split shares
one class order.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.data.manifest import numbered_jsonl
from foleyflow.errors import InputError
from foleyflow.evaluation.backbones.inworld import (
    INWORLD_CHANNELS,
    ClapModel,
    InworldTaggerBackbone,
    build_tagger,
    save_clap,
    save_tagger,
    sentence_embeddings,
)
from foleyflow.models.text import TextEncoder
from foleyflow.training.config import dataclass_from_dict, expand_path

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    labels: tuple[str, ...]
    captions: tuple[str, ...]
    split: str

    @property
    def caption(self) -> str:
        return self.captions[0] if self.captions else ""


def _clip_of(row: Mapping[str, Any], root: Path) -> Clip:
    if "clip_id" in row:  # a foleyflow corpus record
        return Clip(root / "audio" / f"{row['clip_id']}.wav", (str(row["label"]),), tuple(map(str, row["captions"])), str(row["split"]))
    captions = tuple(map(str, row["captions"])) if "captions" in row else (str(row.get("caption", "")),)
    return Clip(root / row["path"], tuple(row.get("labels", ())), captions, str(row["split"]))


def read_clip_list(path: str | os.PathLike) -> list[Clip]:
    path = Path(expand_path(str(path)))
    if not path.is_file():
        raise InputError(f"{path}: no such clip list")
    clips = []
    for number, row in numbered_jsonl(path):
        try:
            clip = _clip_of(row, path.parent)
        except (KeyError, TypeError) as error:
            raise InputError(f"{path}:{number}: expected a JSON object with path and split, or a corpus record ({error})") from None
        if clip.split not in SPLITS:
            raise InputError(f"{path}:{number}: split {clip.split!r} is not one of {', '.join(SPLITS)}")
        clips.append(clip)
    if not clips:
        raise InputError(f"{path}: the clip list is empty")
    return clips


def crop(audio: np.ndarray, length: int, random: bool) -> np.ndarray:
    """``length`` samples: a random (or the middle) window of a longer clip; a shorter clip
    padded with silence, at a random offset (or at the start)."""
    if audio.size <= length:
        before = int(torch.randint(0, length - audio.size + 1, ()).item()) if random else 0
        return np.pad(audio, (before, length - audio.size - before))
    start = int(torch.randint(0, audio.size - length + 1, ()).item()) if random else (audio.size - length) // 2
    return audio[start : start + length]


class ClipDataset(Dataset):
    """(audio crop, multi-hot labels, caption) per clip of one split."""

    def __init__(self, clips: list[Clip], class_names: list[str], seconds: float, random_crop: bool):
        self.clips, self.random_crop = clips, random_crop  # random crop and random caption (training)
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
        caption = clip.captions[int(torch.randint(0, len(clip.captions), ()).item())] if self.random_crop else clip.caption
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), target, caption


class TrunkEmbeddingDataset(Dataset):
    """(trunk embedding, multi-hot labels, caption) for a frozen audio trunk: ``crops`` crops
    per clip embedded once; training draws a caption per access as ``ClipDataset`` does."""

    @torch.no_grad()
    def __init__(self, clips: ClipDataset, trunk: torch.nn.Module, crops: int, batch_size: int = 32):
        self.clips, self.crops = clips, crops
        trunk.eval()
        embeddings, self.targets = [], []
        for start in range(0, len(clips) * crops, batch_size):  # crop c of clip i is item c * len(clips) + i
            audio, targets, _ = collate([clips[i % len(clips)] for i in range(start, min(start + batch_size, len(clips) * crops))])
            embeddings.append(trunk(audio)["embedding"])
            self.targets.extend(targets)
        self.embeddings = torch.cat(embeddings)

    def __len__(self) -> int:
        return len(self.embeddings)

    def __getitem__(self, item: int):
        clip = self.clips.clips[item % len(self.clips)]
        caption = clip.captions[int(torch.randint(0, len(clip.captions), ()).item())] if self.clips.random_crop else clip.caption
        return self.embeddings[item], self.targets[item], caption


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
    positives: str = "caption"  # CLAP only: also-matching pairs in a batch: "caption" (same text), "label" (same text or labels), "none"
    export_float16: bool = False  # half the file size of a shipped model; evaluation computes in float32
    # CLAP only: keep the audio trunk from init_audio_from fixed and train the projections on its
    # embeddings, computed once for ``frozen_crops`` random crops of every training clip (a CPU budget)
    freeze_audio: bool = False
    frozen_crops: int = 4

    def __post_init__(self) -> None:
        if self.positives not in ("caption", "label", "none"):
            raise ValueError(f"positives must be caption, label or none, got {self.positives!r}")
        if self.freeze_audio and not self.init_audio_from:
            raise ValueError("freeze_audio needs init_audio_from (a tagger folder): a frozen random trunk learns nothing")
        if self.frozen_crops < 1:
            raise ValueError(f"frozen_crops must be >= 1, got {self.frozen_crops}")


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

    @property
    def export_dtype(self) -> torch.dtype | None:
        return torch.float16 if self.options.export_float16 else None


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
        return save_tagger(folder, modules["tagger"], self.class_names, card, self.options.seconds, self.export_dtype)


class ClapRecipe(_ClipRecipe):
    """Contrastive audio-caption training; the MiniLM text tower stays frozen."""

    name = "clap"

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self._text_features: dict[str, torch.Tensor] = {}  # the text tower is frozen: embed each caption once

    def _tagger(self) -> torch.nn.Module:
        return InworldTaggerBackbone(expand_path(self.options.init_audio_from)).model

    def build(self) -> dict[str, torch.nn.Module]:
        clap = ClapModel(self.options.embed_dim, tuple(self.options.channels))
        if self.options.init_audio_from:
            trunk = self._tagger().state_dict()
            own = clap.audio_encoder.state_dict()
            clap.audio_encoder.load_state_dict({k: v for k, v in trunk.items() if k in own and own[k].shape == v.shape}, strict=False)
        if self.options.freeze_audio:
            clap.freeze_audio_encoder()
        return {"clap": clap, "text": TextEncoder("minilm")}

    def dataset(self, split: str) -> Dataset:
        clips = super().dataset(split)
        if not self.options.freeze_audio:
            return clips
        return TrunkEmbeddingDataset(clips, self._tagger(), self.options.frozen_crops if split == "train" else 1)

    def optimizer_groups(self) -> dict[str, list[str]]:
        return {"main": ["clap"]}

    @torch.no_grad()
    def text_features(self, encoder: TextEncoder, captions: list[str]) -> torch.Tensor:
        new = sorted(set(captions) - set(self._text_features))
        if new:
            self._text_features.update(zip(new, sentence_embeddings(encoder, new).cpu()))
        return torch.stack([self._text_features[caption] for caption in captions])

    def positives(self, targets: torch.Tensor, captions: list[str]) -> torch.Tensor | None:
        """Pairs that match besides the diagonal: same caption, or (``"label"``) same label set too."""
        if self.options.positives == "none":
            return None
        same = torch.tensor([[a == b for b in captions] for a in captions])
        if self.options.positives == "label":
            labelled = targets.sum(dim=1) > 0
            same |= (targets[:, None, :] == targets[None, :, :]).all(dim=-1) & labelled[:, None] & labelled[None, :]
        return same

    def _loss(self, modules, batch) -> torch.Tensor:
        audio, targets, captions = batch
        clap = modules["clap"]
        text = self.text_features(modules["text"], captions).to(audio.device)
        audio_embeddings = clap.project_audio(audio) if self.options.freeze_audio else clap.embed_audio(audio)  # audio: trunk embeddings when frozen
        return clap.contrastive_loss(audio_embeddings, clap.embed_text(text), self.positives(targets, captions))

    def losses(self, modules, batch, group, step):
        loss = self._loss(modules, batch)
        return loss, {"contrastive": loss.item()}

    def validate(self, modules, batch):
        return {"val_loss": float(self._loss(modules, batch))}

    def export(self, modules, folder: Path, card: str) -> Path:
        return save_clap(folder, modules["clap"], card, self.options.seconds, self.export_dtype)
