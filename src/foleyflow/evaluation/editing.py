"""Evaluation of instruction-guided edits: the RFM-Edit Table 1/2 layout plus ground truth.

Input: the edit manifest (one row per triplet: id, source, target, instruction,
target_caption, task) and, per method, a folder of outputs named ``<id>.wav`` (any audio
suffix), optionally with ``timing.csv`` (id,seconds) beside them. Outputs are scored
against the true targets: FD, FAD, KL, IS (distribution), CLAP score of output vs target
caption (SPEC 5), time per edit, and the ground-truth metrics of ``reference``.
Manifest rows are JSON Lines or CSV; relative paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foleyflow.audio.io import load_audio
from foleyflow.errors import InputError
from foleyflow.evaluation import reference as ground_truth
from foleyflow.evaluation.bootstrap import DEFAULT_RESAMPLES, Estimate, mean_ci
from foleyflow.evaluation.cache import FeatureCache
from foleyflow.evaluation.pairing import audio_files, pair_by_name
from foleyflow.evaluation.suite import Backbones, Report, evaluate_sets, read_table

REQUIRED_FIELDS = ("id", "source", "target", "instruction")  # "target" only where edits are scored
TIMING_FILE = "timing.csv"
# What each method needs at inference (RFM-Edit Table 1's "input" column).
PROMPT_NEEDED = {
    "rfm-edit": "instruction",
    "audit": "instruction",
    "audioeditor": "caption + token mask",
    "ddpm-inversion": "source + target caption",
    "zero-shot": "source + target caption",
    "no-edit": "nothing (the source as it is)",
    "codec-only": "nothing (the source through the codec)",
}


def input_needed(method: str) -> str:
    """The input column for a method name: a known name, or a known name with a suffix
    ("rfm-edit-t0.01" -> rfm-edit's); "not stated" for a name foleyflow does not know."""
    name = method.lower()
    for known in sorted(PROMPT_NEEDED, key=len, reverse=True):
        if name == known or name.startswith(known + "-") or name.startswith(known + "@"):
            return PROMPT_NEEDED[known]
    return "not stated"
GROUND_TRUTH_METRICS = ("log-mel L1 ↓", "LSD ↓", "preservation L1 ↓")


@dataclass(frozen=True)
class EditItem:
    id: str
    source: Path
    target: Path | None  # None in a manifest only edited, not scored
    instruction: str
    target_caption: str
    task: str


def load_manifest(path: str | os.PathLike, need_target: bool = True) -> list[EditItem]:
    """The rows of an edit manifest (JSON lines or CSV; ``REQUIRED_FIELDS``). ``need_target`` False:
    a manifest to edit only (`foleyflow edit --manifest`), whose rows need no true target."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path}: the manifest has no rows")
    items = []
    for line, row in enumerate(rows, start=1):
        missing = [name for name in REQUIRED_FIELDS if not row.get(name) and (need_target or name != "target")]
        if missing:
            raise InputError(f"{path}: row {line} lacks {', '.join(missing)}")
        caption = row.get("target_caption") or row.get("caption") or ""
        task = row.get("task") or str(row["instruction"]).split()[0].lower()
        items.append(EditItem(str(row["id"]), _resolve(path, row["source"]), _resolve(path, row["target"]) if row.get("target") else None, str(row["instruction"]), str(caption), task))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: ids are not unique")
    return items


def _read_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    return rows


def _resolve(manifest: Path, value: str) -> Path:
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else manifest.parent / candidate


@dataclass
class MethodResult:
    name: str
    prompt: str
    report: Report
    ground_truth: dict[str, Estimate]
    by_task: dict[str, dict[str, Estimate]]


def evaluate_method(
    name: str,
    outputs_dir: str | os.PathLike,
    items: list[EditItem],
    backbones: Backbones,
    cache: FeatureCache,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> MethodResult:
    outputs = audio_files(outputs_dir)
    targets = {item.id: item.target for item in items}
    pair_by_name(outputs, targets)  # every edit must have exactly one output
    timing = Path(outputs_dir) / TIMING_FILE
    report = evaluate_sets(
        outputs, targets, backbones, cache,
        captions={item.id: item.target_caption for item in items if item.target_caption} or None,
        times=read_table(timing, "seconds", float) if timing.is_file() else None,
        resamples=resamples, seed=seed,
    )
    per_edit = {item.id: _ground_truth_of(outputs[item.id], item) for item in items}
    for item_id, values in per_edit.items():
        report.per_clip[item_id].update(values)
    truth = _means(list(per_edit.values()), resamples, seed)
    by_task = {}
    for task in sorted({item.task for item in items}):
        rows = [per_edit[item.id] | {"CLAP ↑": report.per_clip[item.id].get("CLAP", np.nan)} for item in items if item.task == task]
        by_task[task] = _means(rows, resamples, seed) | {"count": Estimate(len(rows), len(rows), len(rows))}
    return MethodResult(name, input_needed(name), report, truth, by_task)


def _ground_truth_of(output_path: Path, item: EditItem) -> dict[str, float]:
    output, source, target = load_audio(output_path), load_audio(item.source), load_audio(item.target)
    return {
        "log-mel L1 ↓": ground_truth.logmel_l1(output, target),
        "LSD ↓": ground_truth.lsd(output, target),
        "preservation L1 ↓": ground_truth.preservation_l1(output, source, target),
    }


def _means(rows: list[dict[str, float]], resamples: int, seed: int) -> dict[str, Estimate]:
    result = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        values = values[np.isfinite(values)]  # preservation is undefined when no frame is untouched
        if values.size:
            result[key] = mean_ci(values, resamples, seed)
    return result


def format_ground_truth(results: list[MethodResult]) -> str:
    header = ["method", "task", "edits", *GROUND_TRUTH_METRICS, "CLAP ↑"]
    lines = [header]
    for result in results:
        lines.append([result.name, "all", str(len(result.report.per_clip)),
                      *(result.ground_truth[m].format(3) if m in result.ground_truth else "n/a" for m in GROUND_TRUTH_METRICS),
                      result.report.figures["CLAP"].format(4) if "CLAP" in result.report.figures else "n/a"])
        for task, figures in result.by_task.items():
            lines.append([result.name, task, str(int(figures["count"].value)),
                          *(figures[m].format(3) if m in figures else "n/a" for m in (*GROUND_TRUTH_METRICS, "CLAP ↑"))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)
