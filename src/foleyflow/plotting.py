"""Figures: spectrograms (and, later, attention maps and masks), written atomically as PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from foleyflow.atomic import atomic_path
from foleyflow.audio.mel import MelConfig
from foleyflow.errors import InputError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no screen here or on a user's server
    import matplotlib.pyplot as plt

    return plt


def check_png_path(path: str | os.PathLike) -> Path:
    """``path`` if it ends in .png; InputError otherwise (every figure is written as PNG, and PNG
    data under another suffix would mislead whatever opens it)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: figures are written as PNG; end the name in .png")
    return path


def save_figure_png(figure, path: str | os.PathLike, dpi: int) -> Path:
    """Write a matplotlib figure atomically as PNG and close it (refused or not: no figure leaks)."""
    try:
        path = check_png_path(path)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=dpi, format="png")
    finally:
        _pyplot().close(figure)
    return path


def save_loss_curves_png(
    path: str | os.PathLike,
    curves: dict[str, tuple[Sequence[int], Sequence[float]]],
    title: str = "",
    log_scale: bool = True,
) -> Path:
    """Loss vs optimizer step, one line per series (train curves thin, validation with markers)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, (steps, values) in sorted(curves.items()):
        validation = label.startswith("val")
        axis.plot(steps, values, label=label, linewidth=1.8 if validation else 0.9, marker="o" if validation else None, markersize=3)
    positive = all(value > 0 for _, values in curves.values() for value in values)
    if log_scale and positive:
        axis.set_yscale("log")  # diffusion losses fall by orders of magnitude early on
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure_png(figure, path, dpi=80)


def save_spectrograms_png(
    path: str | os.PathLike,
    panels: Sequence[tuple[str, np.ndarray]],
    config: MelConfig = MelConfig(),
    overlay: np.ndarray | None = None,
    overlay_label: str = "edit mask",
) -> Path:
    """One row per (title, log-mel of shape (frames, n_mels)), time on x, mel bin on y.

    ``overlay``: an optional curve in [0, 1] over the clip's duration (an edit mask, any number
    of points), drawn over every panel on the full height of the mel axis.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False)
    low = min(float(np.min(mel)) for _, mel in panels)
    high = max(float(np.max(mel)) for _, mel in panels)
    for axis, (title, mel) in zip(axes[:, 0], panels):
        mel = np.asarray(mel)
        seconds = mel.shape[0] * config.hop_length / config.sample_rate
        image = axis.imshow(
            mel.T, origin="lower", aspect="auto", extent=(0.0, seconds, 0, mel.shape[1]), vmin=low, vmax=high, cmap="magma"
        )
        axis.set_title(title, fontsize=10)
        axis.set_ylabel("mel bin")
        if overlay is not None:
            _draw_overlay(axis, np.asarray(overlay, dtype=np.float64), seconds, mel.shape[1], overlay_label)
    axes[-1, 0].set_xlabel("time (s)")
    figure.colorbar(image, ax=axes[:, 0].tolist(), label="log magnitude")
    return save_figure_png(figure, path, dpi=100)


def _draw_overlay(axis, curve: np.ndarray, seconds: float, height: int, label: str) -> None:
    time = (np.arange(curve.size) + 0.5) * seconds / max(curve.size, 1)
    axis.fill_between(time, 0, curve * height, color="cyan", alpha=0.18, step="mid", linewidth=0)
    axis.plot(time, curve * height, color="cyan", linewidth=1.2, drawstyle="steps-mid", label=label)
    axis.legend(loc="upper right", fontsize=7)
