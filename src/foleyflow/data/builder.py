"""The RFM-Edit editing data set builder (SPEC 3): scenes, six triplets each, CLAP filter, splits.

Two kinds of base clip X, chosen by the corpus:
- *composed* (the Debian and synthetic corpora): an optional bed plus 1-3 events of distinct
  classes at random onsets and gains, never more than 3 events in all;
- *captioned* (an ingested AudioCaps-style corpus, role "clip"): a real clip whose caption
  counts at most 3 events; the A/B pool is the single-event clips, cut to their loudest
  ``event_seconds`` so that the edit region stays local.
A and B are single events of classes that X does not contain and that differ from each
other, so "Remove the dog barking" is never ambiguous.

Output folder (``$FOLEYFLOW_HOME/datasets/editing`` by default):
    scenes.jsonl     one recipe per base: X's parts, A and B (part, label, phrase, span)
    triplets.jsonl   six per scene: task, instruction, source/target mix names, captions, labels, edit spans
    build.json       settings, corpus fingerprint, counts, CLAP filter status, timings
    clap_scores.jsonl  every CLAP score of the filter (scene, mix, caption, score), when it ran
    chunks/          the resumable per-chunk results the above are merged from

Everything is drawn from ``numpy.random.default_rng([seed, split, index])``, so a build is
identical however it is chunked, parallelised or resumed.

``speed_range`` (train scenes of composed corpora only) plays each part at a speed drawn
log-uniformly in [1 / (1 + s), 1 + s], pitch and tempo together: a recording heard in many
scenes is then heard at many speeds, which is what a model that memorises its few recordings
lacks. The speeds come from a stream of their own, ``[seed, split, index, 2]``, so everything
else a scene draws is the same as without them, and val and test scenes never change.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from foleyflow.atomic import atomic_path
from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.data.clap_filter import CLAP_SCORES_FILE, CLAP_THRESHOLD, ClapScorer, score_in_batches, score_summary, skipped_record
from foleyflow.data.corpus import CLIP, FRAME, TARGET_RMS_DBFS, active_rms
from foleyflow.data.language import instruction
from foleyflow.data.manifest import SPLITS, ClipRecord, read_clips, read_jsonl, write_jsonl
from foleyflow.data.ontology import BED, EVENT, adhoc_class, sound_class
from foleyflow.data.recipes import (
    MIX_PEAK_LIMIT, MIXES, NUM_SAMPLES, SIX_TRIPLETS, ClipBank, Part, Scene, part_span, placed, render_parts, segment,
)
from foleyflow.errors import InputError

BASE_PEAK = 0.5  # X is kept this far below full scale, leaving room for A or B
EVENT_DB_RANGE = (-6.0, 2.0)  # gains of X's events, dB (clips are loudness-normalised)
BED_DB_RANGE = (-6.0, 0.0)
EDIT_DB_RANGE = (-3.0, 3.0)  # level of A/B relative to X's active RMS, dB
SCENES_FILE, TRIPLETS_FILE, BUILD_FILE = "scenes.jsonl", "triplets.jsonl", "build.json"


@dataclass
class BuildConfig:
    bases: int = 1000
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    bed_probability: float = 0.7
    max_base_events: int = 3
    event_seconds: float = 4.0
    chunk_size: int = 64
    speed_range: float = 0.0  # train scenes' parts play at speeds in [1 / (1 + s), 1 + s] (module docstring)

    def settings(self) -> dict:
        """The config as a build records it; a zero ``speed_range`` is left out, so that builds made
        before speeds existed still resume."""
        settings = asdict(self)
        if not self.speed_range:
            del settings["speed_range"]
        return settings

    def bases_per_split(self) -> dict[str, int]:
        val = round(self.bases * self.val_fraction)
        test = round(self.bases * self.test_fraction)
        return {"train": self.bases - val - test, "val": val, "test": test}


@dataclass
class Pools:
    """The clips of one split that scenes may use, grouped by class."""

    beds: dict[str, list[ClipRecord]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[ClipRecord]] = field(default_factory=lambda: defaultdict(list))
    bases: list[ClipRecord] = field(default_factory=list)  # captioned clips usable as X

    @property
    def captioned(self) -> bool:
        return bool(self.bases)

    @classmethod
    def of_split(cls, clips: list[ClipRecord], split: str, max_base_events: int = 3) -> "Pools":
        pools = cls()
        for clip in clips:
            if clip.split != split:
                continue
            if clip.role == CLIP and clip.num_events <= max_base_events:
                pools.bases.append(clip)
            if clip.role == BED:
                pools.beds[clip.label].append(clip)
            elif usable_as_event(clip):
                pools.events[clip.label].append(clip)
        return pools


def usable_as_event(clip: ClipRecord) -> bool:
    """A or B, or an event of X, may be this clip: a single event (an event clip, or a captioned
    clip counting one)."""
    return clip.role in (EVENT, CLIP) and clip.num_events == 1


def _db(value: float) -> float:
    return float(10.0 ** (value / 20.0))


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _pick_labels(rng: np.random.Generator, groups: dict[str, list], count: int, exclude: set[str]) -> list[str]:
    labels = sorted(label for label in groups if label not in exclude and groups[label])
    if len(labels) < count:
        raise InputError(f"the split has too few event classes ({len(labels)}) to draw {count} distinct ones")
    return [labels[i] for i in rng.choice(len(labels), size=count, replace=False)]


def _loudest_window(audio: np.ndarray, length: int) -> int:
    """Start of the ``length``-sample window with the most energy (frame resolution)."""
    if len(audio) <= length:
        return 0
    energy = np.convolve(audio.astype(np.float64) ** 2, np.ones(FRAME), mode="valid")[::FRAME]
    window = max(1, length // FRAME)
    sums = np.convolve(energy, np.ones(window), mode="valid")
    return int(min(np.argmax(sums) * FRAME, len(audio) - length))


def _event_part(rng, clip: ClipRecord, bank, gain: float, event_samples: int, speed: float = 1.0) -> Part:
    audio = bank(clip.clip_id)
    window = int(round(event_samples * speed))  # the clip samples that last event_samples at this speed
    offset, length = 0, 0
    if len(audio) > window:
        offset, length = _loudest_window(audio, window), window
    used = len(segment(audio, Part(clip.clip_id, 0, gain, offset, length, speed=speed)))
    onset = int(rng.integers(0, max(1, NUM_SAMPLES - used + 1)))
    return Part(clip.clip_id, onset, gain, offset, length, speed=speed)


def scene_speeds(config: BuildConfig, split: str, index: int) -> Iterator[float]:
    """The speeds of a scene's parts in the order they are drawn: all 1 unless ``speed_range`` is
    set and the scene is a train scene (module docstring)."""
    if config.speed_range <= 0 or split != "train":
        return itertools.repeat(1.0)
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index, 2])
    bound = math.log1p(config.speed_range)
    return (round(float(np.exp(rng.uniform(-bound, bound))), 4) for _ in itertools.count())


def _composed_base(rng, pools: Pools, bank, config: BuildConfig,
                   speeds: Iterator[float]) -> tuple[list[Part], list[str], list[str], list[str]]:
    parts, labels, sentences, roles = [], [], [], []
    use_bed = bool(pools.beds) and rng.random() < config.bed_probability
    if use_bed:
        label = _pick(rng, sorted(pools.beds))
        clip = _pick(rng, pools.beds[label])
        offset = int(rng.integers(0, max(1, clip.num_samples // 2)))
        parts.append(Part(clip.clip_id, 0, _db(rng.uniform(*BED_DB_RANGE)), offset, 0, loop=True, speed=next(speeds)))
        labels.append(label)
        sentences.append(_pick(rng, list(sound_class(label).sentences)))
        roles.append(BED)
    n_events = int(rng.integers(1, config.max_base_events - len(parts) + 1))
    event_samples = int(config.event_seconds * SAMPLE_RATE)
    for label in _pick_labels(rng, pools.events, n_events, set(labels)):
        clip = _pick(rng, pools.events[label])
        parts.append(_event_part(rng, clip, bank, _db(rng.uniform(*EVENT_DB_RANGE)), event_samples, next(speeds)))
        labels.append(label)
        sentences.append(_pick(rng, list(sound_class(label).sentences)))
        roles.append(EVENT)
    return parts, labels, sentences, roles


def _captioned_base(rng, pools: Pools) -> tuple[list[Part], list[str], list[str], list[str]]:
    clip = _pick(rng, pools.bases)
    part = Part(clip.clip_id, 0, 1.0, 0, min(clip.num_samples, NUM_SAMPLES))
    return [part], [clip.label], [clip.caption], [BED]


def _limit_peak(parts: list[Part], bank, peak_limit: float) -> list[Part]:
    """Scale every gain of X together so that X peaks at most at ``peak_limit``."""
    peak = float(np.abs(render_parts(parts, bank)).max())
    if peak <= peak_limit:
        return parts
    scale = peak_limit / peak
    return [replace(p, gain=p.gain * scale) for p in parts]


def _edit_gain(x: np.ndarray, event: Part, bank, relative_db: float) -> float:
    """A's gain: ``relative_db`` above X's active RMS, lowered until X + A cannot clip."""
    x_level = active_rms(x) if np.abs(x).max() > 0 else 10 ** (TARGET_RMS_DBFS / 20)
    gain = x_level * _db(relative_db) / active_rms(segment(bank(event.clip_id), event))
    # x + placed(A) is bit-identical to render_parts(X + [A]): the same float32 additions in order.
    while float(np.abs(x + placed(replace(event, gain=gain), bank)).max()) > MIX_PEAK_LIMIT:
        gain *= 0.9
    return float(gain)


def another_clip_of_class(scene: Scene, name: str, x: np.ndarray, clips: list[ClipRecord], bank, rng: np.random.Generator,
                          event_seconds: float = BuildConfig.event_seconds) -> Part | None:
    """Event ``name`` ("A" or "B") of ``scene`` drawn again from another clip of its class, placed at
    the same onset and by the same level rule (``relative_db`` above X's active RMS, lowered only
    against clipping; ``x`` is the scene's bare mix "X"): what a perfect sampler of the class would
    put in. A benchmark reference (``bench edit --perfect-sampler``), not part of any build.

    The clip is another recording of the class from the scene's own split where there is one (held
    out stays held out), else another recording from any split, else another cut of the same
    recording (many classes come from a single recording); None when the class has no other clip.
    """
    event = scene.events[name]
    own = event["part"]
    single = [c for c in clips if c.label == event["label"] and usable_as_event(c)]
    own_recording = next((c.recording for c in single if c.clip_id == own.clip_id), None)
    others = [c for c in single if c.clip_id != own.clip_id]
    groups = ([c for c in others if c.recording != own_recording and c.split == scene.split],
              [c for c in others if c.recording != own_recording], others)
    pool = next((group for group in groups if group), None)
    if pool is None:
        return None
    draft = replace(_event_part(rng, _pick(rng, pool), bank, 1.0, int(event_seconds * SAMPLE_RATE)), onset=own.onset)
    return replace(draft, gain=_edit_gain(x, draft, bank, event["relative_db"]))


def draw_scene(index: int, split: str, pools: Pools, bank, config: BuildConfig) -> Scene:
    """Base X and events A, B for scene ``index`` of ``split`` (deterministic in seed, split, index)."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    speeds = scene_speeds(config, split, index) if not pools.captioned else itertools.repeat(1.0)
    if pools.captioned:
        parts, labels, sentences, roles = _captioned_base(rng, pools)
    else:
        parts, labels, sentences, roles = _composed_base(rng, pools, bank, config, speeds)
    parts = _limit_peak(parts, bank, BASE_PEAK)
    x = render_parts(parts, bank)
    event_samples = int(config.event_seconds * SAMPLE_RATE)
    events = {}
    for name, label in zip("AB", _pick_labels(rng, pools.events, 2, set(labels))):
        clip = _pick(rng, [c for c in pools.events[label] if c.clip_id not in {p.clip_id for p in parts}] or pools.events[label])
        relative_db = float(rng.uniform(*EDIT_DB_RANGE))
        draft = _event_part(rng, clip, bank, 1.0, event_samples, next(speeds))
        part = replace(draft, gain=_edit_gain(x, draft, bank, relative_db))
        sound = adhoc_class(clip.caption) if clip.role == CLIP else sound_class(label)
        events[name] = {"part": part, "label": label, "relative_db": relative_db,
                        "phrase": _pick(rng, list(sound.phrases)), "sentence": _pick(rng, list(sound.sentences)),
                        "span": list(part_span(part, bank))}
    return Scene(f"{split}-{index:07d}", split, [config.seed, SPLITS.index(split), index], parts, labels, sentences, roles, events)


