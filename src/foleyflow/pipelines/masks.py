"""Edit masks: where in a clip an edit happens (issue 9: localisation is what makes an edit
preserve the rest of the recording).

Masks live on the latent grid as (batch, 1, latent frames, 1) floats in [0, 1] — a time mask,
broadcast over the latent's frequency rows — so that compositing (``output = source outside,
edit inside``) works on latents and on mel frames alike.

The ground truth comes from the data set: a triplet knows the sample spans of the event it
adds, removes or replaces (``edit_mask`` per mel frame). Spans include an event's quiet tails,
so the ground truth keeps only the span's frames where source and target latents really
differ (``energy_fraction`` of the span's largest difference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool_frame_mask(frame_mask: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """(batch, mel frames) bool -> (batch, latent frames) float: a latent frame is in the
    region when any of the mel frames it covers is."""
    frames = frame_mask.float()[:, None, :]
    return F.adaptive_max_pool1d(frames, latent_frames)[:, 0]


def ground_truth_latent_mask(
    frame_mask: torch.Tensor, x_target: torch.Tensor, x_source: torch.Tensor, energy_fraction: float = 0.2
) -> torch.Tensor:
    """(batch, 1, latent frames, 1) mask of the frames an edit changes.

    frame_mask: (batch, mel frames) bool span mask; x_target, x_source: (batch, C, frames, F).
    """
    span = pool_frame_mask(frame_mask, x_target.shape[2])
    change = (x_target - x_source).abs().mean(dim=(1, 3))  # (batch, latent frames)
    peak = (change * span).amax(dim=1, keepdim=True)
    changed = change >= energy_fraction * peak
    return (span * changed.float() * (peak > 0).float())[:, None, :, None]
