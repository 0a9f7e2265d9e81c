"""Writing an editing set's mixes to disk, for tools that want files instead of recipes.

Each scene's three mixes go to ``OUT/audio/<scene_id>/{X,XA,XB}.wav`` as 32-bit float WAV, so
a file holds exactly the samples the recipe renders (16-bit PCM would round them and break
"Remove A gives back X exactly"). A triplet's files are its ``source`` and ``target`` names.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from foleyflow.atomic import atomic_path
from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.data.builder import BUILD_FILE, SCENES_FILE
from foleyflow.data.manifest import read_json, read_jsonl
from foleyflow.data.recipes import MIXES, ClipBank, Scene


def mix_path(root: str | Path, scene_id: str, mix: str) -> Path:
    return Path(root) / "audio" / scene_id / f"{mix}.wav"


def materialize_mixes(root: str | Path, progress: bool = True) -> int:
    """Write every scene's mixes that are not on disk yet; returns the number written."""
    root = Path(root)
    bank = ClipBank(read_json(root / BUILD_FILE)["corpus_dir"])
    written = 0
    for row in tqdm(read_jsonl(root / SCENES_FILE), desc="mixes", disable=not progress):
        scene = Scene.from_dict(row)
        for mix in MIXES:
            path = mix_path(root, scene.scene_id, mix)
            if path.is_file():
                continue
            with atomic_path(path) as tmp:
                sf.write(str(tmp), scene.render(mix, bank), SAMPLE_RATE, subtype="FLOAT", format="WAV")
            written += 1
    return written
