"""Exponential moving average of the trained weights.

Written here rather than using diffusers' ``EMAModel`` because the trainer needs the shadow
weights keyed by parameter name (so they go into a safetensors checkpoint and into an exported
model folder without pickling) and across several modules at once.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch


class EMA:
    """Shadow copies of every trainable parameter of ``modules``, keyed "module.param"."""

    def __init__(self, modules: Mapping[str, torch.nn.Module], decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {
            name: param.detach().clone().float()
            for name, param in _trainable(modules)
        }

    def current_decay(self) -> float:
        # Warm-up: early averages would otherwise be dominated by the random initialisation.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, modules: Mapping[str, torch.nn.Module]) -> None:
        decay = self.current_decay()
        for name, param in _trainable(modules):
            self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)
        self.updates += 1

    @contextlib.contextmanager
    def swapped_in(self, modules: Mapping[str, torch.nn.Module]) -> Iterator[None]:
        """Temporarily load the averaged weights into ``modules`` (for validation and export)."""
        params = dict(_trainable(modules))
        saved = {name: param.detach().clone() for name, param in params.items()}
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(self.shadow[name].to(param.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(saved[name])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {name: tensor.contiguous() for name, tensor in self.shadow.items()}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], updates: int) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            from foleyflow.errors import InputError

            raise InputError(f"EMA checkpoint lacks {len(missing)} parameters (first: {missing[0]})")
        for name in self.shadow:
            self.shadow[name].copy_(tensors[name])
        self.updates = updates


def _trainable(modules: Mapping[str, torch.nn.Module]) -> Iterator[tuple[str, torch.nn.Parameter]]:
    for module_name, module in modules.items():
        for param_name, param in module.named_parameters():
            if param.requires_grad:
                yield f"{module_name}.{param_name}", param
