"""Turning raw sounds into corpus clips: trim, shorten, loudness-normalise, split, write.

Every source yields ``RawClip`` objects (metadata plus a loader for the audio at any rate);
``write_corpus`` processes them in parallel, assigns splits by recording and writes the
manifest, the WAVs and ATTRIBUTION.md. Processing one clip:

1. mono 16 kHz (``to_mono_at_rate``, soxr HQ);
2. trim leading and trailing silence (20 ms frames quieter than 45 dB below the loudest);
3. shorten: events to ``EVENT_MAX_SECONDS`` so that an edit region stays local, beds to
   ``BED_MAX_SECONDS``, captioned clips to 10.24 s; a short fade keeps the cut click-free;
4. loudness: the RMS of the active (non-silent) frames set to ``TARGET_RMS_DBFS``, then the
   peak capped at ``PEAK_CAP`` so that a scene of a bed and four events cannot clip.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from foleyflow.atomic import atomic_path
from foleyflow.audio.io import SAMPLE_RATE, to_mono_at_rate, write_audio
from foleyflow.data.manifest import CLIPS_FILE, SPLITS, ClipRecord, read_clips, write_clips
from foleyflow.data.ontology import BED, EVENT

CLIP = "clip"  # a whole captioned recording (ingested corpora): X as it is, or the source of A/B windows
EVENT_MAX_SECONDS = 4.0
BED_MAX_SECONDS = 20.0
CLIP_MAX_SECONDS = 10.24
MAX_SECONDS = {EVENT: EVENT_MAX_SECONDS, BED: BED_MAX_SECONDS, CLIP: CLIP_MAX_SECONDS}
MIN_SECONDS = {EVENT: 0.1, BED: 2.0, CLIP: 0.5}
SILENCE_DB = -45.0
FRAME = 320  # 20 ms
FADE_SECONDS = 0.01
TARGET_RMS_DBFS = -26.0
PEAK_CAP = 0.3


@dataclass
class RawClip:
    """A sound before processing: where it came from, what it is, and how to read it."""

    clip_id: str
    label: str
    role: str
    captions: list[str]
    source: str
    original_path: str
    licence: str
    recording: str
    load: Callable[[], tuple[np.ndarray, int]]  # -> (samples or (samples, channels), rate)
    extra: dict = field(default_factory=dict)


def active_frames(audio: np.ndarray, threshold_db: float = SILENCE_DB) -> np.ndarray:
    """Boolean per 20 ms frame: louder than ``threshold_db`` below the loudest frame."""
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME) if len(audio) >= FRAME else audio[None]
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    return 20 * np.log10(energy / energy.max()) > threshold_db


def trim_silence(audio: np.ndarray) -> np.ndarray:
    active = np.flatnonzero(active_frames(audio))
    if active.size == 0:
        return audio[:0]
    return audio[active[0] * FRAME : min(len(audio), (active[-1] + 1) * FRAME)]


def fade_edges(audio: np.ndarray, seconds: float = FADE_SECONDS) -> np.ndarray:
    n = min(int(seconds * SAMPLE_RATE), len(audio) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        audio = audio.copy()
        audio[:n] *= ramp
        audio[-n:] *= ramp[::-1]
    return audio


def active_rms(audio: np.ndarray) -> float:
    """RMS over the frames that are not silent (so a short event is not judged by its gaps)."""
    if len(audio) < FRAME:
        return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-12)
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    active = active_frames(audio)
    return float(np.sqrt(np.mean(frames[active] ** 2)) + 1e-12)


def normalise_loudness(audio: np.ndarray) -> np.ndarray:
    gain = 10 ** (TARGET_RMS_DBFS / 20) / active_rms(audio)
    peak = float(np.abs(audio).max()) * gain
    if peak > PEAK_CAP:
        gain *= PEAK_CAP / peak
    return (audio * gain).astype(np.float32)


def process_audio(data: np.ndarray, rate: int, role: str) -> np.ndarray | None:
    """Steps 1-4 of the module docstring; None when nothing usable is left."""
    audio = to_mono_at_rate(np.asarray(data, dtype=np.float32), rate)
    if audio.size == 0 or not np.isfinite(audio).all() or np.abs(audio).max() < 1e-4:
        return None
    audio = trim_silence(audio)
    limit = int(MAX_SECONDS[role] * SAMPLE_RATE)
    if audio.size > limit:
        audio = audio[:limit]
    if audio.size < MIN_SECONDS[role] * SAMPLE_RATE:
        return None
    return normalise_loudness(fade_edges(audio))


def _process_one(raw: RawClip, audio_dir: Path) -> ClipRecord | str:
    """The clip's record, or why it was left out ("undecodable" or "silent or too short")."""
    try:
        data, rate = raw.load()
    except Exception:  # a corrupt file in a package is skipped (and counted), not fatal
        return "undecodable"
    audio = process_audio(data, rate, raw.role)
    if audio is None:
        return "silent or too short"
    write_audio(audio_dir / f"{raw.clip_id}.wav", audio)
    return ClipRecord(
        clip_id=raw.clip_id, label=raw.label, role=raw.role, captions=list(raw.captions), source=raw.source,
        original_path=raw.original_path, licence=raw.licence, recording=raw.recording,
        num_samples=int(audio.size), num_events=int(raw.extra.get("num_events", 1)), extra=dict(raw.extra),
    )


