"""Pack what a GPU training run needs into `.device/` (git-ignored), for the device tool's `carry`.

The lent GPU machine reaches no network and takes at most 64 MiB of working tree, so the run
cannot fetch the corpus or install packages there. This writes, under the cap:
  .device/wheels/  the packages foleyflow needs that the device image lacks (pure or cp312 wheels)
  .device/audio/   corpus clips of the train split as FLAC (lossless; about half a WAV), whole
                   clips in a seeded order until the size cap (the repo's own files travel too,
                   about 33 MiB, so about half the train clips fit); the test split never travels
  .device/PACK.json  what is in it (clip ids, bytes), to say in BENCHMARKS.md what was trained on
Run here, from the repo root, with the corpus built (`foleyflow data fetch`):  python tools/device/pack.py
Then on the device: `tools/device/train_vocoder.sh` (its header says how to call it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import soundfile as sf

from foleyflow.data.manifest import read_clips
from foleyflow.errors import InputError

# Missing from the device image's package list (/work/.library/device/KINDS.md); torch,
# transformers, peft, accelerate, safetensors, click, tqdm, numpy, scipy, matplotlib are there.
MISSING_ON_DEVICE = ("diffusers", "importlib_metadata", "soundfile", "cffi", "pycparser", "soxr")  # with what they import
PURE_PYTHON = ("diffusers", "importlib_metadata", "pycparser")
DEVICE_PYTHON = "3.12"
DEVICE_TREE_BYTES = 64 * 2**20  # the working tree the device tool sends, carried paths included


def tracked_bytes() -> int:
    """Bytes of the files git tracks: they travel beside the pack."""
    names = subprocess.run(["git", "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0")
    return sum(os.path.getsize(name) for name in map(os.fsdecode, names) if name and os.path.isfile(name))


def fetch_wheels(folder: Path) -> int:
    """The pinned wheels for the device's Python; the compiled ones with their libraries inside
    (soundfile's manylinux wheel carries libsndfile: its pure wheel would need the system's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MISSING_ON_DEVICE:
        platforms = ("any",) if name in PURE_PYTHON else ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                        DEVICE_PYTHON, *(f"--platform={p}" for p in platforms), "-d", str(folder), f"{name}=={version(name)}"],
                       check=True)
    return sum(p.stat().st_size for p in folder.glob("*.whl"))


def pack_audio(corpus: Path, folder: Path, budget: int, seed: int) -> list[str]:
    """Write train clips as FLAC in a seeded order until the next would pass ``budget`` bytes; their ids."""
    train = sorted(clip.clip_id for clip in read_clips(corpus) if clip.split == "train")
    random.Random(seed).shuffle(train)
    folder.mkdir(parents=True, exist_ok=True)
    packed, used = [], 0
    for clip_id in train:
        audio, rate = sf.read(corpus / "audio" / f"{clip_id}.wav", dtype="int16")
        path = folder / f"{clip_id}.flac"
        sf.write(path, audio, rate, format="FLAC", subtype="PCM_16")
        size = path.stat().st_size
        if used + size > budget:
            path.unlink()
            break
        packed.append(clip_id)
        used += size
    return packed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".device"))
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("FOLEYFLOW_HOME", "~/.cache/foleyflow")).expanduser() / "corpus")
    parser.add_argument("--max-mib", type=float, default=None,
                        help="cap on the pack (default: what the device's 64 MiB leaves beside the tracked files, less 2 MiB)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        read_clips(args.corpus)  # not a corpus: say so before anything is written
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    shutil.rmtree(args.out, ignore_errors=True)
    wheel_bytes = fetch_wheels(args.out / "wheels")
    cap = args.max_mib * 2**20 if args.max_mib is not None else DEVICE_TREE_BYTES - tracked_bytes() - 2 * 2**20
    budget = int(cap) - wheel_bytes
    clips = pack_audio(args.corpus, args.out / "audio", budget, args.seed)
    audio_bytes = sum(p.stat().st_size for p in (args.out / "audio").glob("*.flac"))
    summary = {"wheels": sorted(p.name for p in (args.out / "wheels").glob("*.whl")), "wheel_bytes": wheel_bytes,
               "clips": clips, "audio_bytes": audio_bytes, "split": "train", "seed": args.seed}
    (args.out / "PACK.json").write_text(json.dumps(summary, indent=1))
    print(f"{args.out}: {len(clips)} train clips ({audio_bytes / 2**20:.1f} MiB FLAC), "
          f"{len(summary['wheels'])} wheels ({wheel_bytes / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
