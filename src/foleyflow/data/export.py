"""Held-out prompts and edits written out as plain files, in the layout `foleyflow eval` reads.

``held_out_prompts`` picks the prompts every generator benchmark uses (`bench generate`,
`bench distill`, `data export-clips`): captioned clips of one split, in a seeded order that
visits every caption group before it repeats one. foleyflow's corpus captions repeat per class
("A cow moos") and the manifest lists a class's clips together, so "the first N clips" would
measure a handful of classes; the spread order makes the first N cover min(N, classes) classes.

``export_clips`` copies those clips into ``reference/`` with a ``prompts.csv`` (name,caption),
the input of ``foleyflow generate --prompts`` and of ``foleyflow eval --reference --captions``.
``export_edits`` renders held-out editing triplets into ``source/`` and ``target/`` WAVs with a
``manifest.jsonl`` (id, source, target, instruction, target_caption, task), the input of
``foleyflow edit --manifest`` and ``foleyflow eval edit``.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError

PROMPTS_FILE = "prompts.csv"
REFERENCE_DIR = "reference"
EDIT_MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class HeldOutPrompt:
    name: str  # file stem shared by the generated and the reference clip (pairs them for KL)
    caption: str
    reference: Path


def spread_order(groups: Sequence[str], seed: int) -> list[int]:
    """Indices in a seeded order that takes one member of every group before a second of any."""
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    seen: dict[str, int] = defaultdict(int)
    rank = {}
    for index in order:
        rank[index] = seen[groups[index]]
        seen[groups[index]] += 1
    return sorted(order, key=lambda index: rank[index])  # stable: within a rank, the shuffled order


def held_out_prompts(manifest: str | Path, split: str, count: int, seed: int = 0) -> list[HeldOutPrompt]:
    """``count`` clips of ``split`` (their first caption as prompt), spread over caption groups."""
    from foleyflow.training.recipes.tta import read_manifest

    clips = read_manifest(manifest, split)
    if len(clips) < count:
        raise InputError(f"{manifest}: split {split!r} has {len(clips)} clips, fewer than --n {count}")
    chosen = [clips[index] for index in spread_order([clip.captions[0] for clip in clips], seed)[:count]]
    prompts = [HeldOutPrompt(clip.audio.stem, clip.captions[0], clip.audio) for clip in chosen]
    if len({p.name for p in prompts}) != len(prompts):
        raise InputError(f"{manifest}: clip file names repeat; generated clips are paired with references by name")
    return prompts


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A small CSV written atomically (a reader never sees half of it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def export_clips(prompts: Sequence[HeldOutPrompt], out_dir: str | Path) -> Path:
    """Copy each prompt's clip to ``out_dir/reference/<name><suffix>``; write ``out_dir/prompts.csv``."""
    reference = Path(out_dir) / REFERENCE_DIR
    reference.mkdir(parents=True, exist_ok=True)
    for prompt in prompts:
        with atomic_path(reference / f"{prompt.name}{prompt.reference.suffix}", suffix=prompt.reference.suffix) as tmp:
            shutil.copyfile(prompt.reference, tmp)
    return write_csv(Path(out_dir) / PROMPTS_FILE, ("name", "caption"), ((p.name, p.caption) for p in prompts))


def read_prompts(path: str | Path) -> list[tuple[str, str]]:
    """(name, caption) rows of a prompts CSV (header ``name,caption``), in file order."""
    from foleyflow.evaluation.suite import read_table

    table = read_table(path, "caption")
    empty = [name for name, caption in table.items() if not caption.strip()]
    if empty:
        raise InputError(f"{path}: empty caption for {', '.join(empty[:5])}")
    return list(table.items())


def export_edits(items: Sequence[Mapping[str, Any]], out_dir: str | Path) -> Path:
    """Write triplets (``TripletDataset`` items) as ``source/<id>.wav``, ``target/<id>.wav`` and a manifest."""
    from foleyflow.audio.io import write_audio
    from foleyflow.data.manifest import write_jsonl

    out_dir = Path(out_dir)
    rows = []
    for item in items:
        name = str(item["triplet_id"])
        for role in ("source", "target"):
            write_audio(out_dir / role / f"{name}.wav", item[role])
        rows.append({"id": name, "source": f"source/{name}.wav", "target": f"target/{name}.wav", "instruction": item["instruction"],
                     "task": item["task"], "source_caption": item["source_caption"], "target_caption": item["target_caption"]})
    return write_jsonl(out_dir / EDIT_MANIFEST, rows)
