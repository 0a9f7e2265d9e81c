"""What a diffusion network predicts, and the conversions between predictions (SPEC 1, 4).

With z_s = alpha_s z_0 + sigma_s eps (alpha_s^2 + sigma_s^2 = 1):

    prediction   target                          x-prediction from it
    ----------   ------                          --------------------
    "epsilon"    eps                             x = (z_s - sigma_s eps) / alpha_s
    "v"          v = alpha_s eps - sigma_s z_0   x = alpha_s z_s - sigma_s v
    "sample"     z_0                             x itself

Coefficients are (batch,) or scalars; tensors are (batch, channels, frames, bins).
"""

from __future__ import annotations

from enum import Enum

import torch

from foleyflow.diffusion.tensors import expand_as
from foleyflow.errors import InputError


class Prediction(str, Enum):
    EPSILON = "epsilon"
    V = "v"
    SAMPLE = "sample"

    @classmethod
    def parse(cls, value: "str | Prediction") -> "Prediction":
        aliases = {"eps": cls.EPSILON, "v_prediction": cls.V, "x0": cls.SAMPLE}
        if isinstance(value, str) and value in aliases:
            return aliases[value]
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"prediction must be one of epsilon, v, sample; got {value!r}") from None


def prediction_target(prediction: Prediction, z_0: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The regression target of a network that predicts ``prediction``."""
    if prediction is Prediction.EPSILON:
        return eps
    if prediction is Prediction.V:
        return expand_as(alpha, z_0) * eps - expand_as(sigma, z_0) * z_0
    return z_0


def to_x0(prediction: Prediction, output: torch.Tensor, z_s: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The x-prediction x_theta(z_s) implied by a network output (the student's x in SPEC 4)."""
    a, s = expand_as(alpha, z_s), expand_as(sigma, z_s)
    if prediction is Prediction.EPSILON:
        return (z_s - s * output) / a
    if prediction is Prediction.V:
        return a * z_s - s * output
    return output
