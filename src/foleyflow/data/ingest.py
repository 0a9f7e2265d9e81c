"""`foleyflow data ingest`: an AudioCaps-style corpus (captions CSV + audio folder) as a foleyflow corpus.

CSV columns: ``caption`` (required); the audio file is found from ``file_name``/``file``/
``audio`` if present, else from ``audiocap_id``, ``youtube_id`` and ``start_time`` under the
usual AudioCaps names (``<audiocap_id>.*``, ``<youtube_id>_<start_time>.*``,
``Y<youtube_id>.*``, ``<youtube_id>.*``). Rows naming the same file (AudioCaps val/test give
five captions per clip) become one clip with several captions.

Every clip gets role "clip", its caption as label, and the event count of its first caption
(``events.count_events``). The builder uses clips of at most 3 events as bases X and
single-event clips (cut to their loudest 4 s) as A and B. The recording is the YouTube id,
so ``--split auto`` never puts two cuts of one video in different splits.
"""

from __future__ import annotations

import csv
import os
from functools import partial
from pathlib import Path

from foleyflow.data.corpus import CLIP, RawClip, assign_splits, process_clips, write_attribution
from foleyflow.data.events import count_events
from foleyflow.data.manifest import ClipRecord, write_clips
from foleyflow.data.sources.debian import read_file
from foleyflow.errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff")


def _candidates(row: dict) -> list[str]:
    for key in ("file_name", "file", "audio", "path"):
        if row.get(key):
            return [row[key]]
    names = []
    if row.get("audiocap_id"):
        names.append(row["audiocap_id"])
    yt, start = row.get("youtube_id"), row.get("start_time")
    if yt:
        if start not in (None, ""):
            names += [f"{yt}_{start}", f"{yt}_{float(start):.0f}", f"{yt}_{int(float(start)) * 1000}"]
        names += [f"Y{yt}", yt]
    return names


def find_audio(row: dict, audio_dir: Path, listing: dict[str, Path]) -> Path | None:
    """The file a CSV row refers to, by exact name or by stem with any audio suffix."""
    for name in _candidates(row):
        exact = audio_dir / name
        if exact.is_file():
            return exact
        stem = Path(name).stem if Path(name).suffix.lower() in AUDIO_SUFFIXES else name
        if stem in listing:
            return listing[stem]
    return None


def read_caption_rows(csv_path: str | os.PathLike) -> list[dict]:
    path = Path(csv_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "caption" not in reader.fieldnames:
            raise InputError(f"{path}: needs a 'caption' column (found {reader.fieldnames})")
        return [row for row in reader if (row.get("caption") or "").strip()]


def ingest_captioned(csv_path: str | os.PathLike, audio_dir: str | os.PathLike, corpus_dir: str | os.PathLike,
                     split: str = "auto", workers: int = 2, progress: bool = True) -> tuple[list[ClipRecord], int]:
    """Write the corpus; returns its clips and the number of CSV rows whose audio was not found."""
    audio_dir, corpus_dir = Path(audio_dir), Path(corpus_dir)
    if not audio_dir.is_dir():
        raise InputError(f"{audio_dir}: no such folder")
    listing = {p.stem: p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
    grouped: dict[Path, dict] = {}
    missing = 0
    for row in read_caption_rows(csv_path):
        path = find_audio(row, audio_dir, listing)
        if path is None:
            missing += 1
            continue
        entry = grouped.setdefault(path, {"row": row, "captions": []})
        entry["captions"].append(row["caption"].strip())
    if not grouped:
        raise InputError(f"{csv_path}: no row matched an audio file in {audio_dir}")
    raws = []
    for path, entry in sorted(grouped.items()):
        row, captions = entry["row"], entry["captions"]
        recording = row.get("youtube_id") or path.stem
        raws.append(RawClip(clip_id=f"ingested-{path.stem}", label=captions[0], role=CLIP, captions=captions,
                            source=Path(csv_path).name, original_path=path.name, licence="as distributed with the corpus",
                            recording=recording, load=partial(read_file, str(path)),
                            extra={"num_events": count_events(captions[0])}))
    clips = process_clips(raws, corpus_dir, workers, progress)
    if split == "auto":
        clips = _split_by_recording(clips)
    else:
        for clip in clips:
            clip.split = split
    write_clips(corpus_dir, clips)
    write_attribution(corpus_dir, clips, {Path(csv_path).name: f"Ingested from {csv_path} and {audio_dir}."})
    return clips, missing


def _split_by_recording(clips: list[ClipRecord]) -> list[ClipRecord]:
    """Captions are all distinct labels, so split over one pseudo-class: the recordings themselves."""
    labels = {c.clip_id: c.label for c in clips}
    for clip in clips:
        clip.label = "captioned"
    assign_splits(clips)
    for clip in clips:
        clip.label = labels[clip.clip_id]
    return clips
