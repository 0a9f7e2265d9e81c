"""Finding audio files and pairing generated with reference files by name.

Pairs are made by file stem ("dog_01.wav" pairs with "dog_01.flac"). When a paired metric
cannot pair every file, the run stops and names the files without a partner; no metric
ever falls back to a sentinel value such as -1 (the reference toolbox's trap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from foleyflow.errors import InputError, preview

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64"})


@dataclass(frozen=True)
class Pair:
    name: str
    generated: Path
    reference: Path


def audio_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Stem -> path for every audio file directly inside ``folder`` (sorted by stem)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            if path.stem in files:
                raise InputError(f"{folder}: two audio files share the name {path.stem!r} ({files[path.stem].name}, {path.name})")
            files[path.stem] = path
    if not files:
        raise InputError(f"{folder}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def pair_by_name(generated: dict[str, Path], reference: dict[str, Path]) -> list[Pair]:
    """One pair per shared stem; InputError naming the unpaired files if any side has extras."""
    only_generated = sorted(set(generated) - set(reference))
    only_reference = sorted(set(reference) - set(generated))
    if only_generated or only_reference:
        problems = []
        if only_reference:
            problems.append(f"{len(only_reference)} reference files have no generated file ({preview(only_reference)})")
        if only_generated:
            problems.append(f"{len(only_generated)} generated files have no reference file ({preview(only_generated)})")
        raise InputError("cannot pair files by name: " + "; ".join(problems))
    return [Pair(name, generated[name], reference[name]) for name in sorted(generated)]
