"""Class presence: did an edit put the instructed sound in, or take it out?

A reference figure (log-mel L1 to the true target) cannot credit a faithful "add": the target
holds one recording of the class, and another recording of the same class, placed and levelled
exactly as the data set places it, scores no better than leaving the clip alone (BENCHMARKS.md,
"Editor benchmark, session 20"). Presence asks a tagger instead:

    presence(c, x) = max over windows w of sigmoid(logit_c(x_w))

over 0.96 s windows (the in-world tagger's frame, VGGish's example length) with 50% overlap,
so a short event in a long clip counts as much as a long one. An edit's figure is the change
from its source: for the sound an "add" or "replace" brings in, up is right; for the sound a
"remove" or "replace" takes out, down is right.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.evaluation.backbones.inworld import FRAME_SECONDS

WINDOW_SAMPLES = int(FRAME_SECONDS * SAMPLE_RATE)
HOP_SAMPLES = WINDOW_SAMPLES // 2


def presence_windows(audio: np.ndarray) -> torch.Tensor:
    """(windows, WINDOW_SAMPLES): every window at a HOP_SAMPLES stride, the last reaching the clip's
    end; a clip shorter than one window is zero-padded to it."""
    audio = np.asarray(audio, np.float32)
    if audio.size < WINDOW_SAMPLES:
        audio = np.pad(audio, (0, WINDOW_SAMPLES - audio.size))
    starts = list(range(0, audio.size - WINDOW_SAMPLES + 1, HOP_SAMPLES))
    if starts[-1] + WINDOW_SAMPLES < audio.size:
        starts.append(audio.size - WINDOW_SAMPLES)
    return torch.from_numpy(np.stack([audio[s : s + WINDOW_SAMPLES] for s in starts]))


class ClassPresence:
    """``presence`` of named classes in clips, from a tagger: a module mapping (batch, samples)
    audio to {"logits": (batch, classes)} and the class names of its outputs."""

    def __init__(self, tagger: torch.nn.Module, class_names: Sequence[str]) -> None:
        self.tagger = tagger.eval()
        self.index = {name: i for i, name in enumerate(class_names)}

    @classmethod
    def from_pretrained(cls, folder: str = "default") -> "ClassPresence":
        from foleyflow.evaluation.backbones.inworld import InworldTaggerBackbone

        backbone = InworldTaggerBackbone(folder)
        return cls(backbone.model, backbone.class_names)

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, classes: Sequence[str | None]) -> list[float]:
        """presence(c, audio) for each of ``classes``; NaN for None or a class the tagger does not know."""
        known = [self.index.get(c) if c is not None else None for c in classes]
        if all(k is None for k in known):
            return [float("nan")] * len(classes)
        probabilities = torch.sigmoid(self.tagger(presence_windows(audio))["logits"]).amax(dim=0)
        return [float(probabilities[k]) if k is not None else float("nan") for k in known]


def edited_classes(item: dict) -> tuple[str | None, str | None]:
    """(the class an edit takes out, the class it brings in) from a triplet's task and edit labels:
    remove (A, -), add (-, A), replace (A, B)."""
    labels = list(item.get("edit_labels") or [])
    if not labels:
        return None, None
    task = item["task"]
    return (labels[0] if task in ("remove", "replace") else None, labels[-1] if task in ("add", "replace") else None)
