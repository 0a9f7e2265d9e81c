"""The contract between the shared trainer and a model's training recipe.

One trainer (``foleyflow.training.trainer``) serves every model. A recipe says what to
build, what to feed it and how to score a batch; the trainer owns everything else:
Accelerate (devices, processes, mixed precision, gradient accumulation), optimizers and
LR schedules, EMA, checkpoint/resume, logging, validation cadence and export.

A recipe with adversarial training (the HiFi-GAN vocoder) declares two optimizer groups,
e.g. "generator" and "discriminator"; the trainer calls ``losses`` once per group per step,
in the declared order, and steps only that group's optimizer on that group's loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol

import torch
from torch.utils.data import Dataset


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a distributed wrapper (read attributes such as ``.config`` from this;
    call the wrapper itself, so that DDP sees the forward pass)."""
    return getattr(module, "module", module)


class Recipe(Protocol):
    name: str

    def build(self) -> Mapping[str, torch.nn.Module]:
        """Every module the recipe needs, by name (trained or frozen)."""

    def optimizer_groups(self) -> Mapping[str, list[str]]:
        """Group name -> names of the modules it trains, e.g. {"main": ["unet", "text_lora"]}.

        Only parameters with ``requires_grad`` are handed to the optimizer (LoRA: adapters only).
        """

    def dataset(self, split: str) -> Dataset:
        """"train" or "val"; items are whatever ``collate`` batches."""

    def collate(self, items: list[Any]) -> Any:
        """Batch items (the default torch collation is fine for tensors)."""

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: Any, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise for ``group`` and figures to log."""

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: Any) -> dict[str, float]:
        """Validation figures for one batch (averaged by the trainer); lower-is-better "val_loss" first."""

    def export(self, modules: Mapping[str, torch.nn.Module], folder: Path, card: str) -> Path:
        """Write the trained model as a model folder (config.json + model.safetensors + MODEL_CARD.md)."""
