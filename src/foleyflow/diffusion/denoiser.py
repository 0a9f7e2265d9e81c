"""The denoiser interface every diffusion sampler uses (k-diffusion's idea, VP form).

``Denoiser(network, schedule, prediction)`` turns a network ``network(z_s, index, **kwargs)``
that predicts eps, v or x into ``denoiser(z_s, s, **kwargs) -> x_hat_0`` in diffusion time s
(convention in ``foleyflow.diffusion``).  The network receives the fractional index s N - 1
as its timestep (integer on the usual grids).  Compose guidance underneath:
``Denoiser(ClassifierFreeGuidance(unet_fn, 3.0), schedule, "v")``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from foleyflow.diffusion.parametrization import Prediction, to_x0
from foleyflow.diffusion.schedule import DDPMSchedule
from foleyflow.diffusion.tensors import batch_times


class Denoiser:
    def __init__(self, network: Callable[..., torch.Tensor], schedule: DDPMSchedule, prediction: Prediction | str):
        self.network = network
        self.schedule = schedule
        self.prediction = Prediction.parse(prediction)

    def __call__(self, z_s: torch.Tensor, s: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """x_hat_0 for z_s (batch, channels, frames, bins) at diffusion times s (batch,)."""
        s = batch_times(s, z_s)
        output = self.network(z_s, self.schedule.index_of(s), **kwargs)
        return to_x0(self.prediction, output, z_s, self.schedule.alpha(s), self.schedule.sigma(s))
