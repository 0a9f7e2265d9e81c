"""`foleyflow data fetch`: build the corpus from every available source.

Sources: the Debian sound packages (``sources.debian``), speech rendered with espeak-ng and
instrument notes rendered with fluidsynth (``sources.render``), or the procedural source
(``sources.synthetic``). A renderer or package that is missing is reported with the command
that installs it, and the corpus is built from the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from foleyflow.data.corpus import RawClip, write_corpus
from foleyflow.data.manifest import ClipRecord
from foleyflow.errors import InputError

REAL_SOURCES = ("debian", "speech", "instruments")
SOURCES = REAL_SOURCES + ("debian-extra", "synthetic")  # debian-extra: only when named (sources.debian.EXTRA_PACKAGES)


def gather_raw_clips(sources: tuple[str, ...], say: Callable[[str], None] = print) -> tuple[list[RawClip], dict[str, str]]:
    """Raw clips and per-source licence notes from the named sources (skipping unavailable ones)."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise InputError(f"unknown source(s) {sorted(unknown)}; choose from {', '.join(SOURCES)}")
    raws: list[RawClip] = []
    notes: dict[str, str] = {}
    if "synthetic" in sources:
        from foleyflow.data.sources.synthetic import LICENCE, synthetic_raw_clips

        raws += synthetic_raw_clips()
        notes["synthetic"] = LICENCE
    for source in ("debian", "debian-extra"):
        if source in sources:
            from foleyflow.data.sources import debian

            clips, debian_notes = debian.debian_raw_clips(say, debian.EXTRA_PACKAGES if source == "debian-extra" else None)
            raws += clips
            notes.update(debian_notes)
    if "speech" in sources:
        from foleyflow.data.sources.render import speech_raw_clips

        clips, note = speech_raw_clips(say)
        raws += clips
        notes.update(note)
    if "instruments" in sources:
        from foleyflow.data.sources.render import instrument_raw_clips

        clips, note = instrument_raw_clips(say)
        raws += clips
        notes.update(note)
    return raws, notes


def fetch_corpus(corpus_dir: str | Path, sources: tuple[str, ...] = REAL_SOURCES, workers: int = 2,
                 progress: bool = True, say: Callable[[str], None] = print) -> list[ClipRecord]:
    began = time.perf_counter()
    raws, notes = gather_raw_clips(sources, say)
    if not raws:
        raise InputError("no source produced any sound; see the messages above for how to install them")
    say(f"gathered {len(raws)} raw clips in {time.perf_counter() - began:.1f} s; processing ...")
    return write_corpus(corpus_dir, raws, notes, workers=workers, progress=progress, say=say)
