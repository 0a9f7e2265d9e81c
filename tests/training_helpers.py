"""Shared helpers for the trainer tests: tiny toy configs and in-process runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from foleyflow.training.config import TrainConfig

# One thread: on a shared, oversubscribed 2-core machine two OpenMP threads spin against each
# other and tiny convolutions run ~100x slower (measured 66 ms vs 0.4 ms per call).
torch.set_num_threads(1)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def toy_config(output_dir: Path, **overrides: Any) -> TrainConfig:
    options = overrides.pop("recipe_options", {})
    values: dict[str, Any] = {
        "recipe": "toy",
        "recipe_options": {"items": 32, "val_items": 8, **options},
        "seed": 3,
        "max_steps": 12,
        "batch_size": 4,
        "optimizer": {"lr": 0.01, "lr_schedule": "cosine", "warmup_steps": 2},
        "ema_decay": 0.9,
        "val_every": 4,
        "val_batches": 2,
        "checkpoint_every": 4,
        "log_every": 1,
        "output_dir": str(output_dir),
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)


def train_in_process(config: TrainConfig):
    from accelerate.state import AcceleratorState

    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    # Accelerate keeps one process-wide state; each test run starts from a clean one.
    AcceleratorState._reset_state(reset_partial_state=True)
    return Trainer(config, build_recipe(config.recipe, config.recipe_options)).fit()


def checkpoint_weights(run_dir: Path, step: int) -> dict:
    return load_file(str(run_dir / "checkpoints" / f"step-{step:08d}" / "modules.safetensors"))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable


# --- tiny text-to-audio components -------------------------------------------------------------

TINY_UNET = {"block_out_channels": [8, 16, 16], "norm_num_groups": 4, "attention_head_dim": 8, "sample_size": [8, 16]}
CAPTIONS = ["a cow moos", "rain falls", "a dog barks", "a bell rings"]


def make_tta_inputs(root: Path) -> dict[str, Any]:
    """Four short tonal clips with captions, a random tiny codec (Griffin-Lim), and recipe options."""
    import json

    import numpy as np
    import soundfile as sf
    import torch

    from foleyflow.models.codec import Codec
    from foleyflow.models.vae import build_vae

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for index, caption in enumerate(CAPTIONS):
        t = np.arange(6000) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (200 + 150 * index) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"clip{index}.wav", audio.astype("float32"), 16000)
        lines.append(json.dumps({"audio": f"clip{index}.wav", "caption": caption}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    (root / "val.jsonl").write_text("\n".join(lines[:2]) + "\n")
    torch.manual_seed(0)
    Codec(build_vae("cpu", block_out_channels=[8, 16, 16], norm_num_groups=4)).save_pretrained(root / "codec")
    return {
        "train_manifest": str(root / "train.jsonl"),
        "val_manifest": str(root / "val.jsonl"),
        "codec": str(root / "codec"),
        "clip_seconds": 0.32,
        "cache_dir": str(root / "cache"),
        "unet_overrides": dict(TINY_UNET),
    }


def make_tta_teacher(root: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A tiny exported v-prediction generator (random weights) to distil: (folder, data options of
    the distillation recipe, the tta inputs)."""
    from foleyflow.training.recipes.tta import TTARecipe

    inputs = make_tta_inputs(root / "inputs")
    recipe = TTARecipe({**inputs, "prediction": "v"})
    torch.manual_seed(0)
    teacher = recipe.export(recipe.build(), root / "teacher", "# tiny teacher\n")
    return teacher, {key: inputs[key] for key in ("train_manifest", "val_manifest", "cache_dir")}, inputs


def make_tiny_generator(root: Path, vocoder: bool = False) -> Path:
    """``make_tta_teacher``'s tiny random generator (v prediction, 0.32 s window; its inputs
    under ``root/inputs``). Its codec renders audio with Griffin-Lim, or with a random "cpu"
    HiFi-GAN when ``vocoder`` is set."""
    from foleyflow.models.codec import Codec
    from foleyflow.models.vocoder import build_vocoder

    folder = make_tta_teacher(root)[0]
    if vocoder:
        codec = Codec.from_pretrained(folder / "codec")
        Codec(codec.vae, build_vocoder("cpu")).save_pretrained(folder / "codec")
    return folder
