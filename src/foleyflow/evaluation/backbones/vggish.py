"""VGGish (Hershey et al. 2017), the FAD backbone, in the layout of the common PyTorch port.

The port's state dict (``vggish-10086976.pth``) loads as it is:
    features.{0,3,6,8,11,13}.{weight,bias}   six 3x3 convolutions (64, 128, 256, 256, 512, 512)
    embeddings.{0,2,4}.{weight,bias}          12288 -> 4096 -> 4096 -> 128
FAD as audioldm_eval / frechet_audio_distance compute it uses the 128-d output without the
PCA post-processing and without the final ReLU, one embedding per 0.96 s example, and
pools the examples of all files.

Front-end (VGGish's own, not the AudioLDM log-mel): 16 kHz, 25 ms periodic-Hann frames with
a 10 ms hop and no padding, 512-point FFT magnitude, 64 HTK-mel bands 125-7500 Hz (DC bin
weight 0), log(mel + 0.01), cut into non-overlapping 96-frame examples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16_000
WINDOW = 400
HOP = 160
FFT = 512
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP  # one full example (0.975 s)


def _htk_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def vggish_mel_matrix() -> np.ndarray:
    """(257, 64) triangular HTK-mel weights over the FFT bins, as VGGish defines them."""
    bin_mels = _htk_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, FFT // 2 + 1))
    edges = np.linspace(_htk_mel(MEL_LOW_HZ), _htk_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels[:, None] - lower) / (center - lower)
    falling = (upper - bin_mels[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_examples(audio: np.ndarray) -> np.ndarray:
    """Mono 16 kHz audio -> (examples, 1, 96, 64) log-mel patches. Audio shorter than one
    example is zero-padded to one example so that every file contributes."""
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - audio.size))
    count = 1 + (audio.size - WINDOW) // HOP
    frames = audio[np.arange(count)[:, None] * HOP + np.arange(WINDOW)[None, :]]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, FFT))
    log_mel = np.log(magnitude @ vggish_mel_matrix() + LOG_OFFSET)
    examples = log_mel.shape[0] // EXAMPLE_FRAMES
    patches = log_mel[: examples * EXAMPLE_FRAMES].reshape(examples, EXAMPLE_FRAMES, MEL_BANDS)
    return patches[:, None].astype(np.float32)


class VGGish(nn.Module):
    """VGG-style embedding network; ``forward`` gives the pre-ReLU 128-d embeddings."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512), hidden: int = 4096, embedding: int = 128):
        super().__init__()
        self.config = dict(channels=list(channels), hidden=hidden, embedding=embedding)
        pool_after = {0, 1, 3, 5}  # max-pool after conv 1, conv 2, conv 4 and conv 6
        layers: list[nn.Module] = []
        in_channels = 1
        for index, out_channels in enumerate(channels):
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
            if index in pool_after:
                layers.append(nn.MaxPool2d(2, 2))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        flat = channels[-1] * (EXAMPLE_FRAMES // 16) * (MEL_BANDS // 16)
        self.embeddings = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding)
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """(examples, 1, 96, 64) -> (examples, 128)."""
        x = self.features(examples)
        # Flatten in (height, width, channels) order, the TensorFlow layout the weights came from.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)
