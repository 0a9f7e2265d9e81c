"""Token x frame cross-attention of the editing UNet (the paper's Fig. 2 and Fig. 3).

``AttentionRecorder`` wraps the processor of every cross-attention layer (``attn2`` in
diffusers' transformer blocks): it computes that layer's attention probabilities once more
from its query and key (cheap: a handful of instruction tokens) and hands the call on to the
original processor untouched, so recording never changes the output. Each call's
probabilities (batch x heads, queries, tokens) are folded back onto the layer's
(time, frequency) grid, averaged over heads and frequency, resampled to the latent's frame
count and accumulated; ``token_frame_map`` returns the average over heads, layers and steps.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch



class _RecordingProcessor:
    def __init__(self, recorder: "AttentionRecorder", inner) -> None:
        self.recorder = recorder
        self.inner = inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        if encoder_hidden_states is not None and self.recorder.active:
            self.recorder.record(attn, hidden_states, encoder_hidden_states, attention_mask)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)


class AttentionRecorder:
    """Context manager: ``with AttentionRecorder(unet) as rec: ...; rec.token_frame_map()``."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.active = True
        self._grid: tuple[int, int] | None = None
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._saved = None
        self._hook = None

    def __enter__(self) -> "AttentionRecorder":
        self._saved = dict(self.unet.attn_processors)
        self.unet.set_attn_processor(
            {name: _RecordingProcessor(self, proc) if name.endswith("attn2.processor") else proc for name, proc in self._saved.items()}
        )
        self._hook = self.unet.register_forward_pre_hook(self._remember_grid, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.unet.set_attn_processor(self._saved)
        self._hook.remove()

    def _remember_grid(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        self._grid = tuple(sample.shape[-2:])

    @torch.no_grad()
    def record(self, attn, hidden_states, encoder_hidden_states, attention_mask) -> None:
        batch, queries = hidden_states.shape[0], hidden_states.shape[1]
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        mask = attn.prepare_attention_mask(attention_mask, encoder_hidden_states.shape[1], batch)
        probs = attn.get_attention_scores(query, key, mask)  # (batch * heads, queries, tokens)
        frames, bins = layer_grid(self._grid, queries)
        probs = probs.reshape(batch, attn.heads, frames, bins, -1).mean(dim=(1, 3))  # (batch, frames, tokens)
        probs = torch.nn.functional.interpolate(probs.transpose(1, 2).float(), size=self._grid[0], mode="linear", align_corners=False)
        self._sum = probs if self._sum is None else self._sum + probs
        self._count += 1

    def token_frame_map(self) -> torch.Tensor:
        """(batch, tokens, latent frames): attention averaged over heads, layers and steps."""
        if self._sum is None:
            raise RuntimeError("no cross-attention was recorded (does the UNet have cross-attention layers?)")
        return self._sum / self._count


def layer_grid(latent_grid: tuple[int, int], queries: int) -> tuple[int, int]:
    """The (frames, bins) grid of a UNet level with ``queries`` positions (stride-2 downsampling, ceil)."""
    frames, bins = latent_grid
    for level in range(8):
        factor = 2**level
        grid = (math.ceil(frames / factor), math.ceil(bins / factor))
        if grid[0] * grid[1] == queries:
            return grid
    raise ValueError(f"{queries} attention positions match no level of a {frames} x {bins} latent")


def save_attention_png(
    path: str | os.PathLike,
    attention: np.ndarray,
    tokens: Sequence[str],
    seconds: float,
    title: str = "",
) -> Path:
    """Fig. 3 (heatmap, instruction tokens x time) above Fig. 2 (one curve per token over time)."""
    from foleyflow.plotting import _pyplot, save_figure_png

    attention = np.asarray(attention, dtype=np.float64)
    plt = _pyplot()
    figure, (heat, curves) = plt.subplots(2, 1, figsize=(10, 2.0 + 0.25 * len(tokens) + 3.0), sharex=True)
    extent = (0.0, seconds, len(tokens) - 0.5, -0.5)
    image = heat.imshow(attention, aspect="auto", extent=extent, cmap="viridis", interpolation="nearest")
    heat.set_yticks(range(len(tokens)), labels=list(tokens), fontsize=8)
    heat.set_title(title or "cross-attention: instruction tokens x time", fontsize=10)
    figure.colorbar(image, ax=heat, label="attention")
    time = np.linspace(0.0, seconds, attention.shape[1], endpoint=False) + seconds / (2 * attention.shape[1])
    for row, token in zip(attention, tokens):
        curves.plot(time, row, label=token, linewidth=1.2)
    curves.set_xlabel("time (s)")
    curves.set_ylabel("attention")
    curves.legend(fontsize=7, ncol=min(len(tokens), 6), loc="upper right")
    return save_figure_png(figure, path, dpi=100)
