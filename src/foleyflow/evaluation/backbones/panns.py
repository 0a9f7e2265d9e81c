"""PANNs Cnn14 at 16 kHz (Kong et al. 2020), the FD / KL / IS backbone of audioldm_eval (SPEC 6).

Written so the official ``Cnn14_16k_mAP=0.438.pth`` state dict loads with its own key names:
    spectrogram_extractor.stft.conv_real.weight / conv_imag.weight   (257, 1, 512) windowed DFT
    logmel_extractor.melW                                             (257, 64) mel filters
    bn0.*, conv_block{1..6}.{conv1,conv2}.weight, conv_block{k}.{bn1,bn2}.*
    fc1.{weight,bias} (2048, 2048), fc_audioset.{weight,bias} (527, 2048)
The STFT and the mel filters are weights of the checkpoint (torchlibrosa computes the
spectrogram as a convolution), so we use them as stored rather than recomputing them.

Front-end: 16 kHz, window 512, hop 160, centred reflect padding, power spectrum, 64 mel bins
50-8000 Hz, 10 * log10(max(mel, 1e-10)). Outputs (eval mode):
    embedding  relu(fc1(max_t(x) + mean_t(x)))   (batch, 2048)   for FD
    logits     fc_audioset(embedding)            (batch, 527)    softmax for KL and IS
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.audio_utils import mel_filter_bank

AMIN = 1e-10


class _Stft(nn.Module):
    """Holds the windowed DFT as two conv kernels, the layout of torchlibrosa's checkpoints."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as scipy.signal.get_window("hann")
        angle = -2.0 * np.pi * np.outer(np.arange(bins), np.arange(n_fft)) / n_fft
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy((np.cos(angle) * window)[:, None, :]))
            self.conv_imag.weight.copy_(torch.from_numpy((np.sin(angle) * window)[:, None, :]))


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft = n_fft
        self.stft = _Stft(n_fft, hop)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 1, frames, bins) power spectrogram."""
        padded = F.pad(audio[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = self.stft.conv_real(padded).transpose(1, 2)
        imag = self.stft.conv_imag(padded).transpose(1, 2)
        return (real**2 + imag**2)[:, None]


class _LogMel(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float):
        super().__init__()
        filters = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
            max_frequency=f_max, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney",
        )  # librosa.filters.mel's default, which PANNs used
        self.melW = nn.Parameter(torch.from_numpy(filters.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool)


class Cnn14(nn.Module):
    """Cnn14 with configurable width so tests (and the in-world tagger) can build small ones."""

    def __init__(
        self,
        sample_rate: int = 16_000,
        window_size: int = 512,
        hop_size: int = 160,
        mel_bins: int = 64,
        fmin: float = 50.0,
        fmax: float = 8000.0,
        classes_num: int = 527,
        channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
    ):
        super().__init__()
        self.config = dict(sample_rate=sample_rate, window_size=window_size, hop_size=hop_size, mel_bins=mel_bins,
                           fmin=fmin, fmax=fmax, classes_num=classes_num, channels=list(channels))
        self.spectrogram_extractor = _Spectrogram(window_size, hop_size)
        self.logmel_extractor = _LogMel(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = [1, *channels]
        for index in range(len(channels)):
            self.add_module(f"conv_block{index + 1}", ConvBlock(widths[index], widths[index + 1]))
        self.fc1 = nn.Linear(channels[-1], channels[-1])
        self.fc_audioset = nn.Linear(channels[-1], classes_num)

    @property
    def num_blocks(self) -> int:
        return len(self.config["channels"])

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 1, frames, mel_bins)."""
        return self.logmel_extractor(self.spectrogram_extractor(audio))

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.log_mel(audio)
        # bn0 normalises each mel bin: move bins to the channel axis and back.
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(1, self.num_blocks + 1):
            pool = (1, 1) if index == self.num_blocks else (2, 2)
            x = getattr(self, f"conv_block{index}")(x, pool)
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)  # over mel bins -> (batch, channels, frames)
        x = x.max(dim=2).values + x.mean(dim=2)
        x = F.dropout(x, p=0.5, training=self.training)
        embedding = F.relu(self.fc1(x))
        logits = self.fc_audioset(F.dropout(embedding, p=0.5, training=self.training))
        return {"embedding": embedding, "logits": logits}
