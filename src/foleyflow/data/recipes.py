"""Scene recipes and their deterministic rendering (SPEC 3).

A *part* places one corpus clip in the 10.24 s frame: which samples of the clip, where, at
which linear gain, at which speed (a training augmentation; 1 in held-out scenes), and whether
it loops (beds fill the frame). A *scene* is the base clip X
(a list of parts) plus the two single-event parts A and B drawn for it. The three mixes

    X,   X + A = parts(X) + [A],   X + B = parts(X) + [B]

are rendered by one function, ``render_parts``, which adds parts in order in float32 with no
normalisation afterwards. So "Remove A" on X + A gives back X sample for sample: X + A is
one recipe (A's onset and gain were fixed when the scene was drawn, with the scene's seed)
reused by every triplet that contains it. Levels are chosen at build time so that no mix
clips (``MIX_PEAK_LIMIT``), which is what makes a post-mix normalisation unnecessary.

The six triplets of a scene (SPEC 3, step 2) are named by their source and target mixes:
    add A: X -> XA    add B: X -> XB    remove A: XA -> X    remove B: XB -> X
    replace A with B: XA -> XB          replace B with A: XB -> XA
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.audio.mel import TANGO_NUM_SAMPLES

NUM_SAMPLES = TANGO_NUM_SAMPLES  # 10.24 s at 16 kHz
LOOP_CROSSFADE = int(0.1 * SAMPLE_RATE)
MIX_PEAK_LIMIT = 0.98
MIXES = ("X", "XA", "XB")
TASKS = ("add", "remove", "replace")
# (task, edited event(s), source mix, target mix) for the six triplets of SPEC 3.
SIX_TRIPLETS = (
    ("add", ("A",), "X", "XA"),
    ("add", ("B",), "X", "XB"),
    ("remove", ("A",), "XA", "X"),
    ("remove", ("B",), "XB", "X"),
    ("replace", ("A", "B"), "XA", "XB"),
    ("replace", ("B", "A"), "XB", "XA"),
)


@dataclass(frozen=True)
class Part:
    """One clip placed in the frame: ``clip[offset : offset + length] * gain`` starting at ``onset``,
    played ``speed`` times as fast (pitch and tempo together, as a tape would)."""

    clip_id: str
    onset: int
    gain: float
    offset: int = 0
    length: int = 0  # 0: to the clip's end; in the clip's own samples, before the speed change
    loop: bool = False  # tile the segment (with a crossfade) until the frame is full
    speed: float = 1.0

    def to_dict(self) -> dict:
        row = asdict(self)
        if self.speed == 1.0:  # recipes written before speeds existed keep their JSON, and so their cache keys
            del row["speed"]
        return row

    @classmethod
    def from_dict(cls, row: dict) -> "Part":
        return cls(**row)


class ClipBank:
    """Corpus audio by clip id, read once and kept (an LRU of ``capacity`` clips)."""

    def __init__(self, corpus_dir: str | Path, capacity: int = 4096):
        self.corpus_dir = Path(corpus_dir)
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, clip_id: str) -> np.ndarray:
        audio = self._cache.get(clip_id)
        if audio is None:
            audio = load_audio(self.corpus_dir / "audio" / f"{clip_id}.wav", max_seconds=None)
            self._cache[clip_id] = audio
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(clip_id)
        return audio


def segment(audio: np.ndarray, part: Part) -> np.ndarray:
    """The samples of ``audio`` that ``part`` plays, at its speed (everything that measures a part's
    audio, its span and its level, reads it through here)."""
    end = len(audio) if part.length <= 0 else part.offset + part.length
    return change_speed(audio[part.offset : end], part.speed)


def change_speed(audio: np.ndarray, speed: float) -> np.ndarray:
    """``audio`` played ``speed`` times as fast: read as if recorded at ``speed`` x the sample rate and
    resampled (soxr) back, so that duration scales by 1/speed and every frequency by speed."""
    if speed == 1.0 or len(audio) == 0:
        return audio
    return soxr.resample(audio, SAMPLE_RATE * speed, SAMPLE_RATE, quality="HQ").astype(np.float32)


def loop_to_length(audio: np.ndarray, length: int, crossfade: int = LOOP_CROSSFADE) -> np.ndarray:
    """Tile ``audio`` with equal-power crossfades until it is ``length`` samples long."""
    if len(audio) >= length:
        return audio[:length]
    crossfade = min(crossfade, len(audio) // 4)
    fade_in = np.sin(np.linspace(0, np.pi / 2, crossfade, dtype=np.float32)) if crossfade else np.zeros(0, np.float32)
    fade_out = fade_in[::-1]
    out = audio.astype(np.float32)
    while len(out) < length:
        if crossfade:
            joint = out[-crossfade:] * fade_out + audio[:crossfade] * fade_in
            out = np.concatenate([out[:-crossfade], joint, audio[crossfade:]])
        else:
            out = np.concatenate([out, audio])
    return out[:length]


def placed(part: Part, bank, num_samples: int = NUM_SAMPLES) -> np.ndarray:
    """The part alone in an otherwise silent frame, gain applied, float32."""
    audio = segment(bank(part.clip_id), part)
    if part.loop:
        audio = loop_to_length(audio, num_samples - part.onset)
    frame = np.zeros(num_samples, dtype=np.float32)
    end = min(num_samples, part.onset + len(audio))
    frame[part.onset : end] = audio[: end - part.onset] * np.float32(part.gain)
    return frame


def render_parts(parts: list[Part], bank, num_samples: int = NUM_SAMPLES) -> np.ndarray:
    """Sum parts in order (float32, no normalisation): the one definition of every mix."""
    mix = np.zeros(num_samples, dtype=np.float32)
    for part in parts:
        mix += placed(part, bank, num_samples)
    return mix


def part_span(part: Part, bank, num_samples: int = NUM_SAMPLES) -> tuple[int, int]:
    """[start, end) samples a part occupies in the frame: the ground-truth edit region of an event."""
    length = num_samples - part.onset if part.loop else len(segment(bank(part.clip_id), part))
    return part.onset, min(num_samples, part.onset + length)


def edit_mask(spans: list[list[int]] | list[tuple[int, int]], num_frames: int = 1024, hop: int = 160) -> np.ndarray:
    """Per-mel-frame boolean mask of the edit region.

    Frame f stands for samples [f * hop, (f + 1) * hop) (the log-mel's ``samples // hop`` frames,
    see ``foleyflow.audio.mel``); it is True when that hop overlaps any span.
    """
    mask = np.zeros(num_frames, dtype=bool)
    for start, end in spans:
        if end > start:
            first, last = start // hop, (end - 1) // hop
            mask[max(0, first) : min(num_frames, last + 1)] = True
    return mask


@dataclass
class Scene:
    """Base clip X and the events A and B drawn for it, with everything needed to render and describe them."""

    scene_id: str
    split: str
    seed: list[int]
    parts: list[Part]
    labels: list[str]  # one per part of X
    sentences: list[str]  # one per part of X, for the caption
    roles: list[str]
    events: dict[str, dict]  # "A"/"B" -> {"part", "label", "phrase", "sentence", "relative_db"}

    def mix_parts(self, mix: str) -> list[Part]:
        if mix == "X":
            return list(self.parts)
        return list(self.parts) + [self.events[mix[1]]["part"]]

    def render(self, mix: str, bank, num_samples: int = NUM_SAMPLES) -> np.ndarray:
        return render_parts(self.mix_parts(mix), bank, num_samples)

    def mix_labels(self, mix: str) -> list[str]:
        return list(self.labels) + ([self.events[mix[1]]["label"]] if mix != "X" else [])

    def caption(self, mix: str) -> str:
        from foleyflow.data.language import compose_caption

        sentences, roles = list(self.sentences), list(self.roles)
        if mix != "X":
            sentences.append(self.events[mix[1]]["sentence"])
            roles.append("event")
        return compose_caption(sentences, roles)

    def to_dict(self) -> dict:
        row = asdict(self)
        row["parts"] = [p.to_dict() for p in self.parts]
        row["events"] = {k: {**v, "part": v["part"].to_dict()} for k, v in self.events.items()}
        return row

    @classmethod
    def from_dict(cls, row: dict) -> "Scene":
        row = dict(row)
        row["parts"] = [Part.from_dict(p) for p in row["parts"]]
        row["events"] = {k: {**v, "part": Part.from_dict(v["part"])} for k, v in row["events"].items()}
        return cls(**row)