def scene_triplets(scene: Scene) -> list[dict]:
    """The six triplets of SPEC 3 for one scene, with instructions, captions, labels and edit spans."""
    rng = np.random.default_rng(scene.seed + [1])  # instruction wording, independent of the audio draw
    triplets = []
    for k, (task, names, source, target) in enumerate(SIX_TRIPLETS):
        phrases = [scene.events[n]["phrase"] for n in names]
        triplets.append({
            "triplet_id": f"{scene.scene_id}-{k}", "scene_id": scene.scene_id, "split": scene.split, "task": task,
            "instruction": instruction(task, phrases[0], phrases[1] if len(phrases) > 1 else None, rng),
            "source": source, "target": target,
            "source_caption": scene.caption(source), "target_caption": scene.caption(target),
            "labels": scene.mix_labels(target), "edit_labels": [scene.events[n]["label"] for n in names],
            "edit_spans": [scene.events[n]["span"] for n in names],
        })
    return triplets


# ---- parallel, resumable chunks ----------------------------------------------------------

_WORKER: dict = {}


def _init_worker(corpus_dir: str, config: dict) -> None:
    clips = read_clips(corpus_dir)
    cfg = BuildConfig(**config)
    _WORKER.update(bank=ClipBank(corpus_dir), config=cfg,
                   pools={s: Pools.of_split(clips, s, cfg.max_base_events) for s in SPLITS})


