"""Held-out figures of the in-world backbones, each with a bootstrap 95% CI.

Tagger: macro mAP over the classes that have a positive in the split (the AudioSet figure
PANNs reports), bootstrapped over those classes' APs. (Resampling clips instead biases AP
upwards: a drawn-twice positive ties with itself at the top of its class's ranking, and the
interval ended up above the point value.)

CLAP: text-to-audio retrieval recall@K. Queries are the split's distinct captions; a query is
retrieved at K when any clip carrying that caption ranks in the top K of all the split's
clips. With one caption per clip this is the usual AudioCaps/Clotho recall@K; on a corpus
whose captions repeat per class (foleyflow's) it avoids asking the model to tell apart clips
that the text cannot. Bootstrapped over queries with the gallery fixed. Both figures come with
their chance level (a random ranking), so a reader can tell learning from luck.

Clips are cropped as in validation (middle ``seconds``, padded at the end), by default to the
crop the model was trained on (``input_seconds`` in its config).
"""

from __future__ import annotations

import dataclasses
import os
from math import comb
from pathlib import Path

import numpy as np
import torch

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.data.clap_filter import CLAP_THRESHOLD
from foleyflow.errors import InputError
from foleyflow.evaluation.backbones.inworld import InworldClapBackbone, InworldTaggerBackbone
from foleyflow.evaluation.bootstrap import DEFAULT_RESAMPLES, Estimate, mean_ci
from foleyflow.evaluation.recipes import Clip, crop, read_clip_list

DEFAULT_SECONDS = 10.0  # for a model folder that does not say what it was trained on
BATCH = 32


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


