"""The main job on the bundled examples (what `make demo` runs).

Until the shipped editor exists this computes each example's log-mel and writes its
spectrogram; later it edits the examples with the default editor.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.audio.mel import MelConfig, log_mel
from foleyflow.errors import InputError
from foleyflow.plotting import save_spectrograms_png

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def default_examples_dir() -> Path:
    """The repository's examples/ folder (present in a source checkout and an editable install)."""
    return Path(__file__).resolve().parents[2] / "examples"


@dataclass
class DemoResult:
    source: Path
    png: Path
    seconds: float
    frames: int
    mel_min: float
    mel_max: float
    elapsed_s: float

    def summary(self) -> str:
        return (
            f"{self.source.name}: {self.seconds:.2f} s -> log-mel {self.frames} frames x {MelConfig().n_mels} bins,"
            f" range [{self.mel_min:.2f}, {self.mel_max:.2f}], {self.elapsed_s * 1000:.0f} ms -> {self.png}"
        )


def run_demo(out_dir: str | os.PathLike, examples_dir: str | os.PathLike | None = None) -> list[DemoResult]:
    examples_dir = Path(examples_dir) if examples_dir is not None else default_examples_dir()
    clips = sorted(p for p in examples_dir.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if examples_dir.is_dir() else []
    if not clips:
        raise InputError(f"{examples_dir}: no example audio found (pass --examples DIR)")
    out_dir = Path(out_dir)
    results = []
    for clip in clips:
        start = time.perf_counter()
        audio = load_audio(clip)
        mel = log_mel(audio)[0].numpy()
        elapsed = time.perf_counter() - start
        png = save_spectrograms_png(out_dir / f"{clip.stem}_logmel.png", [(clip.name, mel)])
        results.append(DemoResult(clip, png, audio.size / SAMPLE_RATE, mel.shape[0], float(mel.min()), float(mel.max()), elapsed))
    return results
