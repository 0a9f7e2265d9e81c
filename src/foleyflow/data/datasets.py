"""PyTorch datasets over the corpus and the editing set.

``ClipDataset``: corpus clips of one split (text-to-audio, tagger and CLAP training).
``TripletDataset``: editing triplets of one split, rendered on the fly from their recipes
(the set never needs one file per triplet); items carry the ground-truth edit region.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from foleyflow.data.builder import BUILD_FILE, SCENES_FILE, TRIPLETS_FILE, BuildConfig
from foleyflow.data.manifest import SPLITS, read_clips, read_json, read_jsonl
from foleyflow.data.paths import default_corpus_dir, default_editing_dir
from foleyflow.data.recipes import NUM_SAMPLES, ClipBank, Scene, edit_mask, loop_to_length
from foleyflow.errors import InputError


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


class ClipDataset(Dataset):
    """Corpus clips of ``split``: {"audio", "label", "caption", "captions", "role", "clip_id"}.

    ``audio`` is mono float32 at 16 kHz. With ``num_samples`` set, events are zero-padded and
    beds looped (then cropped) to that length, so items batch with the default collation.
    ``caption`` is the clip's first caption, or with ``random_caption`` one of its captions
    drawn per access (caption augmentation for text-to-audio training).
    """

    def __init__(self, split: str = "train", corpus_dir: str | Path | None = None, num_samples: int | None = None,
                 labels: list[str] | None = None, random_caption: bool = False, seed: int = 0):
        _check_split(split)
        self.corpus_dir = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir()
        self.clips = [c for c in read_clips(self.corpus_dir) if c.split == split and (labels is None or c.label in labels)]
        self.num_samples = num_samples
        self.random_caption = random_caption
        self.rng = np.random.default_rng(seed)
        self.bank = ClipBank(self.corpus_dir, capacity=512)

    @property
    def classes(self) -> list[str]:
        return sorted({c.label for c in self.clips})

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        audio = self.bank(clip.clip_id)
        if self.num_samples is not None:
            if clip.role == "bed":
                audio = loop_to_length(audio, self.num_samples)
            audio = np.pad(audio, (0, max(0, self.num_samples - len(audio))))[: self.num_samples]
        caption = clip.captions[int(self.rng.integers(len(clip.captions)))] if self.random_caption else clip.caption
        return {"audio": np.ascontiguousarray(audio, dtype=np.float32), "label": clip.label, "caption": caption,
                "captions": list(clip.captions), "role": clip.role, "clip_id": clip.clip_id}


class TripletDataset(Dataset):
    """Editing triplets of ``split``, rendered deterministically from their scene recipes.

    Item: {"source", "target"} (163,840 float32 samples each), "instruction", "task"
    ("add" | "remove" | "replace"), "source_caption", "target_caption" (evaluation only),
    "labels" (classes in the target), "edit_labels" (the added/removed/replaced classes),
    "edit_spans" ([start, end) sample spans of those events), "edit_mask" (bool per mel
    frame at hop 160, 1024 frames), "triplet_id", "scene_id".
    """

    def __init__(self, split: str = "train", root: str | Path | None = None, corpus_dir: str | Path | None = None,
                 tasks: tuple[str, ...] | None = None, max_triplets: int | None = None):
        _check_split(split)
        self.root = Path(root) if root is not None else default_editing_dir()
        if not (self.root / TRIPLETS_FILE).is_file():
            raise InputError(f"{self.root}: no editing set here (run `foleyflow data build`)")
        build = read_json(self.root / BUILD_FILE)
        self.corpus_dir = Path(corpus_dir) if corpus_dir is not None else Path(build["corpus_dir"])
        self.corpus_fingerprint = str(build.get("corpus", ""))
        self.event_seconds = float(build.get("config", {}).get("event_seconds", BuildConfig.event_seconds))  # how long A and B may be
        self.triplets = [t for t in read_jsonl(self.root / TRIPLETS_FILE)
                         if t["split"] == split and (tasks is None or t["task"] in tasks)]
        if max_triplets is not None:
            # Scenes come in build order (seeded), so a prefix is a random, task-balanced subset.
            self.triplets = self.triplets[:max_triplets]
        needed = {t["scene_id"] for t in self.triplets}
        self.scenes = {row["scene_id"]: Scene.from_dict(row) for row in read_jsonl(self.root / SCENES_FILE) if row["scene_id"] in needed}
        self.bank = ClipBank(self.corpus_dir, capacity=1024)

    def __len__(self) -> int:
        return len(self.triplets)

    def mix_key(self, scene_id: str, mix: str) -> str:
        """What determines a mix's audio: the corpus, the scene's recipe and the mix name
        (the content part of a feature-cache key)."""
        recipe = json.dumps(self.scenes[scene_id].to_dict(), sort_keys=True)
        return "\x00".join((self.corpus_fingerprint, recipe, mix))

    def render(self, scene_id: str, mix: str) -> np.ndarray:
        """One mix ("X", "XA" or "XB") of a scene."""
        return self.scenes[scene_id].render(mix, self.bank)

    def __getitem__(self, index: int) -> dict:
        t = self.triplets[index]
        item = {key: t[key] for key in ("triplet_id", "scene_id", "task", "instruction", "source_caption",
                                         "target_caption", "labels", "edit_labels", "edit_spans")}
        item["source"] = self.render(t["scene_id"], t["source"])
        item["target"] = self.render(t["scene_id"], t["target"])
        item["edit_mask"] = edit_mask(t["edit_spans"], num_frames=NUM_SAMPLES // 160, hop=160)
        return item
