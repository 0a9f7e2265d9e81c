"""The CLAP filter of the editing data set (SPEC 3, step 3), with a pluggable scorer.

A triplet is kept only if the CLAP similarity of audio and caption exceeds 0.35 (the paper's
threshold) for both its source and its target. Any callable with the ``ClapScorer``
signature can score; ``foleyflow data build`` uses the shipped in-world CLAP
(``foleyflow.evaluation.clap_filter.ClapScorer``) unless told ``--clap none``. Every score
is written to ``clap_scores.jsonl`` beside the set. Without a scorer the builder keeps every
triplet and records in build.json that filtering was skipped, so nobody mistakes the set for
a filtered one.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

CLAP_THRESHOLD = 0.35
CLAP_SCORES_FILE = "clap_scores.jsonl"


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


def skipped_record(reason: str = "no CLAP scorer was given") -> dict:
    return {"applied": False, "threshold": CLAP_THRESHOLD, "reason": f"{reason}; every triplet was kept"}


def score_summary(scores: np.ndarray) -> dict[str, float]:
    """Min, quartiles and max of the scores, for build.json and `data stats`."""
    if scores.size == 0:
        return {}
    names = ("min", "q25", "median", "q75", "max")
    return {name: round(float(value), 4) for name, value in zip(names, np.quantile(scores, [0, 0.25, 0.5, 0.75, 1]))}
