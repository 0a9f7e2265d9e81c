"""Evaluation runs: features through the chosen backbones, then every figure with its 95% CI.

``evaluate_sets`` scores generated audio against reference audio (and captions): FD, FAD,
KL, IS, CLAP score, time per clip. The edit evaluation (``editing``) reuses it with the
true targets as reference. Backbones are chosen by spec strings:

    inworld        the shipped in-world tagger (FD, KL, IS, FAD) and CLAP (CLAP score)
    panns:PATH     PANNs Cnn14 16 kHz from a local .pth/.safetensors (FD, KL, IS)
    vggish:PATH    VGGish from the PyTorch port's local .pth (FAD)
    tagger:PATH    an in-world tagger model folder (FD, KL, IS, and FAD unless VGGish is given)
    clap:PATH      an in-world CLAP model folder (CLAP score)
    laion-clap:PATH  LAION-CLAP in transformers format from a local folder (CLAP score)
Later specs replace earlier ones for the metrics they serve.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.errors import InputError
from foleyflow.evaluation import metrics
from foleyflow.evaluation.bootstrap import DEFAULT_RESAMPLES, Estimate, bootstrap_ci, mean_ci
from foleyflow.evaluation.cache import FeatureCache

METRIC_ORDER = ("FD", "FAD", "KL", "IS", "CLAP", "time (s)")
LOWER_IS_BETTER = {"FD": True, "FAD": True, "FAD-inf": True, "KL": True, "IS": False, "CLAP": False, "time (s)": True}


@dataclass
class Backbones:
    classifier: Any = None  # "embedding" + "logits": FD, KL, IS
    frames: Any = None  # "frames": FAD
    clap: Any = None  # "audio_embedding" + embed_text: CLAP score

    def names(self) -> dict[str, str]:
        return {role: getattr(self, role).name for role in ("classifier", "frames", "clap") if getattr(self, role) is not None}


def parse_backbones(specs: Sequence[str]) -> Backbones:
    from foleyflow.evaluation.backbones.inworld import InworldClapBackbone, InworldTaggerBackbone
    from foleyflow.evaluation.backbones.public import PannsBackbone, VggishBackbone

    chosen = Backbones()
    explicit_frames = False
    for spec in specs:
        kind, _, path = spec.partition(":")
        if kind == "inworld" and not path:
            tagger = InworldTaggerBackbone("default")
            chosen.classifier = tagger
            chosen.frames = chosen.frames if explicit_frames else tagger
            chosen.clap = InworldClapBackbone("default")
        elif kind in ("panns", "vggish", "tagger", "clap", "laion-clap") and path:
            if kind == "laion-clap":
                from foleyflow.evaluation.backbones.laion_clap import LaionClapBackbone

                chosen.clap = LaionClapBackbone(path)
            elif kind == "panns":
                chosen.classifier = PannsBackbone(path)
            elif kind == "vggish":
                chosen.frames, explicit_frames = VggishBackbone(path), True
            elif kind == "tagger":
                tagger = InworldTaggerBackbone(path)
                chosen.classifier = tagger
                chosen.frames = chosen.frames if explicit_frames else tagger
            else:
                chosen.clap = InworldClapBackbone(path)
        else:
            raise InputError(f"--backbone {spec!r}: expected inworld, panns:PATH, vggish:PATH, tagger:PATH, clap:PATH or laion-clap:PATH")
    return chosen


def extract(paths: Sequence[Path], backbone: Any, cache: FeatureCache) -> list[dict[str, np.ndarray]]:
    """Features of every file (cached by content + backbone fingerprint), read at the
    backbone's own sample rate (16 kHz, or 48 kHz for LAION-CLAP)."""
    rate = getattr(backbone, "sample_rate", SAMPLE_RATE)
    return [cache.get_or_compute(path, backbone.fingerprint, lambda path=path: backbone.features(load_audio(path, rate))) for path in paths]