def _build_chunk(task: tuple[str, int, int, str]) -> tuple[str, int, float]:
    split, start, stop, path = task
    bank, config, pools = _WORKER["bank"], _WORKER["config"], _WORKER["pools"][split]
    began = time.perf_counter()
    rows = []
    for index in range(start, stop):
        scene = draw_scene(index, split, pools, bank, config)
        rows.append({"scene": scene.to_dict(), "triplets": scene_triplets(scene)})
    write_jsonl(path, rows)
    return path, (stop - start) * len(SIX_TRIPLETS), time.perf_counter() - began


def corpus_fingerprint(corpus_dir: Path) -> str:
    return hashlib.sha1((Path(corpus_dir) / "clips.jsonl").read_bytes()).hexdigest()[:16]


def _check_pools(clips: list[ClipRecord], config: BuildConfig) -> None:
    for split, count in config.bases_per_split().items():
        pools = Pools.of_split(clips, split, config.max_base_events)
        if count and len(pools.events) < 2 + (0 if pools.captioned else 1):
            raise InputError(f"split {split!r} has {len(pools.events)} single-event classes; at least 3 are needed "
                             "(X needs one, A and B two more of other classes)")
        if count and pools.captioned and len(pools.events) < 2:
            raise InputError(f"split {split!r} has too few single-event clips for A and B")


