"""CLAP similarity of audio and captions for the editing data set's filter (SPEC 3, step 3).

The builder keeps a triplet only if both its source and its target score above
``THRESHOLD`` against their captions. ``ClapScorer`` wraps the in-world CLAP (the default)
so that the builder can score in-memory audio in batches and record every score.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from foleyflow.evaluation.backbones.inworld import InworldClapBackbone
from foleyflow.evaluation.metrics import cosine_per_pair

THRESHOLD = 0.35


class ClapScorer:
    def __init__(self, model: str | os.PathLike = "default", batch_size: int = 16):
        self.backbone = InworldClapBackbone(model)
        self.batch_size = batch_size
        self.name = self.backbone.name

    @torch.no_grad()
    def scores(self, clips: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
        """Cosine of each 16 kHz clip with its caption (clips of one batch are padded to the longest)."""
        audio = []
        for start in range(0, len(clips), self.batch_size):
            batch = clips[start : start + self.batch_size]
            length = max(len(clip) for clip in batch)
            stacked = np.stack([np.pad(np.asarray(c, np.float32), (0, length - len(c))) for c in batch])
            audio.append(self.backbone.model.embed_audio(torch.from_numpy(stacked)).numpy())
        return cosine_per_pair(np.concatenate(audio), self.backbone.embed_text(list(captions)))

    def keep(self, clips: Sequence[np.ndarray], captions: Sequence[str], threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, scores): True where the score exceeds ``threshold``."""
        values = self.scores(clips, captions)
        return values > threshold, values