def process_clips(raws: list[RawClip], corpus_dir: Path, workers: int = 2, progress: bool = True,
                  say: Callable[[str], None] | None = None) -> list[ClipRecord]:
    """Process and write every raw clip; ``say`` hears how many were left out and why."""
    audio_dir = Path(corpus_dir) / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        results = [_process_one(r, audio_dir) for r in tqdm(raws, desc="clips", disable=not progress)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = pool.map(_process_one, raws, [audio_dir] * len(raws), chunksize=8)
            results = list(tqdm(futures, total=len(raws), desc="clips", disable=not progress))
    left_out = Counter(r for r in results if isinstance(r, str))
    if say is not None and left_out:
        say("left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())))
    return [r for r in results if isinstance(r, ClipRecord)]


def _stable_fraction(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def assign_splits(clips: list[ClipRecord], val_fraction: float = 0.1, test_fraction: float = 0.1,
                  kept: Mapping[tuple[str, str], str] | None = None) -> list[ClipRecord]:
    """Split by recording within each class, so val and test hear recordings train never hears.

    Recordings of a class are ordered by a hash of their name (stable, seed-free) and fill val,
    then test, then train. A class with at least three recordings gives val and test at least one
    each; a class with fewer stays in train (listed by ``foleyflow data stats``).

    ``kept`` maps (label, recording) to a split given earlier (a corpus's previous clips.jsonl):
    those recordings keep it, and only the new ones are placed, in the same order, into the splits
    still short of their share. So a corpus that grows never moves a held-out recording into train,
    and a model's held-out figures stay held out. With nothing kept this is the plain rule.
    """
    kept = kept or {}
    by_class: dict[str, list[str]] = defaultdict(list)
    for clip in clips:
        if clip.recording not in by_class[clip.label]:
            by_class[clip.label].append(clip.recording)
    split_of: dict[tuple[str, str], str] = {}
    for label, recordings in by_class.items():
        n = len(recordings)
        quota = {"val": max(1, round(n * val_fraction)), "test": max(1, round(n * test_fraction))} if n >= 3 else {}
        taken = Counter(kept[(label, r)] for r in recordings if (label, r) in kept)
        for recording in sorted((r for r in recordings if (label, r) not in kept), key=lambda r: (_stable_fraction(r), r)):
            split = next((s for s, share in quota.items() if taken[s] < share), "train")
            taken[split] += 1
            split_of[(label, recording)] = split
    for clip in clips:
        clip.split = kept.get((clip.label, clip.recording)) or split_of[(clip.label, clip.recording)]
    return clips


SHIPPED_SPLITS = Path(__file__).resolve().parents[1] / "pretrained" / "corpus" / "splits.json"


def shipped_splits(path: Path | None = None) -> dict[tuple[str, str], str]:
    """(label, recording) -> split of the corpus the shipped models were trained and measured on.

    A fresh fetch with more sources (or more packages) than theirs starts from these, so that a
    recording the shipped models were measured on is never put into train, nor one they were
    trained on into val or test."""
    path = path or SHIPPED_SPLITS
    if not path.is_file():
        return {}
    return {(label, recording): split for label, recording, split in json.loads(path.read_text())["rows"]}


def previous_splits(corpus_dir: Path) -> dict[tuple[str, str], str]:
    """(label, recording) -> split of the corpus already in ``corpus_dir`` (empty when there is none)."""
    if not (corpus_dir / CLIPS_FILE).is_file():
        return {}
    return {(clip.label, clip.recording): clip.split for clip in read_clips(corpus_dir)}


def write_attribution(corpus_dir: Path, clips: Iterable[ClipRecord], notes: dict[str, str]) -> Path:
    """ATTRIBUTION.md: per source package, its licence and every clip's original path."""
    by_source: dict[str, list[ClipRecord]] = defaultdict(list)
    for clip in clips:
        by_source[clip.source].append(clip)
    lines = ["# Attribution", "", "The clips of this corpus were derived (resampled to 16 kHz mono, trimmed,",
             "loudness-normalised) from the sources below. Each keeps its original licence.", ""]
    for source in sorted(by_source):
        lines += [f"## {source}", "", notes.get(source, "").strip() or "(see the package's copyright file)", "",
                  "| clip | original | licence |", "|---|---|---|"]
        for clip in sorted(by_source[source], key=lambda c: c.clip_id):
            lines.append(f"| {clip.clip_id} | {clip.original_path.replace('|', '/')} | {clip.licence.replace('|', '/')} |")
        lines.append("")
    path = Path(corpus_dir) / "ATTRIBUTION.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_corpus(corpus_dir: str | os.PathLike, raws: list[RawClip], notes: dict[str, str] | None = None,
                 workers: int = 2, progress: bool = True, say: Callable[[str], None] | None = None) -> list[ClipRecord]:
    """Process ``raws`` into ``corpus_dir``: WAVs, clips.jsonl (with splits) and ATTRIBUTION.md.

    A corpus already in ``corpus_dir`` keeps its recordings' splits, and recordings the shipped
    models know keep theirs (``shipped_splits``); only new recordings are placed (``assign_splits``)."""
    corpus_dir = Path(corpus_dir)
    seen: set[str] = set()
    unique = [r for r in raws if not (r.clip_id in seen or seen.add(r.clip_id))]
    given = {**shipped_splits(), **previous_splits(corpus_dir)}  # read before anything in the folder is rewritten
    clips = assign_splits(process_clips(unique, corpus_dir, workers, progress, say), kept=given)
    kept = {f"{c.clip_id}.wav" for c in clips}
    for stale in (corpus_dir / "audio").glob("*.wav"):  # left by an earlier run with other rules
        if stale.name not in kept:
            stale.unlink()
    write_clips(corpus_dir, clips)
    write_attribution(corpus_dir, clips, notes or {})
    return clips


def split_counts(clips: Iterable[ClipRecord]) -> dict[str, int]:
    counts = {s: 0 for s in SPLITS}
    for clip in clips:
        counts[clip.split] = counts.get(clip.split, 0) + 1
    return counts
