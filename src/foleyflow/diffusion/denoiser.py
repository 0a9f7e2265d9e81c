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


def batch_times(time: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (batch,) time as a (batch,) tensor on x's device and dtype."""
    time = torch.as_tensor(time, device=x.device, dtype=x.dtype)
    return time.expand(x.shape[0]) if time.ndim == 0 else time
