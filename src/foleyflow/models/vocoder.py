"""Vocoders (log-mel -> 16 kHz waveform): HiFi-GAN, the iSTFT vocoder, and the discriminators.

The generator is transformers' ``SpeechT5HifiGan`` (the class diffusers' AudioLDM pipelines
use), so the public AudioLDM vocoder loads key for key. Input: our log-mel (batch, frames,
64) exactly as ``foleyflow.audio.mel.log_mel`` computes it. AudioLDM's vocoder was trained on
the raw natural-log mel, so its config has ``normalize_before = False`` and the ``mean`` /
``scale`` buffers are unused (zeros / ones). Our presets follow the same convention, so any
vocoder here consumes the same mel.

Presets:
    "paper"        AudioLDM's 16 kHz / 64-mel HiFi-GAN (SPEC 6), 1024 initial channels.
    "cpu"          same upsampling (160x) and MRF kernels, 64 initial channels: > 10x real time
                   on two CPU cores (see docs/benchmarks-codec.md).
    "istft-cpu"    the iSTFT vocoder (``foleyflow.models.istft_vocoder``, Vocos' design) at
    "istft-vocos"  CPU width, and at Vocos' published width with its frame-relative phase.
    "istft-gla-cpu" the magnitude vocoder (the same stack, Griffin-Lim phase): the shipped default.
A model folder's ``_class_name`` ("SpeechT5HifiGan" or "IstftVocoder") says which family it holds.

The multi-period and multi-scale discriminators of HiFi-GAN are not in any installed
library, so they are written here (only training uses them).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from foleyflow.audio.griffin_lim import griffin_lim as phase_from_magnitude
from foleyflow.audio.mel import MelConfig, mel_to_magnitude, repeat_last_frame
from foleyflow.errors import InputError
from foleyflow.models import istft_vocoder
from foleyflow.models.istft_vocoder import IstftVocoder, IstftVocoderConfig
from foleyflow.models.checkpoint import load_config, load_weights, resolve_model_dir, save_model_folder

# The SpeechT5HifiGanConfig arguments that shape the generator (the rest is transformers bookkeeping).
GENERATOR_KEYS = (
    "model_in_dim", "sampling_rate", "upsample_initial_channel", "upsample_rates", "upsample_kernel_sizes",
    "resblock_kernel_sizes", "resblock_dilation_sizes", "initializer_range", "leaky_relu_slope", "normalize_before",
)
HOP = 160  # product of the upsample rates: one mel frame -> 160 samples

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "upsample_initial_channel": 1024,
        "upsample_rates": [5, 4, 2, 2, 2],
        "upsample_kernel_sizes": [16, 16, 8, 4, 4],
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    },
    "cpu": {
        "upsample_initial_channel": 64,
        "upsample_rates": [5, 4, 2, 2, 2],
        "upsample_kernel_sizes": [16, 16, 8, 4, 4],
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    },
}


Vocoder = SpeechT5HifiGan | IstftVocoder
ALL_PRESETS = (*PRESETS, *istft_vocoder.PRESETS)


def vocoder_config(preset: str = "cpu", **overrides: Any) -> dict[str, Any]:
    if preset not in PRESETS:
        raise InputError(f"unknown HiFi-GAN preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = {
        "model_in_dim": 64,
        "sampling_rate": 16000,
        "leaky_relu_slope": 0.1,
        "normalize_before": False,
        **PRESETS[preset],
    }
    config.update(overrides)
    if math.prod(config["upsample_rates"]) != HOP:
        raise InputError(f"vocoder upsample rates must multiply to the mel hop {HOP}; got {config['upsample_rates']}")
    return config


def vocoder_from_config(config: dict[str, Any]) -> Vocoder:
    """A vocoder of either family; ``_class_name`` "IstftVocoder" picks the iSTFT one."""
    if config.get("_class_name") == istft_vocoder.CLASS_NAME:
        arguments = {key: value for key, value in config.items() if key != "_class_name"}
        try:
            return IstftVocoder(IstftVocoderConfig(**arguments))
        except TypeError as error:
            raise InputError(f"iSTFT vocoder config has an argument it does not take ({error})") from None
        except ValueError as error:
            raise InputError(f"iSTFT vocoder config: {error}") from None
    arguments = {key: value for key, value in config.items() if key in GENERATOR_KEYS}
    try:
        model = SpeechT5HifiGan(SpeechT5HifiGanConfig(**arguments))
    except TypeError as error:
        raise InputError(f"vocoder config has an argument SpeechT5HifiGan does not take ({error})") from None
    return model


def build_vocoder(preset: str = "cpu", **overrides: Any) -> Vocoder:
    if preset in istft_vocoder.PRESETS:
        return vocoder_from_config({"_class_name": istft_vocoder.CLASS_NAME, **istft_vocoder.PRESETS[preset], **overrides})
    if preset not in PRESETS:
        raise InputError(f"unknown vocoder preset {preset!r}; choose one of {', '.join(ALL_PRESETS)}")
    model = vocoder_from_config(vocoder_config(preset, **overrides))
    if not model.config.normalize_before:
        # The buffers are unused then; give them the identity values the public conversion uses.
        model.mean.data.zero_()
        model.scale.data.fill_(1.0)
    return model


def vocode(vocoder: Vocoder, mel: torch.Tensor) -> torch.Tensor:
    """log-mel (batch, frames, 64) -> waveform (batch, frames * 160).

    HiFi-GAN's transposed convolutions give a few samples more than frames * hop; they are
    cut so that audio and mel stay aligned.
    """
    if mel.ndim == 4:  # the VAE's (batch, 1, frames, mels) layout
        mel = mel.squeeze(1)
    if mel.ndim != 3 or mel.shape[-1] != vocoder.config.model_in_dim:
        raise InputError(f"the vocoder takes mel as (batch, frames, {vocoder.config.model_in_dim}); got {tuple(mel.shape)}")
    return vocoder(mel)[..., : mel.shape[1] * HOP]


def is_magnitude_vocoder(vocoder: torch.nn.Module | None) -> bool:
    """True for the magnitude vocoder: an ``IstftVocoder`` that leaves the phase to Griffin-Lim."""
    return isinstance(vocoder, IstftVocoder) and vocoder.config.phase == "griffin-lim"


def vocoder_family(vocoder: Vocoder | None) -> str:
    """A name for messages: "HiFi-GAN", "iSTFT vocoder", or "Griffin-Lim" when there is none."""
    if vocoder is None:
        return "Griffin-Lim"
    if not isinstance(vocoder, IstftVocoder):
        return "HiFi-GAN"
    return "iSTFT vocoder (Griffin-Lim phase)" if is_magnitude_vocoder(vocoder) else "iSTFT vocoder"


def save_vocoder(vocoder: Vocoder, folder: str | os.PathLike, card: str | None = None, dtype: torch.dtype | None = None) -> Path:
    settings = vocoder.config.to_dict()
    if isinstance(vocoder, IstftVocoder):
        config = {"_class_name": istft_vocoder.CLASS_NAME, **settings}
    else:
        config = {"_class_name": "SpeechT5HifiGan", **{key: settings[key] for key in GENERATOR_KEYS}}
    return save_model_folder(folder, vocoder.state_dict(), config, card=card, dtype=dtype)


def load_vocoder(name: str | os.PathLike = "default", **overrides: Any) -> Vocoder:
    """A vocoder model folder (ours), or "default" for the shipped one; ``overrides`` replace
    config values that do not change the weights' shapes (e.g. ``mel_projection_iterations``)."""
    from foleyflow.models.vae import load_state_strict

    folder = resolve_model_dir(name, "vocoder")
    vocoder = vocoder_from_config({**load_config(folder), **overrides})
    load_state_strict(vocoder, load_weights(folder), str(folder))
    return vocoder.eval()


