"""The CLAP filter of the editing data set (SPEC 3, step 3), with a pluggable scorer.

A triplet is kept only if the CLAP similarity of audio and caption exceeds 0.35 for both its
source and its target. Any callable with the ``ClapScorer`` signature can score; the
evaluation code plugs its CLAP model in here. Without one the builder keeps every triplet
and records in build.json that filtering was skipped, so nobody mistakes the set for a
filtered one.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

CLAP_THRESHOLD = 0.35


class ClapScorer(Protocol):
    def __call__(self, audio: np.ndarray, captions: list[str]) -> np.ndarray:
        """(batch, samples) float32 mono 16 kHz audio and one caption each -> (batch,) cosine similarities."""


def score_in_batches(scorer: ClapScorer, audios: list[np.ndarray], captions: list[str], batch_size: int = 16) -> np.ndarray:
    scores = []
    for start in range(0, len(audios), batch_size):
        batch = np.stack(audios[start : start + batch_size]).astype(np.float32)
        result = np.asarray(scorer(batch, captions[start : start + batch_size]), dtype=np.float64).reshape(-1)
        if result.shape[0] != batch.shape[0]:
            raise ValueError(f"the CLAP scorer returned {result.shape[0]} scores for {batch.shape[0]} clips")
        scores.append(result)
    return np.concatenate(scores) if scores else np.zeros(0)


def skipped_record() -> dict:
    return {"applied": False, "threshold": CLAP_THRESHOLD,
            "reason": "no CLAP scorer was given (foleyflow has no CLAP model yet); every triplet was kept"}