def _prepare_out(out_dir: Path, settings: dict, force: bool) -> Path:
    chunks = out_dir / "chunks"
    stamp = chunks / "settings.json"
    if force and chunks.exists():
        shutil.rmtree(chunks)
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise InputError(f"{out_dir} holds a build with other settings or another corpus; pass --force or another --out")
    chunks.mkdir(parents=True, exist_ok=True)
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
    return chunks


def build_editing_set(corpus_dir: str | Path, out_dir: str | Path, config: BuildConfig = BuildConfig(),
                      workers: int = 2, scorer: ClapScorer | None = None, force: bool = False,
                      progress: bool = True, clap_threshold: float = CLAP_THRESHOLD, skipped_reason: str | None = None) -> dict:
    """Build (or resume) the triplet set of ``corpus_dir`` into ``out_dir``; returns build.json's content.

    ``skipped_reason`` says in build.json why no ``scorer`` was given.
    """
    corpus_dir, out_dir = Path(corpus_dir).resolve(), Path(out_dir)
    clips = read_clips(corpus_dir)
    _check_pools(clips, config)
    settings = {"config": config.settings(), "corpus_dir": str(corpus_dir), "corpus": corpus_fingerprint(corpus_dir)}
    chunks = _prepare_out(out_dir, settings, force)
    tasks = []
    for split, count in config.bases_per_split().items():
        for start in range(0, count, config.chunk_size):
            path = chunks / f"{split}-{start:07d}.jsonl"
            if not path.is_file():  # resume: finished chunks are kept
                tasks.append((split, start, min(count, start + config.chunk_size), str(path)))
    began = time.perf_counter()
    rendered = _run_chunks(tasks, str(corpus_dir), config.settings(), workers, progress)
    wall = time.perf_counter() - began
    scenes, triplets = _merge_chunks(chunks, config)
    if scorer is None:
        clap = skipped_record(skipped_reason or "no CLAP scorer was given")
        (out_dir / CLAP_SCORES_FILE).unlink(missing_ok=True)  # a previous build's scores would mislead
    else:
        clap, scores = apply_clap_filter(scenes, triplets, scorer, ClipBank(corpus_dir), clap_threshold)
        write_jsonl(out_dir / CLAP_SCORES_FILE, scores)
    triplets = balance_tasks(triplets)
    write_jsonl(out_dir / SCENES_FILE, (s.to_dict() for s in scenes))
    write_jsonl(out_dir / TRIPLETS_FILE, triplets)
    report = {**settings, "num_scenes": len(scenes), "counts": count_triplets(triplets), "clap_filter": clap,
              "render": {"triplets": rendered, "wall_seconds": round(wall, 3), "workers": workers,
                         "triplets_per_second": round(rendered / wall, 2) if rendered and wall > 0 else None,
                         "note": "each scene renders X, X+A and X+B once (3 mixes for 6 triplets) and checks levels"}}
    with atomic_path(out_dir / BUILD_FILE) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def _run_chunks(tasks: list, corpus_dir: str, config: dict, workers: int, progress: bool) -> int:
    total = sum(stop - start for _, start, stop, _ in tasks) * len(SIX_TRIPLETS)
    rendered = 0
    with tqdm(total=total, desc="triplets", unit="trip", disable=not progress or not tasks) as bar:
        if workers <= 1:
            _init_worker(corpus_dir, config)
            results = map(_build_chunk, tasks)
            for _, count, _ in results:
                rendered += count
                bar.update(count)
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(corpus_dir, config)) as pool:
                for _, count, _ in pool.map(_build_chunk, tasks):
                    rendered += count
                    bar.update(count)
    return rendered


