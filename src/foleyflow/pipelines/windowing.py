"""Long clips in overlapping windows, short clips padded: the output has the input's length.

A model sees a fixed window (10.24 s in the papers' setting). A longer clip is cut into
windows that overlap by at least ``overlap`` samples (evenly spaced); each is processed on its own and the results
are joined with linear cross-fades, normalised so the weights sum to one at every sample
(a window processed by the identity gives back the input exactly). A shorter clip is
zero-padded to one window and trimmed back. The functions work on the last axis, so the
same code joins audio (samples) and per-frame maps (attention, masks) of the generator and
the editor.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from foleyflow.errors import InputError


def window_starts(total: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``window`` covering ``[0, total)``; the last ends exactly at ``total``."""
    if window <= 0 or not 0 <= overlap < window:
        raise InputError(f"windowing needs window > overlap >= 0, got window {window}, overlap {overlap}")
    if total <= window:
        return [0]
    # Evenly spaced, so that every pair of neighbours overlaps by about the same amount (>= overlap).
    count = 1 + -(-(total - window) // (window - overlap))
    return [round(i * (total - window) / (count - 1)) for i in range(count)]


def crossfade_weights(window: int, fade_in: int, fade_out: int) -> np.ndarray:
    """(window,) weights: linear ramps over the first ``fade_in`` and the last ``fade_out`` samples."""
    weights = np.ones(window, dtype=np.float64)
    # Ramps start above zero so that every sample keeps a positive total weight.
    if fade_in > 0:
        weights[:fade_in] = (np.arange(fade_in) + 1.0) / (fade_in + 1.0)
    if fade_out > 0:
        weights[-fade_out:] = np.minimum(weights[-fade_out:], (np.arange(fade_out, 0, -1)) / (fade_out + 1.0))
    return weights


def overlap_add(chunks: np.ndarray, starts: list[int], total: int) -> np.ndarray:
    """Join (n, ..., window) chunks placed at ``starts`` into (..., total), cross-faded over each overlap."""
    chunks = np.asarray(chunks, dtype=np.float64)
    window = chunks.shape[-1]
    out = np.zeros(chunks.shape[1:-1] + (max(total, window),), dtype=np.float64)
    norm = np.zeros(max(total, window), dtype=np.float64)
    for index, (chunk, start) in enumerate(zip(chunks, starts)):
        fade_in = starts[index - 1] + window - start if index > 0 else 0
        fade_out = start + window - starts[index + 1] if index + 1 < len(starts) else 0
        weights = crossfade_weights(window, min(max(fade_in, 0), window // 2), min(max(fade_out, 0), window // 2))
        out[..., start : start + window] += chunk * weights
        norm[start : start + window] += weights
    return (out / norm)[..., :total]


def split_windows(audio: np.ndarray, window: int, overlap: int) -> tuple[np.ndarray, list[int]]:
    """(samples,) -> ((n, window) windows, starts); a clip shorter than one window is zero-padded."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise InputError("cannot process an empty clip")
    starts = window_starts(audio.size, window, overlap)
    padded = np.pad(audio, (0, max(window - audio.size, 0)))
    return np.stack([padded[start : start + window] for start in starts]), starts


def process_in_windows(
    audio: np.ndarray,
    window: int,
    overlap: int,
    process: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Apply ``process`` ((n, window) -> (n, window), all windows in one batch) to a clip of any length.

    Returns float32 audio of exactly the input's length.
    """
    windows, starts = split_windows(audio, window, overlap)
    processed = np.asarray(process(windows))
    if processed.shape != windows.shape:
        raise ValueError(f"window processing changed the shape {windows.shape} -> {processed.shape}")
    return overlap_add(processed, starts, np.asarray(audio).size).astype(np.float32)
