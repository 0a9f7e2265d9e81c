"""The in-world CLAP as the editing data set's filter scorer (SPEC 3, step 3).

The builder keeps a triplet only if both its source and its target score above the
threshold (the paper's 0.35, ``foleyflow.data.clap_filter.CLAP_THRESHOLD``) against their
captions. ``ClapScorer`` is the default scorer of ``foleyflow data build``: it follows the
builder's scorer signature (a batch of equal-length clips and one caption each -> cosines).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from foleyflow.data.clap_filter import CLAP_THRESHOLD
from foleyflow.evaluation.backbones.inworld import InworldClapBackbone
from foleyflow.evaluation.metrics import cosine_per_pair
from foleyflow.models.checkpoint import load_config, resolve_model_dir


class ClapScorer:
    """Reads the model folder's config now (a wrong path fails at once) and its weights on first use."""

    def __init__(self, model: str | os.PathLike = "default", batch_size: int = 16):
        self.folder = resolve_model_dir(model, "clap")
        self.batch_size = batch_size
        self.name = f"in-world CLAP ({self.folder.name})"
        # measured on held-out pairs by `foleyflow bench backbones --write-calibration` (None if never)
        self.calibrated_threshold = load_config(self.folder).get("calibration", {}).get("threshold")
        self._backbone: InworldClapBackbone | None = None

    @property
    def backbone(self) -> InworldClapBackbone:
        if self._backbone is None:
            self._backbone = InworldClapBackbone(self.folder)
        return self._backbone

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(batch, samples) float32 mono 16 kHz clips and one caption each -> (batch,) cosines."""
        embeddings = self.backbone.model.embed_audio(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        return cosine_per_pair(embeddings.numpy(), self.backbone.embed_text(list(captions)))

    def scores(self, clips: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
        """Clips of any lengths: each batch is padded to its longest clip."""
        values = []
        for start in range(0, len(clips), self.batch_size):
            batch = clips[start : start + self.batch_size]
            length = max(len(clip) for clip in batch)
            values.append(self(np.stack([np.pad(np.asarray(c, np.float32), (0, length - len(c))) for c in batch]),
                               captions[start : start + self.batch_size]))
        return np.concatenate(values)

    def keep(self, clips: Sequence[np.ndarray], captions: Sequence[str], threshold: float = CLAP_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, scores): True where the score exceeds ``threshold``."""
        values = self.scores(clips, captions)
        return values > threshold, values