def _merge_chunks(chunks: Path, config: BuildConfig) -> tuple[list[Scene], list[dict]]:
    scenes, triplets = [], []
    for split, count in config.bases_per_split().items():
        for start in range(0, count, config.chunk_size):
            for row in read_jsonl(chunks / f"{split}-{start:07d}.jsonl"):
                scenes.append(Scene.from_dict(row["scene"]))
                triplets.extend(row["triplets"])
    return scenes, triplets


def apply_clap_filter(scenes: list[Scene], triplets: list[dict], scorer: ClapScorer, bank,
                      threshold: float = CLAP_THRESHOLD) -> tuple[dict, list[dict]]:
    """Keep triplets whose source and target both score above ``threshold`` against their captions (in place).

    Returns the build.json record and every score (one row per scene and mix).
    """
    audios, captions, keys = [], [], []
    for scene in scenes:
        for mix in MIXES:
            audios.append(scene.render(mix, bank))
            captions.append(scene.caption(mix))
            keys.append((scene.scene_id, mix))
    values = score_in_batches(scorer, audios, captions)
    scores = dict(zip(keys, values))
    before = len(triplets)
    triplets[:] = [t for t in triplets if scores[(t["scene_id"], t["source"])] > threshold
                   and scores[(t["scene_id"], t["target"])] > threshold]
    record = {"applied": True, "threshold": threshold, "scorer": getattr(scorer, "name", type(scorer).__name__),
              "kept": len(triplets), "dropped": before - len(triplets), "scores": score_summary(values),
              "mixes_below_threshold": int((values <= threshold).sum()), "scores_file": CLAP_SCORES_FILE}
    rows = [{"scene_id": scene_id, "mix": mix, "caption": caption, "score": round(float(value), 6)}
            for (scene_id, mix), caption, value in zip(keys, captions, values)]
    return record, rows


def balance_tasks(triplets: list[dict]) -> list[dict]:
    """Within each split keep the same number of add, remove and replace triplets (the first by id)."""
    by_split_task: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in triplets:
        by_split_task[(t["split"], t["task"])].append(t)
    keep: set[str] = set()
    for split in {t["split"] for t in triplets}:
        groups = [sorted(by_split_task[(split, task)], key=lambda t: t["triplet_id"]) for task in ("add", "remove", "replace")]
        n = min(len(g) for g in groups)
        keep |= {t["triplet_id"] for g in groups for t in g[:n]}
    return [t for t in triplets if t["triplet_id"] in keep]


def count_triplets(triplets: list[dict]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for t in triplets:
        counts[t["split"]][t["task"]] += 1
    return {split: dict(sorted(c.items())) for split, c in sorted(counts.items())}