def read_table(path: str | os.PathLike, value_column: str, value_type: Callable = str) -> dict[str, Any]:
    """A CSV with a header naming a file column (name, file, audio or id) and ``value_column``;
    keys are file stems."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"{path}: no rows")
    name_column = next((c for c in ("name", "file", "audio", "id", "file_name") if c in rows[0]), None)
    if name_column is None or value_column not in rows[0]:
        raise InputError(f"{path}: expected a header with a name/file column and {value_column!r}, found {list(rows[0])}")
    table = {}
    for line, row in enumerate(rows, start=2):
        try:
            table[Path(row[name_column]).stem] = value_type(row[value_column])
        except (TypeError, ValueError):
            raise InputError(f"{path}:{line}: {value_column} {row[value_column]!r} is not a valid value") from None
    return table


def lookup(table: dict[str, Any], names: Sequence[str], what: str) -> list[Any]:
    missing = [name for name in names if name not in table]
    if missing:
        preview = ", ".join(missing[:5]) + (f", ... {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} files have no {what} ({preview})")
    return [table[name] for name in names]


@dataclass
class Report:
    figures: dict[str, Estimate] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    per_clip: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "figures": {name: estimate.to_dict() for name, estimate in self.figures.items()},
            "not_computed": self.notes,
            "info": self.info,
            "per_clip": self.per_clip,
        }


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _pooled_frechet(generated: np.ndarray, reference: np.ndarray) -> float:
    return metrics.frechet_distance(np.concatenate(list(generated)), np.concatenate(list(reference)))


def evaluate_sets(
    generated: dict[str, Path],
    reference: dict[str, Path] | None,
    backbones: Backbones,
    cache: FeatureCache,
    captions: dict[str, str] | None = None,
    times: dict[str, float] | None = None,
    paired: bool = True,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    fad_infinity: bool = False,
) -> Report:
    """Every figure the backbones allow, each with a bootstrap 95% CI.

    ``paired`` makes KL available and requires the two folders to pair by name (the caller
    pairs them first); set metrics (FD, FAD, IS) never need pairs.
    """
    report = Report(info={"generated": len(generated), "reference": len(reference or {}), "backbones": backbones.names(),
                          "bootstrap_resamples": resamples, "seed": seed})
    names = sorted(generated)
    gen_paths = [generated[n] for n in names]
    ref_names = sorted(reference) if reference else []
    ref_paths = [reference[n] for n in ref_names] if reference else []
    per_clip: dict[str, dict[str, float]] = {name: {} for name in names}

    if backbones.classifier is None:
        report.notes.update(FD="no classifier backbone", KL="no classifier backbone", IS="no classifier backbone")
    else:
        gen = extract(gen_paths, backbones.classifier, cache)
        gen_embed = np.stack([f["embedding"] for f in gen])
        gen_logits = np.stack([f["logits"] for f in gen])
        if reference:
            ref = extract(ref_paths, backbones.classifier, cache)
            ref_embed = np.stack([f["embedding"] for f in ref])
            if min(len(gen_embed), len(ref_embed)) < 2:
                report.notes["FD"] = "needs at least 2 clips per set"
            else:
                report.figures["FD"] = bootstrap_ci(metrics.frechet_distance, [gen_embed, ref_embed], paired=False, resamples=resamples, seed=seed)
            if paired:
                kl = metrics.kl_per_pair(np.stack([f["logits"] for f in ref]), gen_logits)
                report.figures["KL"] = mean_ci(kl, resamples, seed)
                for name, value in zip(names, kl):
                    per_clip[name]["KL"] = float(value)
            else:
                report.notes["KL"] = "needs files paired by name (run without --unpaired)"
        else:
            report.notes.update(FD="no reference set", KL="no reference set")
        if len(gen_logits) >= metrics.IS_SPLITS:
            report.figures["IS"] = bootstrap_ci(lambda x: metrics.inception_score(x)[0], [gen_logits], paired=False, resamples=resamples, seed=seed)
        else:
            report.notes["IS"] = f"needs at least {metrics.IS_SPLITS} generated clips"

    if backbones.frames is None:
        report.notes["FAD"] = "no frame backbone (pass --backbone vggish:PATH)"
    elif not reference:
        report.notes["FAD"] = "no reference set"
    else:
        gen_frames = _object_array([f["frames"] for f in extract(gen_paths, backbones.frames, cache)])
        ref_frames = _object_array([f["frames"] for f in extract(ref_paths, backbones.frames, cache)])
        if sum(len(f) for f in gen_frames) < 2 or sum(len(f) for f in ref_frames) < 2:
            report.notes["FAD"] = "needs at least 2 frames per set"
        else:
            report.figures["FAD"] = bootstrap_ci(_pooled_frechet, [gen_frames, ref_frames], paired=False, resamples=resamples, seed=seed)
            reference_gaussian = metrics.Gaussian.fit(np.concatenate(list(ref_frames)))
            for name, frames in zip(names, gen_frames):
                if len(frames) >= 2:
                    per_clip[name]["FAD"] = metrics.frechet_distance(reference_gaussian, frames)
            if fad_infinity:
                result = metrics.fad_infinity(np.concatenate(list(ref_frames)), np.concatenate(list(gen_frames)), seed=seed)
                report.figures["FAD-inf"] = Estimate(result.value, *result.ci95)  # the fit's interval, not a bootstrap
                report.info["fad_infinity"] = {"sizes": result.sizes.tolist(), "fads": result.fads.tolist(), "slope": result.slope}

    if backbones.clap is None:
        report.notes["CLAP"] = "no CLAP backbone"
    elif captions is None:
        report.notes["CLAP"] = "no captions (pass --captions CSV)"
    else:
        texts = lookup(captions, names, "caption")
        audio = np.stack([f["audio_embedding"] for f in extract(gen_paths, backbones.clap, cache)])
        cosines = metrics.cosine_per_pair(audio, backbones.clap.embed_text(texts))
        report.figures["CLAP"] = mean_ci(cosines, resamples, seed)
        for name, value in zip(names, cosines):
            per_clip[name]["CLAP"] = float(value)

    if times is None:
        report.notes["time (s)"] = "no timing file"
    else:
        seconds = np.array(lookup(times, names, "time"), dtype=np.float64)
        report.figures["time (s)"] = mean_ci(seconds, resamples, seed)
    report.per_clip = per_clip
    report.info["cache"] = {"hits": cache.hits, "misses": cache.misses, "enabled": cache.enabled}
    return report


def format_table(rows: dict[str, Report], first_column: str = "run", extra: dict[str, dict[str, str]] | None = None) -> str:
    """The papers' layout: one row per run, columns FD, FAD, KL, IS, CLAP, time, each
    "value [low, high]"; arrows say which direction is better."""
    metrics_present = [m for m in (*METRIC_ORDER[:2], "FAD-inf", *METRIC_ORDER[2:]) if any(m in r.figures for r in rows.values())]
    extra_columns = sorted({key for values in (extra or {}).values() for key in values})
    header = [first_column, *extra_columns, *(f"{m} {'↓' if LOWER_IS_BETTER[m] else '↑'}" for m in metrics_present)]
    lines = [header]
    for label, report in rows.items():
        cells = [label, *((extra or {}).get(label, {}).get(c, "") for c in extra_columns)]
        cells += [report.figures[m].format(4 if m == "CLAP" else 2) if m in report.figures else "n/a" for m in metrics_present]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)