def retrieval_hits(similarity: np.ndarray, ks: tuple[int, ...] = (1, 5), relevant: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Per query (row), whether a relevant clip (column) ranks in the top k.

    ``relevant`` (queries, clips) bool; default: query i's clip is clip i. A query's rank is
    the number of clips scoring strictly above its best relevant clip (0 = first).
    """
    if relevant is None:
        relevant = np.eye(*similarity.shape, dtype=bool)
    if not relevant.any(axis=1).all():
        raise InputError("every query needs at least one relevant clip")
    best = np.where(relevant, similarity, -np.inf).max(axis=1)
    rank = (similarity > best[:, None]).sum(axis=1)
    return {k: rank < k for k in ks}


def recall_at_k(similarity: np.ndarray, ks: tuple[int, ...] = (1, 5), relevant: np.ndarray | None = None) -> dict[int, float]:
    """Text-to-audio retrieval: the share of queries with a relevant clip in the top k."""
    return {k: float(hits.mean()) for k, hits in retrieval_hits(similarity, ks, relevant).items()}


def chance_recall(relevant: np.ndarray, k: int) -> float:
    """Expected recall@k of a random ranking: 1 - C(N - r, k) / C(N, k) per query, averaged."""
    clips = relevant.shape[1]
    k = min(k, clips)  # a top k longer than the gallery holds every clip
    return float(np.mean([1.0 - comb(clips - r, k) / comb(clips, k) for r in relevant.sum(axis=1)]))


def _split_clips(clip_list: str | os.PathLike, split: str) -> list[Clip]:
    clips = [clip for clip in read_clip_list(clip_list) if clip.split == split]
    if not clips:
        raise InputError(f"{clip_list}: no clips in split {split!r}")
    return clips


def _crops(clips: list[Clip], seconds: float) -> np.ndarray:
    return np.stack([crop(load_audio(clip.path), int(seconds * SAMPLE_RATE), random=False) for clip in clips]).astype(np.float32)


def _in_batches(function, audio: np.ndarray) -> np.ndarray:
    return np.concatenate([function(torch.from_numpy(audio[i : i + BATCH])).numpy() for i in range(0, len(audio), BATCH)])


@dataclasses.dataclass
class TaggerFigures:
    map: Estimate
    chance_map: float  # a random scorer's expected AP is the class's share of positives
    clips: int
    classes: int  # with a positive in the split
    seconds: float

    def to_dict(self) -> dict:
        return {"mAP": self.map.to_dict(), "chance_mAP": self.chance_map, "clips": self.clips, "classes": self.classes, "seconds": self.seconds}


@dataclasses.dataclass
class ClapFigures:
    recall: dict[int, Estimate]
    chance: dict[int, float]
    queries: int
    clips: int
    seconds: float

    def to_dict(self) -> dict:
        return {"recall": {f"R@{k}": e.to_dict() for k, e in self.recall.items()}, "chance": {f"R@{k}": v for k, v in self.chance.items()},
                "queries": self.queries, "clips": self.clips, "seconds": self.seconds}


@torch.no_grad()
def tagger_scores(backbone: InworldTaggerBackbone, clips: list[Clip], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(logits, multi-hot targets) of each clip; labels the tagger does not know are ignored."""
    index = {name: i for i, name in enumerate(backbone.class_names)}
    scores = _in_batches(lambda audio: backbone.model(audio)["logits"], _crops(clips, seconds))
    targets = np.zeros((len(clips), len(index)), dtype=bool)
    for row, clip in enumerate(clips):
        targets[row, [index[label] for label in clip.labels if label in index]] = True
    return scores, targets


def tagger_figures(folder: str | os.PathLike, clip_list: str | os.PathLike, split: str = "test", seconds: float | None = None,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> TaggerFigures:
    backbone = InworldTaggerBackbone(folder)
    seconds = seconds or backbone.input_seconds or DEFAULT_SECONDS
    scores, targets = tagger_scores(backbone, _split_clips(clip_list, split), seconds)
    present = targets.any(axis=0)
    per_class = np.array([average_precision(scores[:, c], targets[:, c]) for c in np.flatnonzero(present)])
    return TaggerFigures(mean_ci(per_class, resamples, seed), float(targets[:, present].mean(axis=0).mean()), len(scores), int(present.sum()), seconds)


@torch.no_grad()
def clap_similarity(backbone: InworldClapBackbone, clips: list[Clip], seconds: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(distinct captions, caption x clip cosine, caption x clip relevance)."""
    queries = sorted({caption for clip in clips for caption in clip.captions})
    audio = _in_batches(backbone.model.embed_audio, _crops(clips, seconds))
    relevant = np.array([[query in clip.captions for clip in clips] for query in queries])
    return queries, backbone.embed_text(queries) @ audio.T, relevant


@dataclasses.dataclass
class ClapPairs:
    """Every (distinct caption, clip) cosine of a split and which pairs match."""

    similarity: np.ndarray  # (captions, clips)
    relevant: np.ndarray  # (captions, clips) bool
    seconds: float


def clap_pairs(folder: str | os.PathLike, clip_list: str | os.PathLike, split: str = "test", seconds: float | None = None) -> ClapPairs:
    backbone = InworldClapBackbone(folder)
    seconds = seconds or backbone.input_seconds or DEFAULT_SECONDS
    _, similarity, relevant = clap_similarity(backbone, _split_clips(clip_list, split), seconds)
    return ClapPairs(similarity, relevant, seconds)


def clap_figures(pairs: ClapPairs, ks: tuple[int, ...] = (1, 5), resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> ClapFigures:
    hits = retrieval_hits(pairs.similarity, ks, pairs.relevant)
    return ClapFigures({k: mean_ci(hits[k].astype(float), resamples, seed) for k in ks}, {k: chance_recall(pairs.relevant, k) for k in ks},
                       pairs.similarity.shape[0], pairs.similarity.shape[1], pairs.seconds)


def format_backbone_figures(tagger: TaggerFigures | None, clap: ClapFigures | None, split: str) -> list[str]:
    lines = []
    if tagger is not None:
        lines.append(f"tagger: mAP {tagger.map.format(4)} on {tagger.clips} {split} clips, {tagger.classes} classes"
                     f" ({tagger.seconds:g} s crops; chance {tagger.chance_map:.4f})")
    if clap is not None:
        recalls = ", ".join(f"R@{k} {e.format(4)}" for k, e in clap.recall.items())
        chance = ", ".join(f"R@{k} {v:.4f}" for k, v in clap.chance.items())
        lines.append(f"clap: text-to-audio {recalls} over {clap.queries} captions x {clap.clips} {split} clips"
                     f" ({clap.seconds:g} s crops; chance {chance})")
    return lines


# --- the CLAP filter's threshold on this CLAP's cosine scale --------------------------------


def equal_error_threshold(true_scores: np.ndarray, mismatched_scores: np.ndarray) -> float:
    """The cut where the share of true pairs at or below it equals the share of mismatched pairs above it."""
    candidates = np.unique(np.concatenate([true_scores, mismatched_scores]))
    false_reject = np.searchsorted(np.sort(true_scores), candidates, side="right") / true_scores.size
    false_accept = 1.0 - np.searchsorted(np.sort(mismatched_scores), candidates, side="right") / mismatched_scores.size
    return float(candidates[np.argmin(np.abs(false_reject - false_accept))])


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {name: round(float(v), 4) for name, v in zip(("q05", "q25", "median", "q75", "q95"), np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95]))}


def clap_calibration(pairs: ClapPairs, split: str, threshold: float = CLAP_THRESHOLD) -> dict:
    """Cosines of true (clip, one of its captions) vs mismatched (clip, a caption it does not carry) pairs.

    Says how many of each pass ``threshold`` and where this CLAP's equal-error cut lies, so a
    reader can see whether the paper's 0.35 (set on LAION-CLAP's scale) means the same here.
    """
    true_scores, mismatched = pairs.similarity[pairs.relevant], pairs.similarity[~pairs.relevant]
    if not mismatched.size:
        raise InputError(f"split {split!r} has one caption set only; no mismatched pairs to compare")
    return {"split": split, "seconds": pairs.seconds, "true_pairs": int(true_scores.size), "mismatched_pairs": int(mismatched.size),
            "true": _quantiles(true_scores), "mismatched": _quantiles(mismatched), "paper_threshold": threshold,
            "true_above_paper_threshold": round(float((true_scores > threshold).mean()), 4),
            "mismatched_above_paper_threshold": round(float((mismatched > threshold).mean()), 4),
            "threshold": round(equal_error_threshold(true_scores, mismatched), 4)}


def format_calibration(calibration: dict) -> list[str]:
    true, wrong = calibration["true"], calibration["mismatched"]
    return [f"clap calibration ({calibration['split']}): cosine of {calibration['true_pairs']} true pairs median {true['median']}"
            f" [q05 {true['q05']}, q95 {true['q95']}] vs {calibration['mismatched_pairs']} mismatched pairs median {wrong['median']}"
            f" [q05 {wrong['q05']}, q95 {wrong['q95']}]",
            f"  above the paper's {calibration['paper_threshold']}: {calibration['true_above_paper_threshold']:.1%} of true,"
            f" {calibration['mismatched_above_paper_threshold']:.1%} of mismatched pairs; equal-error threshold {calibration['threshold']}"]


def write_calibration(folder: str | os.PathLike, calibration: dict) -> Path:
    """Store the calibration in the CLAP folder's config.json (``--clap-threshold calibrated`` reads it)."""
    import json

    from foleyflow.atomic import atomic_path
    from foleyflow.models.checkpoint import CONFIG_NAME, load_config, resolve_model_dir

    folder = resolve_model_dir(folder, "clap")
    config = load_config(folder) | {"calibration": calibration}
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder / CONFIG_NAME
