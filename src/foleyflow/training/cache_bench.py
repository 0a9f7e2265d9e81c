"""Measure what the feature cache saves: seconds per training item, encoded on the fly vs read.

    python -m foleyflow.training.cache_bench --items 16 --vae paper
    python -m foleyflow.training.cache_bench --train-steps 3 --vae cpu --unet cpu-small

On the fly, each item is what a text-to-audio step needs without a cache: read a 10.24 s clip,
Tango's waveform preparation, log-mel, VAE encoding (posterior mean) and the caption's
text-encoder states. Cached, the same item is two safetensors reads. The VAE has the paper's
preset (AudioLDM's AutoencoderKL, SPEC 6) or the small "cpu" preset of ``foleyflow.models.vae``;
weights are random, which does not change the cost. The text encoder is the shipped MiniLM.

``--train-steps K`` measures what a training run sees instead: seconds per optimizer step of
the ``tta`` recipe through the shared trainer (data loading, forward, backward, AdamW, EMA),
reading the cache vs encoding every batch on the fly (``cache: false``), on synthetic clips,
with the one-off cost of filling the cache reported beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleyflow.audio.io import SAMPLE_RATE, load_audio, write_audio
from foleyflow.audio.mel import TANGO_NUM_SAMPLES, log_mel, tango_waveform_prep, to_vae_layout
from foleyflow.training.cache import CachedFeatures, FeatureCache, hash_file, hash_module, hash_text

VAE_PRESETS = ("paper", "cpu")


def build_encoders(vae_preset: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    from foleyflow.models.text import TextEncoder
    from foleyflow.models.vae import build_vae

    torch.manual_seed(0)
    return build_vae(vae_preset).eval(), TextEncoder("minilm").eval()


@torch.no_grad()
def encode_audio(vae: torch.nn.Module, paths: list[Path]) -> list[dict[str, torch.Tensor]]:
    from foleyflow.models.vae import encode

    waveforms = np.stack([tango_waveform_prep(load_audio(path)) for path in paths])
    latents = encode(vae, to_vae_layout(log_mel(waveforms)))
    return [{"latent": latent} for latent in latents]


@torch.no_grad()
def encode_text(text_encoder: torch.nn.Module, captions: list[str]) -> list[dict[str, torch.Tensor]]:
    states, mask = text_encoder.encode(captions)
    return [{"states": state[: int(length)]} for state, length in zip(states, mask.sum(1).tolist())]


def synthetic_clips(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"clip{index}.wav"
        write_audio(path, (0.1 * rng.standard_normal(TANGO_NUM_SAMPLES)).astype(np.float32), SAMPLE_RATE)
        paths.append(path)
    return paths


def measure(items: int, vae_shape: str, batch_size: int, work_dir: Path) -> dict[str, Any]:
    vae, text_encoder = build_encoders(vae_shape)
    paths = synthetic_clips(work_dir, items)
    captions = [f"sound number {index} with rain and a dog barking" for index in range(items)]

    started = time.perf_counter()
    for start in range(0, items, batch_size):
        encode_audio(vae, paths[start : start + batch_size])
        encode_text(text_encoder, captions[start : start + batch_size])
    on_the_fly = (time.perf_counter() - started) / items

    cache = FeatureCache(work_dir / "cache")
    started = time.perf_counter()
    # The hashes are part of the cached path's cost: a run computes them once, at start-up.
    vae_key, text_key = hash_module(vae, {"prep": "tango", "samples": TANGO_NUM_SAMPLES}), hash_module(text_encoder, {"max_length": 128})
    audio_keys, text_keys = [hash_file(path) for path in paths], [hash_text(caption) for caption in captions]
    hashing = time.perf_counter() - started
    cache.fill("latent", vae_key, list(zip(audio_keys, paths)), lambda batch: encode_audio(vae, batch), batch_size)
    cache.fill("text", text_key, list(zip(text_keys, captions)), lambda batch: encode_text(text_encoder, batch), batch_size)
    fill = time.perf_counter() - started

    dataset = CachedFeatures(cache, {"latent": vae_key, "text": text_key}, [{"latent": ("latent", a), "text": ("text", t)} for a, t in zip(audio_keys, text_keys)])
    started = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    cached = (time.perf_counter() - started) / items
    return {
        "items": items,
        "vae": vae_shape,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "on_the_fly_s_per_item": on_the_fly,
        "cached_s_per_item": cached,
        "speedup": on_the_fly / cached,
        "one_off_hash_s": hashing,
        "one_off_fill_s": fill,
    }


def measure_training(steps: int, vae_preset: str, unet_preset: str, batch_size: int, work_dir: Path, clip_seconds: float = 10.24,
                     vae_overrides: dict[str, Any] | None = None, unet_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seconds per ``tta`` training step with the feature cache and without it."""
    from foleyflow.models.codec import Codec
    from foleyflow.models.vae import build_vae

    torch.manual_seed(0)
    Codec(build_vae(vae_preset, **(vae_overrides or {}))).save_pretrained(work_dir / "codec")
    clips = synthetic_clips(work_dir, batch_size * (steps + 1))
    lines = [json.dumps({"audio": path.name, "caption": f"sound number {index} with rain and a dog barking"}) for index, path in enumerate(clips)]
    (work_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    options = {"train_manifest": str(work_dir / "train.jsonl"), "codec": str(work_dir / "codec"), "cache_dir": str(work_dir / "cache"),
               "clip_seconds": clip_seconds, "unet_preset": unet_preset, "unet_overrides": unet_overrides or {}}
    started, started_cpu = time.perf_counter(), time.process_time()
    _trainer(options, batch_size, work_dir / "fill")._build_data()  # fills the cache (the one-off cost)
    fill, fill_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    cached, cached_cpu = _seconds_per_step(_trainer(options, batch_size, work_dir / "cached"), steps)
    on_the_fly, on_the_fly_cpu = _seconds_per_step(_trainer({**options, "cache": False}, batch_size, work_dir / "on-the-fly"), steps)
    # CPU seconds of this process as well as wall seconds: on a machine shared with other jobs
    # the wall clock mostly measures the others, the CPU time (one thread) the work itself.
    return {
        "train_steps": steps,
        "batch_size": batch_size,
        "vae": vae_preset,
        "unet": unet_preset,
        "clip_seconds": clip_seconds,
        "torch_threads": torch.get_num_threads(),
        "on_the_fly_s_per_step": on_the_fly,
        "cached_s_per_step": cached,
        "speedup": on_the_fly / cached,
        "on_the_fly_cpu_s_per_step": on_the_fly_cpu,
        "cached_cpu_s_per_step": cached_cpu,
        "speedup_cpu": on_the_fly_cpu / cached_cpu,
        "one_off_fill_s": fill,
        "one_off_fill_cpu_s": fill_cpu,
        "fill_items": len(clips),
    }


def _trainer(options: dict[str, Any], batch_size: int, run_dir: Path):
    from accelerate.state import AcceleratorState

    from foleyflow.training.config import TrainConfig
    from foleyflow.training.recipes.tta import TTARecipe
    from foleyflow.training.trainer import Trainer

    AcceleratorState._reset_state(reset_partial_state=True)  # one Accelerate state per trainer
    config = TrainConfig.from_dict({"recipe": "tta", "recipe_options": options, "batch_size": batch_size, "val_batches": 0, "output_dir": str(run_dir)})
    return Trainer(config, TTARecipe(options))


def _seconds_per_step(trainer: Any, steps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of the trainer's step, batch loading included, after one warm-up step."""
    trainer._build()
    trainer._build_data()
    batches = trainer._batches()
    wall, cpu = [], []
    for _ in range(steps + 1):
        started, started_cpu = time.perf_counter(), time.process_time()
        trainer.train_step([next(batches)])
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return float(np.median(wall[1:])), float(np.median(cpu[1:]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--vae", choices=VAE_PRESETS, default="paper")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=0, help="Measure training steps (cached vs on the fly) instead of items.")
    parser.add_argument("--unet", default="cpu-small", help="UNet preset of the training measurement.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work_dir:
        if args.train_steps:
            report = measure_training(args.train_steps, args.vae, args.unet, args.batch_size, Path(work_dir))
        else:
            report = measure(args.items, args.vae, args.batch_size, Path(work_dir))
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
