"""The audio codec: waveform <-> VAE latent, in one object.

    audio (batch, samples) --log_mel--> (batch, frames, 64) --VAE--> latents (batch, 8, frames/4, 16)
    latents --VAE decoder--> mel --vocoder (iSTFT or HiFi-GAN, or Griffin-Lim fallback)--> audio

A codec folder holds two model folders, ``vae/`` and ``vocoder/``. ``from_pretrained``
takes "default" (the shipped models), a codec folder, an AudioLDM ``.ckpt``, a diffusers
pipeline folder or Tango's released folder. Without a trained vocoder, Griffin-Lim (32
iterations) is used and a warning is logged: it is a fallback, never the default.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from foleyflow.audio.mel import MelConfig, log_mel, to_vae_layout
from foleyflow.errors import InputError
from foleyflow.models import interop
from foleyflow.models.checkpoint import list_shipped_models
from foleyflow.models.vae import COMPRESSION, decode, encode, load_vae, save_vae
from foleyflow.models.vocoder import HOP, Vocoder, griffin_lim, load_vocoder, save_vocoder, vocode

log = logging.getLogger(__name__)


class Codec(torch.nn.Module):
    def __init__(self, vae: AutoencoderKL, vocoder: Vocoder | None = None, griffin_lim_iterations: int = 32) -> None:
        super().__init__()
        self.vae = vae
        self.vocoder = vocoder
        self.griffin_lim_iterations = griffin_lim_iterations
        self.mel_config = MelConfig()

    # -- audio <-> mel --------------------------------------------------------------
    def audio_to_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> VAE-layout mel (batch, 1, frames, 64), frames padded to a multiple of 4.

        Padding repeats the floor value log(1e-5) (digital silence) rather than zeros.
        """
        mel = log_mel(audio, self.mel_config)
        extra = (-mel.shape[1]) % COMPRESSION
        if extra:
            mel = F.pad(mel, (0, 0, 0, extra), value=float(torch.log(torch.tensor(self.mel_config.clamp_min))))
        return to_vae_layout(mel)

    def mel_to_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(batch, 1, frames, 64) or (batch, frames, 64) -> (batch, frames * 160)."""
        if self.vocoder is not None:
            return vocode(self.vocoder, mel)
        return griffin_lim(mel, self.griffin_lim_iterations, self.mel_config)

    # -- audio <-> latent -----------------------------------------------------------
    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) or (samples,) audio -> scaled latents (batch, 8, frames / 4, 16)."""
        audio = check_audio_batch(torch.as_tensor(audio, dtype=torch.float32))
        if audio.ndim == 1:
            audio = audio[None]
        return encode(self.vae, self.audio_to_mel(audio))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """Scaled latents -> (batch, samples) audio, cut to ``num_samples`` when given."""
        audio = self.mel_to_audio(decode(self.vae, latents))
        return audio if num_samples is None else audio[..., :num_samples]

    @torch.no_grad()
    def roundtrip(self, audio: torch.Tensor) -> torch.Tensor:
        audio = torch.as_tensor(audio, dtype=torch.float32)
        num_samples = audio.shape[-1]
        return self.decode(self.encode(audio), num_samples)

    @property
    def samples_per_latent_frame(self) -> int:
        return HOP * COMPRESSION

    # -- files ----------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        folder = Path(folder)
        save_vae(self.vae, folder / "vae", dtype=dtype)
        if self.vocoder is not None:
            save_vocoder(self.vocoder, folder / "vocoder", dtype=dtype)
        return folder

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = "default") -> "Codec":
        if str(name) == "default":
            shipped = list_shipped_models()
            vocoder = load_vocoder("default") if "vocoder" in shipped else None
            if vocoder is None:
                log.warning("no trained vocoder is shipped; falling back to Griffin-Lim")
            return cls(load_vae("default"), vocoder).eval()
        path = Path(name).expanduser()
        kind = interop.detect_format(path)
        if kind == "audioldm-ckpt":
            vae, vocoder = interop.load_audioldm_ckpt(path)
        elif kind == "tango":
            vae, vocoder = interop.load_tango_folder(path)
        elif kind == "diffusers":
            vae = interop.load_diffusers_vae(path / "vae")
            vocoder = interop.load_diffusers_vocoder(path / "vocoder") if (path / "vocoder" / "config.json").is_file() else None
        else:
            vae = load_vae(path / "vae")
            vocoder = load_vocoder(path / "vocoder") if (path / "vocoder" / "config.json").is_file() else None
        if vocoder is None:
            log.warning("%s has no vocoder; falling back to Griffin-Lim", path)
        return cls(vae, vocoder).eval()


def check_audio_batch(audio: torch.Tensor) -> torch.Tensor:
    if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise InputError(f"audio must be (samples,) or (batch, samples) and non-empty; got {tuple(audio.shape)}")
    return audio
