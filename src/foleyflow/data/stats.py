"""`foleyflow data stats`: counts per class, split and task, and total durations."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from foleyflow.data.builder import BUILD_FILE, TRIPLETS_FILE
from foleyflow.data.manifest import SPLITS, read_clips, read_json, read_jsonl
from foleyflow.data.recipes import NUM_SAMPLES
from foleyflow.audio.io import SAMPLE_RATE


def corpus_stats(corpus_dir: str | Path) -> dict:
    clips = read_clips(corpus_dir)
    per_class: dict[str, Counter] = defaultdict(Counter)
    seconds: Counter = Counter()
    recordings: dict[str, set] = defaultdict(set)
    for clip in clips:
        per_class[clip.label][clip.split] += 1
        seconds[clip.split] += clip.num_samples / SAMPLE_RATE
        recordings[clip.split].add((clip.source, clip.recording))
    return {
        "clips": {s: sum(c[s] for c in per_class.values()) for s in SPLITS},
        "recordings": {s: len(recordings[s]) for s in SPLITS},
        "hours": {s: round(seconds[s] / 3600, 3) for s in SPLITS},
        "classes": {label: dict(c) for label, c in sorted(per_class.items())},
        "roles": dict(Counter(c.role for c in clips)),
        "sources": dict(Counter(c.source for c in clips)),
        "train_only_classes": sorted(l for l, c in per_class.items() if not (c["val"] and c["test"])),
    }


def editing_stats(root: str | Path) -> dict:
    root = Path(root)
    triplets = read_jsonl(root / TRIPLETS_FILE)
    build = read_json(root / BUILD_FILE)
    per_task: dict[str, Counter] = defaultdict(Counter)
    edit_classes: Counter = Counter()
    for t in triplets:
        per_task[t["split"]][t["task"]] += 1
        edit_classes.update(t["edit_labels"])
    hours = {s: round(sum(per_task[s].values()) * 2 * NUM_SAMPLES / SAMPLE_RATE / 3600, 3) for s in SPLITS}
    return {"triplets": {s: dict(sorted(per_task[s].items())) for s in SPLITS}, "hours_source_plus_target": hours,
            "scenes": build.get("num_scenes"), "edit_classes": dict(sorted(edit_classes.items())),
            "clap_filter": build.get("clap_filter"), "render": build.get("render"), "corpus_dir": build.get("corpus_dir")}


def format_corpus_stats(stats: dict) -> list[str]:
    lines = [f"corpus: {sum(stats['clips'].values())} clips, {len(stats['classes'])} classes, roles {stats['roles']}",
             "sources: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["sources"].items()))]
    for s in SPLITS:
        lines.append(f"  {s:<5} {stats['clips'][s]:>6} clips  {stats['recordings'][s]:>5} recordings  {stats['hours'][s]:.3f} h")
    lines.append(f"  {'class':<16}" + "".join(f"{s:>7}" for s in SPLITS))
    for label, counts in stats["classes"].items():
        lines.append(f"  {label:<16}" + "".join(f"{counts.get(s, 0):>7}" for s in SPLITS))
    if stats["train_only_classes"]:
        lines.append("train-only classes (fewer than 3 recordings): " + ", ".join(stats["train_only_classes"]))
    return lines


def format_editing_stats(stats: dict) -> list[str]:
    lines = [f"editing set: {stats['scenes']} scenes, corpus {stats['corpus_dir']}"]
    for s in SPLITS:
        counts = stats["triplets"][s]
        lines.append(f"  {s:<5} {sum(counts.values()):>7} triplets  " + "  ".join(f"{k} {v}" for k, v in counts.items())
                     + f"  ({stats['hours_source_plus_target'][s]:.2f} h of source+target audio)")
    lines.append(format_clap_filter(stats["clap_filter"] or {}))
    render = stats["render"] or {}
    if render.get("triplets_per_second"):
        lines.append(f"render: {render['triplets']} triplets in {render['wall_seconds']} s with {render['workers']} workers"
                     f" = {render['triplets_per_second']} triplets/s")
    lines.append("edit classes: " + ", ".join(f"{k} {v}" for k, v in stats["edit_classes"].items()))
    return lines


def format_clap_filter(clap: dict) -> str:
    if not clap.get("applied"):
        return f"CLAP filter: skipped (threshold {clap.get('threshold')}): {clap.get('reason')}"
    line = (f"CLAP filter: applied with {clap.get('scorer', 'a CLAP scorer')} at threshold {clap.get('threshold')}:"
            f" removed {clap.get('dropped')} triplets, kept {clap.get('kept')} (before task balancing)")
    summary = clap.get("scores") or {}
    if summary:
        line += f"; mix scores min {summary['min']}, median {summary['median']}, max {summary['max']} (all in {clap.get('scores_file')})"
    return line
