"""A tiny regression recipe that exercises every part of the trainer in well under a second.

It fits a small MLP to a fixed random linear map plus noise. It is the trainer's own test
subject (resume-after-kill, multi-process, mixed precision) and a smoke test of an install:
``foleyflow train toy --config configs/toy.json``. With ``adversarial`` it declares two optimizer
groups like a GAN recipe, to test alternating generator / discriminator steps.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import Dataset, TensorDataset

from foleyflow.models.checkpoint import save_model_folder
from foleyflow.training.config import dataclass_from_dict


@dataclasses.dataclass
class ToyOptions:
    items: int = 64
    val_items: int = 16
    features: int = 8
    hidden: int = 16
    dropout: float = 0.1
    input_noise: float = 0.01
    adversarial: bool = False
    # Sleep per loss call: lets a test kill the process mid-run reliably.
    seconds_per_step: float = 0.0


class ToyRecipe:
    name = "toy"

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = dataclass_from_dict(ToyOptions, options or {}, "recipe_options")

    def build(self) -> dict[str, torch.nn.Module]:
        size, hidden = self.options.features, self.options.hidden
        modules = {
            "net": torch.nn.Sequential(torch.nn.Linear(size, hidden), torch.nn.GELU(), torch.nn.Dropout(self.options.dropout), torch.nn.Linear(hidden, size)),
            "frozen_scale": torch.nn.Linear(size, size, bias=False),
        }
        if self.options.adversarial:
            modules["critic"] = torch.nn.Sequential(torch.nn.Linear(size, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
        return modules

    def optimizer_groups(self) -> dict[str, list[str]]:
        if self.options.adversarial:
            return {"generator": ["net"], "discriminator": ["critic"]}
        return {"main": ["net"]}

    def dataset(self, split: str) -> Dataset:
        # Data is a function of the split only, never of the global RNG.
        generator = torch.Generator().manual_seed(1 if split == "train" else 2)
        count = self.options.items if split == "train" else self.options.val_items
        inputs = torch.randn(count, self.options.features, generator=generator)
        mapping = torch.randn(self.options.features, self.options.features, generator=torch.Generator().manual_seed(0)) / self.options.features**0.5
        targets = inputs @ mapping + 0.1 * torch.randn(count, self.options.features, generator=generator)
        return TensorDataset(inputs, targets)

    def collate(self, items: list[Any]) -> Any:
        return torch.utils.data.default_collate(items)

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: Any, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if self.options.seconds_per_step:
            time.sleep(self.options.seconds_per_step)
        inputs, targets = batch
        # Fresh noise from the global RNG each step, so an exact resume must restore RNG state.
        noisy = inputs + self.options.input_noise * torch.randn_like(inputs)
        prediction = modules["net"](modules["frozen_scale"](noisy))
        mse = torch.nn.functional.mse_loss(prediction, targets)
        if not self.options.adversarial:
            return mse, {"mse": mse.item()}
        if group == "discriminator":
            real, fake = modules["critic"](targets), modules["critic"](prediction.detach())
            loss = torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()
            return loss, {}
        adversarial = torch.nn.functional.softplus(-modules["critic"](prediction)).mean()
        return mse + 0.01 * adversarial, {"mse": mse.item()}

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: Any) -> dict[str, float]:
        inputs, targets = batch
        prediction = modules["net"](modules["frozen_scale"](inputs))
        return {"val_loss": float(torch.nn.functional.mse_loss(prediction, targets))}

    def export(self, modules: Mapping[str, torch.nn.Module], folder: Path, card: str) -> Path:
        config = {"class": "ToyMLP", **dataclasses.asdict(self.options)}
        return save_model_folder(folder, modules["net"].state_dict(), config, card)
