"""Reference metrics for edits whose true target is known (SPEC 5).

The editing data set is built by mixing, so every edit has its exact target. Three figures:
    logmel_l1     mean |log-mel(output) - log-mel(target)| (the AudioLDM/Tango log-mel, nats)
    lsd           log-spectral distance: mean over frames of
                  sqrt(mean over bins of (log10 |X|^2 - log10 |Y|^2)^2)
    preservation  log-mel L1 to the target on the frames the edit should leave alone
The untouched frames are those where source and target agree once the mix's overall level
change is removed (the gain pressure-level mixing applies to X); a caller that knows the
edit region passes its own frame mask instead.
"""

from __future__ import annotations

import numpy as np
import torch

from foleyflow.audio.mel import MelConfig, log_mel, magnitude_spectrogram

LSD_POWER_FLOOR = 1e-10
UNTOUCHED_TOLERANCE = 0.5  # nats of the largest per-bin |log-mel difference| in a frame (about 4 dB)


def _matched(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    length = min(first.shape[-1], second.shape[-1])
    return np.asarray(first[..., :length], np.float32), np.asarray(second[..., :length], np.float32)


def logmel_l1(output: np.ndarray, target: np.ndarray, frame_mask: np.ndarray | None = None) -> float:
    """Mean absolute log-mel difference (over ``frame_mask`` frames only, if given)."""
    output, target = _matched(output, target)
    difference = (log_mel(output)[0] - log_mel(target)[0]).abs().mean(dim=1).numpy()
    if frame_mask is not None:
        frame_mask = np.asarray(frame_mask, bool)[: difference.size]
        return float(difference[frame_mask].mean()) if frame_mask.any() else float("nan")
    return float(difference.mean())


def lsd(output: np.ndarray, target: np.ndarray, config: MelConfig = MelConfig()) -> float:
    """Log-spectral distance on the STFT power spectrum (same STFT as the log-mel)."""
    output, target = _matched(output, target)
    both = magnitude_spectrogram(torch.from_numpy(np.stack([output, target])), config).double() ** 2
    log_power = torch.log10(both.clamp_min(LSD_POWER_FLOOR))
    per_frame = ((log_power[0] - log_power[1]) ** 2).mean(dim=1).sqrt()
    return float(per_frame.mean())


def untouched_frames(source: np.ndarray, target: np.ndarray, tolerance: float = UNTOUCHED_TOLERANCE) -> np.ndarray:
    """Boolean mask of frames the edit does not touch: after removing the median level offset
    between target and source, no mel bin of the frame differs by more than ``tolerance``.
    The maximum over bins (not the mean) catches narrow-band events such as a beep."""
    source, target = _matched(source, target)
    difference = (log_mel(target)[0] - log_mel(source)[0]).numpy()
    offset = np.median(difference)
    return np.abs(difference - offset).max(axis=1) <= tolerance


def preservation_l1(output: np.ndarray, source: np.ndarray, target: np.ndarray, frame_mask: np.ndarray | None = None) -> float:
    """Log-mel L1 between output and target on the untouched frames (NaN if there are none)."""
    mask = untouched_frames(source, target) if frame_mask is None else frame_mask
    return logmel_l1(output, target, mask)
