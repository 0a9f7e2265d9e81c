"""Many prompts or edits into one folder, each clip timed, in the layout `foleyflow eval` reads.

``generate_folder`` writes ``<name>.wav`` per prompt and ``timing.csv`` (name,seconds);
``edit_folder`` writes ``<id>.wav`` per manifest row and ``timing.csv`` (id,seconds). The timing
file is written last, so a folder with one holds a finished run. A batch of prompts is sampled
together (one UNet call per step for the whole batch); each of its clips is charged the batch's
time divided by its size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from foleyflow.data.export import write_csv
from foleyflow.evaluation.editing import TIMING_FILE  # what `foleyflow eval` looks for beside the outputs


def generate_folder(generator: Any, prompts: Sequence[tuple[str, str]], out_dir: str | Path, *, steps: int | None = None, cfg: float | None = None,
                    sampler: str | None = None, seed: int = 0, duration: float | None = None, batch_size: int = 1) -> dict[str, float]:
    """One WAV per (name, caption) in ``out_dir``; clip k of the list gets the noise of seed + k."""
    from foleyflow.audio.io import write_audio

    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        began = time.perf_counter()
        audio = generator.generate([caption for _, caption in batch], steps=steps, cfg=cfg, sampler=sampler, seed=seed + start, duration=duration)
        elapsed = (time.perf_counter() - began) / len(batch)
        for (name, _), clip in zip(batch, audio):
            write_audio(out_dir / f"{name}.wav", clip)
            seconds[name] = elapsed
    write_csv(out_dir / TIMING_FILE, ("name", "seconds"), ((name, f"{value:.4f}") for name, value in seconds.items()))
    return seconds


@dataclass
class FolderEdits:
    """What ``edit_folder`` did: each edit's seconds, and the ids of the edits whose mask marked no
    frame (``EditResult.untouched``: their WAV is the source), in manifest order, so that a batch
    says as plainly as a single edit when it returned recordings unedited."""

    seconds: dict[str, float] = field(default_factory=dict)
    untouched: list[str] = field(default_factory=list)


def edit_folder(editor: Any, items: Sequence[Any], out_dir: str | Path, *, seed: int = 0, **edit_options: Any) -> FolderEdits:
    """One edited WAV per manifest item (``evaluation.editing.EditItem``), named by its id.

    Each edit is timed end to end from the source file to the edited audio (loading, encoding,
    solving, decoding), as a user running ``foleyflow edit`` would wait for it.
    """
    from foleyflow.audio.io import load_audio, write_audio

    out_dir = Path(out_dir)
    done = FolderEdits()
    for item in items:
        began = time.perf_counter()
        result = editor.edit(load_audio(item.source), item.instruction, seed=seed, **edit_options)
        done.seconds[item.id] = time.perf_counter() - began
        write_audio(out_dir / f"{item.id}.wav", result.audio)
        if result.untouched:
            done.untouched.append(item.id)
    write_csv(out_dir / TIMING_FILE, ("id", "seconds"), ((name, f"{value:.4f}") for name, value in done.seconds.items()))
    return done