# ----------------------------------------------------------------------------- Griffin-Lim


def griffin_lim(mel: torch.Tensor, iterations: int = 32, config: MelConfig = MelConfig(), seed: int = 0) -> torch.Tensor:
    """The no-training fallback: log-mel (batch, frames, 64) -> waveform (batch, frames * 160).

    The magnitude is recovered with the mel filters' pseudo-inverse (clamped at zero), then
    the phase by plain Griffin-Lim (``foleyflow.audio.griffin_lim``) with ``iterations``
    projections: the baseline every vocoder figure is compared with.
    """
    if mel.ndim == 4:
        mel = mel.squeeze(1)
    magnitude = mel_to_magnitude(repeat_last_frame(mel), config).transpose(1, 2)  # (batch, freq, frames + 1)
    return phase_from_magnitude(
        magnitude, n_fft=config.n_fft, hop_length=config.hop_length, length=mel.shape[1] * config.hop_length, iterations=iterations, seed=seed
    )


# ----------------------------------------------------------------------------- discriminators


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's sub-discriminator on the waveform folded into (samples / p, p)."""

    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024)) -> None:
        super().__init__()
        self.period = period
        layers, previous = [], 1
        for index, width in enumerate(channels):
            stride = 3 if index < len(channels) - 1 else 1
            layers.append(weight_norm(nn.Conv2d(previous, width, (5, 1), (stride, 1), padding=(2, 0))))
            previous = width
        layers.append(weight_norm(nn.Conv2d(previous, previous, (5, 1), 1, padding=(2, 0))))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(previous, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, samples = audio.shape
        if samples % self.period:
            audio = F.pad(audio, (0, self.period - samples % self.period), mode="reflect")
        hidden = audio.view(batch, 1, -1, self.period)
        return _scores_and_features(self.layers, self.output, hidden)


def _scores_and_features(layers: nn.ModuleList, output: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A sub-discriminator's stack: (flattened scores, every layer's activations for the feature-matching loss)."""
    features = []
    for layer in layers:
        hidden = F.leaky_relu(layer(hidden), 0.1)
        features.append(hidden)
    hidden = output(hidden)
    features.append(hidden)
    return hidden.flatten(1), features


class ScaleDiscriminator(nn.Module):
    """HiFi-GAN's (MelGAN's) sub-discriminator: grouped strided 1-D convolutions."""

    def __init__(self, width: int = 128, spectral: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        # (out, kernel, stride, groups) per layer; channels scale with ``width`` (128 in the paper).
        plan = [(width, 15, 1, 1), (width, 41, 2, 4), (2 * width, 41, 2, 16), (4 * width, 41, 4, 16), (8 * width, 41, 4, 16), (8 * width, 41, 1, 16), (8 * width, 5, 1, 1)]
        layers, previous = [], 1
        for out, kernel, stride, groups in plan:
            groups = math.gcd(groups, math.gcd(previous, out))
            layers.append(norm(nn.Conv1d(previous, out, kernel, stride, groups=groups, padding=kernel // 2)))
            previous = out
        self.layers = nn.ModuleList(layers)
        self.output = norm(nn.Conv1d(previous, 1, 3, 1, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = audio.unsqueeze(1)
        return _scores_and_features(self.layers, self.output, hidden)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (32, 128, 512, 1024)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(period, channels) for period in periods)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [discriminator(audio) for discriminator in self.discriminators]


class MultiScaleDiscriminator(nn.Module):
    """Three scale discriminators on the waveform and its 2x and 4x average-pooled versions."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList([ScaleDiscriminator(width, spectral=True), ScaleDiscriminator(width), ScaleDiscriminator(width)])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        results = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                audio = self.pool(audio.unsqueeze(1)).squeeze(1)
            results.append(discriminator(audio))
        return results


DISCRIMINATOR_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"period_channels": [32, 128, 512, 1024], "scale_width": 128},
    "cpu": {"period_channels": [16, 32, 64, 128], "scale_width": 16},
}


class HifiGanDiscriminator(nn.Module):
    """MPD + MSD together: returns every sub-discriminator's (logits, feature maps)."""

    def __init__(self, period_channels: list[int] | tuple[int, ...] = (32, 128, 512, 1024), scale_width: int = 128) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(channels=tuple(period_channels))
        self.msd = MultiScaleDiscriminator(scale_width)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return self.mpd(audio) + self.msd(audio)


def build_discriminator(preset: str = "cpu") -> HifiGanDiscriminator:
    if preset not in DISCRIMINATOR_PRESETS:
        raise InputError(f"unknown discriminator preset {preset!r}; choose one of {', '.join(DISCRIMINATOR_PRESETS)}")
    return HifiGanDiscriminator(**DISCRIMINATOR_PRESETS[preset])
