"""The corpus manifest: one JSON line per clip, beside an ``audio/`` folder of 16 kHz mono WAVs.

A corpus folder holds ``clips.jsonl`` (the records below), ``audio/<clip_id>.wav`` and
``ATTRIBUTION.md``. Every corpus foleyflow knows (the Debian-package corpus, the synthetic
one, an ingested AudioCaps-style corpus) is written in this one form, so the triplet builder
and the datasets never care where the sound came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError

SPLITS = ("train", "val", "test")
CLIPS_FILE = "clips.jsonl"


@dataclass
class ClipRecord:
    clip_id: str
    label: str  # class name from the ontology (or the caption, for an ingested corpus)
    role: str  # "event" or "bed"
    captions: list[str]
    source: str  # package or corpus name
    original_path: str
    licence: str
    recording: str  # clips cut from one recording share this; splits never divide it
    split: str = "train"
    num_samples: int = 0
    num_events: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def caption(self) -> str:
        return self.captions[0]

    @property
    def seconds(self) -> float:
        from foleyflow.audio.io import SAMPLE_RATE

        return self.num_samples / SAMPLE_RATE

    def audio_path(self, corpus_dir: Path) -> Path:
        return Path(corpus_dir) / "audio" / f"{self.clip_id}.wav"


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write dicts as JSON lines, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def numbered_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line of a JSON-lines file, so that a caller's
    own checks can name the line; a line that is not JSON is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [row for _, row in numbered_jsonl(path)]


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg})") from None


def write_clips(corpus_dir: str | os.PathLike, clips: Iterable[ClipRecord]) -> Path:
    return write_jsonl(Path(corpus_dir) / CLIPS_FILE, (asdict(c) for c in sorted(clips, key=lambda c: c.clip_id)))


def read_clips(corpus_dir: str | os.PathLike) -> list[ClipRecord]:
    """The corpus's clip records; raises InputError when the folder is not a corpus."""
    path = Path(corpus_dir) / CLIPS_FILE
    if not path.is_file():
        raise InputError(f"{corpus_dir}: not a foleyflow corpus (no {CLIPS_FILE}; run `foleyflow data fetch` or `data ingest`)")
    known = {f.name for f in fields(ClipRecord)}
    clips = []
    for row in read_jsonl(path):
        missing = {"clip_id", "label", "role", "captions"} - row.keys()
        if missing:
            raise InputError(f"{path}: a record lacks {sorted(missing)}")
        clips.append(ClipRecord(**{k: v for k, v in row.items() if k in known}))
    return clips
