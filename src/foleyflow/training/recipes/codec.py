"""Training recipes of the codec: the mel VAE and the HiFi-GAN vocoder.

Both train on random segments of corpus clips (``foleyflow.data.datasets.ClipDataset``), or
of the audio files of any folder (``audio_folder``, split 90/10 by a hash of the file name).

VAE loss:      L1(log-mel, reconstruction) + kl_weight * KL(q(z|x) || N(0, I)) / (mel elements)
               The KL is summed over latent elements and divided by the number of mel
               elements, so ``kl_weight`` has the meaning it has in LDM/AudioLDM, whose
               losses are sums over elements (1e-6 there). No adversarial or perceptual term:
               neither is shown to help here yet. With ``train: "decoder"`` (from ``init_from``)
               the encoder and quant_conv are frozen and the loss is the L1 alone.
Vocoder loss:  HiFi-GAN's: least-squares GAN over MPD + MSD, feature matching (x2) and
               log-mel L1 (x45), optionally + a multi-resolution STFT term (stft_weight) and
               a mel-only warm-up (adversarial_start); the discriminator step uses the detached generator output
               of the same batch, then the generator step reuses that output's graph.
               ``discriminator: "none"`` trains on the reconstruction terms alone (the iSTFT
               vocoder's CPU recipe: no discriminator steps to pay for).
Magnitude vocoder (Griffin-Lim phase): no waveform in the loop; stft_weight * the STFT
               magnitude distance to the true magnitude + mel_weight * mel L1 against the
               input, taken before the mel projection or, with ``through_projection``, after it.
               With ``through_phase_search`` the loss is issue 4's two figures on the waveform
               inference returns (``IstftVocoder.trainable_audio``): stft_weight * the
               multi-resolution STFT distance to the segment + mel_weight * the log-mel L1 of
               the waveform against the input mel (Parallel WaveGAN's loss, HiFi-GAN's mel term).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from foleyflow.audio.mel import log_mel, magnitude_spectrogram, magnitude_to_log_mel, to_vae_layout
from foleyflow.errors import InputError
from foleyflow.models.vae import COMPRESSION, build_vae, latent_scaling_factor, load_vae, save_vae
from foleyflow.models.vocoder import HOP, build_discriminator, build_vocoder, is_magnitude_vocoder, load_vocoder, save_vocoder, vocode
from foleyflow.training.recipe import unwrap

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _options(cls: type, values: Mapping[str, Any] | None) -> Any:
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise InputError(f"recipe_options: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**(values or {}))


# ----------------------------------------------------------------------------- data


def _stable_fraction(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 2**32


def folder_clips(folder: str | Path, split: str, val_fraction: float = 0.1, max_seconds: float = 30.0) -> list[np.ndarray]:
    """Every audio file under ``folder`` of ``split`` ("train" or "val"), as 16 kHz mono arrays."""
    from foleyflow.audio.io import load_audio

    folder = Path(folder).expanduser()
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise InputError(f"{folder}: no audio files")
    chosen = [p for p in paths if (_stable_fraction(str(p.relative_to(folder))) < val_fraction) == (split != "train")]
    clips = []
    for path in chosen:
        try:
            clips.append(np.asarray(load_audio(path, max_seconds=max_seconds), dtype=np.float32).reshape(-1))
        except Exception:  # noqa: BLE001 - a corrupt or over-long file is skipped, not fatal for training
            continue
    return clips


def corpus_clips(split: str, corpus_dir: str | None) -> list[np.ndarray]:
    """The corpus clips of ``split``, read from the corpus layout (clips.jsonl + audio/<clip_id>.wav)."""
    import json
    import os

    from foleyflow.audio.io import load_audio

    root = Path(corpus_dir) if corpus_dir else Path(os.environ.get("FOLEYFLOW_HOME", "~/.cache/foleyflow")).expanduser() / "corpus"
    manifest = root / "clips.jsonl"
    if not manifest.is_file():
        raise InputError(f"{root}: not a foleyflow corpus (no clips.jsonl); build it or pass audio_folder")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    chosen = [r["clip_id"] for r in records if r.get("split") == split]
    return [np.asarray(load_audio(root / "audio" / f"{clip_id}.wav", max_seconds=None), dtype=np.float32) for clip_id in chosen]


class AudioClips(Dataset):
    """Training items: whole clips, cycled to ``items_per_epoch`` (a function of the index
    only, as the trainer's exact resume requires); ``random_segments`` crops them in collate."""

    def __init__(self, clips: list[np.ndarray], items_per_epoch: int | None = None):
        if not clips:
            raise InputError("no clips to train on")
        self.clips = clips
        self.length = items_per_epoch or len(clips)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> np.ndarray:
        return self.clips[index % len(self.clips)]


class CentreSegments(Dataset):
    """Validation items: the centre ``num_samples`` of each clip (zero-padded when shorter)."""

    def __init__(self, clips: list[np.ndarray], num_samples: int):
        if not clips:
            raise InputError("no clips to validate on")
        self.clips = clips
        self.num_samples = num_samples

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        clip = self.clips[index]
        return torch.from_numpy(np.ascontiguousarray(_segment(clip, (len(clip) - self.num_samples) // 2, self.num_samples)))


def _segment(clip: np.ndarray, start: int, num_samples: int) -> np.ndarray:
    segment = clip[max(start, 0) : max(start, 0) + num_samples]
    return np.pad(segment, (0, num_samples - len(segment))).astype(np.float32)


def random_segments(items: list, num_samples: int, tries: int = 4) -> torch.Tensor:
    """A random ``num_samples`` crop of each clip, with a random gain in [-6, 0] dB.

    Uses torch's global RNG (checkpointed by the trainer). Silent crops (peak < 1e-4) are
    re-drawn a few times because they teach neither network anything.
    """
    segments = []
    for item in items:
        if isinstance(item, torch.Tensor) and item.shape[-1] == num_samples:
            segments.append(item.float())  # validation items are already segments
            continue
        clip = np.asarray(item, dtype=np.float32)
        for _ in range(tries):
            start = int(torch.randint(0, max(len(clip) - num_samples, 0) + 1, ()))
            segment = _segment(clip, start, num_samples)
            if np.abs(segment).max() > 1e-4:
                break
        gain = 10 ** (-6 * float(torch.rand(())) / 20)
        segments.append(torch.from_numpy(segment) * gain)
    return torch.stack(segments)


def _clips(split: str, corpus_dir: str | None, audio_folder: str | None) -> list[np.ndarray]:
    return folder_clips(audio_folder, split) if audio_folder else corpus_clips(split, corpus_dir)


# ----------------------------------------------------------------------------- VAE


@dataclasses.dataclass
class VaeOptions:
    preset: str = "cpu"
    vae_overrides: dict = dataclasses.field(default_factory=dict)
    corpus_dir: str | None = None
    audio_folder: str | None = None
    segment_frames: int = 256  # 2.56 s: enough context for the convolutions, cheap on CPU
    items_per_epoch: int = 2048
    kl_weight: float = 1e-6
    scale_batches: int = 8  # training batches used to measure the latent std at export
    # Start the decoder's output at the data's mean log-mel (about -7.8 on our corpus, where
    # silence sits at log(1e-5) = -11.5): Adam moves a bias ~lr per step, so from 0 it
    # would spend thousands of steps just reaching the right level.
    decoder_bias_init: float | None = None
    # Start from a trained VAE (a folder, or "default" for the shipped one) instead of random weights.
    init_from: str | None = None
    # "all" trains encoder and decoder; "decoder" freezes the encoder (and quant_conv), so the
    # latent space, its scaling factor and every UNet trained on it stay valid while the
    # reconstruction improves (the decoder-only fine-tuning Stable Diffusion's ft-MSE VAE used).
    train: str = "all"


def reconstruction_l1(mel: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    return (mel - reconstruction).abs().mean()


def kl_per_mel_element(mean: torch.Tensor, logvar: torch.Tensor, mel_elements: int) -> torch.Tensor:
    """KL(N(mean, var) || N(0, I)) summed over latent elements, averaged over the batch,
    divided by the mel elements per item (see the module docstring)."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1).mean() / mel_elements


def encoder_parts(vae: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules that define the latent space: the encoder and the moments projection."""
    parts = [vae.encoder]
    if getattr(vae, "quant_conv", None) is not None:
        parts.append(vae.quant_conv)
    return parts


def avg_pool_baseline(mel: torch.Tensor, factor: int = COMPRESSION) -> torch.Tensor:
    """The trivial codec the VAE must beat: 4x average-pool then nearest upsampling of the mel."""
    pooled = F.avg_pool2d(mel, factor)
    return F.interpolate(pooled, scale_factor=factor, mode="nearest")


class VaeRecipe:
    name = "vae"

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = _options(VaeOptions, options)
        if self.options.segment_frames % COMPRESSION:
            raise InputError(f"segment_frames must be a multiple of {COMPRESSION}")
        if self.options.train not in ("all", "decoder"):
            raise InputError(f"recipe_options.train must be 'all' or 'decoder', not {self.options.train!r}")
        if self.options.train == "decoder" and self.options.init_from is None:
            raise InputError("train 'decoder' needs init_from (the VAE whose latent space to keep)")
        if self.options.init_from is not None and (self.options.vae_overrides or self.options.decoder_bias_init is not None):
            raise InputError("init_from takes the trained VAE as it is: drop vae_overrides and decoder_bias_init")
        self._train_data: AudioClips | None = None

    @property
    def decoder_only(self) -> bool:
        return self.options.train == "decoder"

    def build(self) -> dict[str, torch.nn.Module]:
        if self.options.init_from is not None:
            vae = load_vae(self.options.init_from).float().train()
        else:
            vae = build_vae(self.options.preset, **self.options.vae_overrides)
        if self.options.decoder_bias_init is not None:
            with torch.no_grad():
                vae.decoder.conv_out.bias.fill_(self.options.decoder_bias_init)
        if self.decoder_only:
            for part in encoder_parts(vae):
                part.requires_grad_(False)
        return {"vae": vae}

    def optimizer_groups(self) -> dict[str, list[str]]:
        return {"main": ["vae"]}

    def dataset(self, split: str) -> Dataset:
        clips = _clips(split, self.options.corpus_dir, self.options.audio_folder)
        if split == "train":
            self._train_data = AudioClips(clips, self.options.items_per_epoch)
            return self._train_data
        return CentreSegments(clips, self.options.segment_frames * HOP)

    def collate(self, items: list) -> torch.Tensor:
        return random_segments(items, self.options.segment_frames * HOP)

    def _mel(self, audio: torch.Tensor) -> torch.Tensor:
        return to_vae_layout(log_mel(audio))

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: torch.Tensor, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        mel = self._mel(batch)
        posterior = modules["vae"].encode(mel).latent_dist  # no graph when build() froze the encoder
        # Decoding a posterior sample (not its mean), also when only the decoder trains: a UNet's
        # output is never exactly a posterior mean, so the decoder must stay accurate around them.
        reconstruction = modules["vae"].decode(posterior.sample()).sample
        l1 = reconstruction_l1(mel, reconstruction)
        kl = kl_per_mel_element(posterior.mean, posterior.logvar, mel[0].numel())
        loss = l1 if self.decoder_only else l1 + self.options.kl_weight * kl
        return loss, {"l1": float(l1.detach()), "kl": float(kl.detach() * mel[0].numel())}

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: torch.Tensor) -> dict[str, float]:
        mel = self._mel(batch)
        vae = modules["vae"]
        reconstruction = vae.decode(vae.encode(mel).latent_dist.mode()).sample
        return {"val_loss": float(reconstruction_l1(mel, reconstruction)), "baseline_l1": float(reconstruction_l1(mel, avg_pool_baseline(mel)))}

    @torch.no_grad()
    def measure_scaling_factor(self, vae: torch.nn.Module, batch_size: int = 8) -> float:
        """1 / std of the unscaled posterior means over a few training batches."""
        data = self._train_data if self._train_data is not None else self.dataset("train")
        latents = []
        rng_state = torch.get_rng_state()
        torch.manual_seed(0)  # the crops; export must not disturb the training RNG
        for index in range(self.options.scale_batches):
            batch = self.collate([data[(index * batch_size + k) % len(data)] for k in range(batch_size)])
            latents.append(vae.encode(self._mel(batch)).latent_dist.mode())
        torch.set_rng_state(rng_state)
        return latent_scaling_factor(torch.cat(latents))

    def export(self, modules: Mapping[str, torch.nn.Module], folder: Path, card: str) -> Path:
        vae = modules["vae"]
        if self.decoder_only:
            # The encoder is the source's, so is the latent space: its scaling factor is kept
            # exactly (re-measuring would round differently and shift every UNet's inputs).
            card += f"\nDecoder fine-tuned from {self.options.init_from}; encoder and latent scaling factor ({vae.config.scaling_factor:.6f}) unchanged.\n"
            return save_vae(vae, folder, card=card)
        was_training = vae.training
        vae.eval()
        factor = self.measure_scaling_factor(vae)
        vae.train(was_training)
        vae.register_to_config(scaling_factor=factor)
        card += f"\nLatent scaling factor (1 / std of posterior means on {self.options.scale_batches} training batches): {factor:.6f}\n"
        return save_vae(vae, folder, card=card)


# ----------------------------------------------------------------------------- vocoder


@dataclasses.dataclass
class VocoderOptions:
    preset: str = "cpu"
    vocoder_overrides: dict = dataclasses.field(default_factory=dict)
    discriminator: str = "cpu"  # a discriminator preset, or "none": reconstruction losses only
    corpus_dir: str | None = None
    audio_folder: str | None = None
    segment_samples: int = 8000  # 50 frames; HiFi-GAN uses 8192 samples at hop 256
    items_per_epoch: int = 2048
    mel_weight: float = 45.0
    feature_weight: float = 2.0
    adversarial_start: int = 0  # steps of mel-loss-only warm-up before the GAN terms
    # Multi-resolution STFT loss (Parallel WaveGAN) on top of HiFi-GAN's terms. 0 = HiFi-GAN as
    # published; the CPU config uses it because it cannot afford many discriminator steps.
    stft_weight: float = 0.0
    # Start from a trained vocoder (a model folder, or "default" for the shipped one) instead of
    # the preset's random weights; vocoder_overrides still apply, the preset is not used.
    init_from: str | None = None
    # Magnitude vocoder only: take the losses on the magnitude after the mel projection (what
    # Griffin-Lim receives at inference), so the network learns what the projection cannot fix.
    through_projection: bool = False
    # Magnitude vocoder only: take the losses on the waveform of the whole inference pipeline
    # (projection, phase search, mel-consistent refinement; module docstring).
    through_phase_search: bool = False
    # With through_phase_search: each segment's MR-STFT spectral convergence on its own norm (the
    # figure ``bench codec`` averages over clips) instead of the batch's, where loud segments weigh most.
    per_segment_figures: bool = False


def discriminator_loss(real: list, fake: list) -> torch.Tensor:
    """Least-squares GAN: (1 - D(x))^2 + D(G(s))^2 summed over sub-discriminators."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for (r, _), (f, _) in zip(real, fake))


def generator_adversarial_loss(fake: list) -> torch.Tensor:
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    return sum(torch.mean(torch.abs(r - f)) for (_, real_maps), (_, fake_maps) in zip(real, fake) for r, f in zip(real_maps, fake_maps))


class VocoderRecipe:
    name = "vocoder"

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = _options(VocoderOptions, options)
        if self.options.segment_samples % HOP:
            raise InputError(f"segment_samples must be a multiple of the hop {HOP}")
        if self.options.per_segment_figures and not self.options.through_phase_search:
            raise InputError("per_segment_figures weighs the waveform figures of through_phase_search; set that too")
        if self.options.through_projection and self.options.through_phase_search:
            raise InputError("through_projection and through_phase_search: choose one (the phase search already runs after the projection)")
        self._pending: dict[int, torch.Tensor] = {}

    @property
    def has_discriminator(self) -> bool:
        return self.options.discriminator != "none"

    def build(self) -> dict[str, torch.nn.Module]:
        if self.options.init_from is None:
            generator = build_vocoder(self.options.preset, **self.options.vocoder_overrides)
        else:
            generator = load_vocoder(self.options.init_from, **self.options.vocoder_overrides)  # float32: weights take the module's dtype
        for option in ("through_projection", "through_phase_search"):
            if getattr(self.options, option) and not is_magnitude_vocoder(generator):
                raise InputError(f"{option} applies to the magnitude vocoder (Griffin-Lim phase) alone")
        modules = {"generator": generator}
        if self.has_discriminator:
            modules["discriminator"] = build_discriminator(self.options.discriminator)
        return modules

    def optimizer_groups(self) -> dict[str, list[str]]:
        if not self.has_discriminator:
            return {"generator": ["generator"]}
        return {"discriminator": ["discriminator"], "generator": ["generator"]}

    def dataset(self, split: str) -> Dataset:
        clips = _clips(split, self.options.corpus_dir, self.options.audio_folder)
        if split == "train":
            return AudioClips(clips, self.options.items_per_epoch)
        return CentreSegments(clips, self.options.segment_samples * 4)

    def collate(self, items: list) -> torch.Tensor:
        if isinstance(items[0], torch.Tensor):  # validation: fixed centre segments
            return torch.stack(items)
        return random_segments(items, self.options.segment_samples)

    def _generate(self, modules: Mapping[str, torch.nn.Module], audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = log_mel(audio)
        return mel, vocode(modules["generator"], mel)

    def _magnitude_losses(self, vocoder: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The magnitude vocoder trains on its spectrum alone (Griffin-Lim has no parameters):
        distance to the true STFT magnitude, plus the mel L1 of that magnitude against the input.
        ``vocoder`` may be a distributed wrapper: it is called, never reached into."""
        # The vocoder's STFT is the mel's own (n_fft 1024, hop 160): one STFT gives the target and
        # the input mel; the mel keeps samples // hop of its frames + 1.
        target = magnitude_spectrogram(batch, keep_last_frame=True)
        mel = magnitude_to_log_mel(target[..., :-1, :])
        if self.options.through_phase_search:
            return self._waveform_losses(vocoder(mel, output="trainable_audio"), mel, batch)
        if self.options.through_projection:
            magnitude = vocoder(mel, output="magnitude").transpose(1, 2)  # (batch, frames + 1, bins)
        else:
            magnitude = vocoder(mel, output="log_magnitude").exp().transpose(1, 2)
        distance = stft_magnitude_distance(magnitude, target, floor=TRAINING_MAGNITUDE_FLOOR)
        mel_l1 = (magnitude_to_log_mel(magnitude[..., :-1, :]) - mel).abs().mean()
        loss = self.options.stft_weight * distance + self.options.mel_weight * mel_l1
        return loss, {"magnitude_distance": float(distance.detach()), "mel_l1": float(mel_l1.detach())}

    def _waveform_losses(self, audio: torch.Tensor, mel: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """stft_weight * MR-STFT(audio, batch) + mel_weight * log-mel L1(audio, mel): the two
        figures ``bench codec`` reports, on the waveform."""
        stft = multi_resolution_stft_distance(audio, batch, per_item=self.options.per_segment_figures)
        mel_l1 = (log_mel(audio) - mel).abs().mean()
        loss = self.options.stft_weight * stft + self.options.mel_weight * mel_l1
        return loss, {"mr_stft": float(stft.detach()), "mel_l1": float(mel_l1.detach())}

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: torch.Tensor, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if is_magnitude_vocoder(unwrap(modules["generator"])):  # under DDP the generator is wrapped
            if self.has_discriminator:
                raise InputError('the Griffin-Lim-phase vocoder trains without a discriminator; set "discriminator": "none"')
            return self._magnitude_losses(modules["generator"], batch)
        adversarial = self.has_discriminator and step >= self.options.adversarial_start
        if group == "discriminator":
            mel, fake = self._generate(modules, batch)
            self._pending[id(batch)] = (mel, fake)  # the generator step of this batch reuses it
            if not adversarial:
                zero = sum(p.sum() * 0 for p in modules["discriminator"].parameters())
                return zero, {}
            loss = discriminator_loss(modules["discriminator"](batch), modules["discriminator"](fake.detach()))
            return loss, {}
        mel, fake = self._pending.pop(id(batch), None) or self._generate(modules, batch)
        self._pending.clear()
        mel_l1 = (log_mel(fake) - mel).abs().mean()
        loss = self.options.mel_weight * mel_l1
        figures = {"mel_l1": float(mel_l1.detach())}
        if self.options.stft_weight:
            stft = multi_resolution_stft_distance(fake, batch)
            loss = loss + self.options.stft_weight * stft
            figures["mr_stft"] = float(stft.detach())
        if adversarial:
            real_out, fake_out = modules["discriminator"](batch), modules["discriminator"](fake)
            feature = feature_matching_loss([(r.detach(), [m.detach() for m in maps]) for r, maps in real_out], fake_out)
            gan = generator_adversarial_loss(fake_out)
            loss = loss + self.options.feature_weight * feature + gan
            figures.update({"feature": float(feature.detach()), "gan": float(gan.detach())})
        return loss, figures

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: torch.Tensor) -> dict[str, float]:
        mel, fake = self._generate(modules, batch)
        return {"val_loss": float((log_mel(fake) - mel).abs().mean()), "mr_stft": float(multi_resolution_stft_distance(fake, batch))}

    def export(self, modules: Mapping[str, torch.nn.Module], folder: Path, card: str) -> Path:
        return save_vocoder(modules["generator"], folder, card=card)


# ----------------------------------------------------------------------------- shared figure


# Parallel WaveGAN clamps the STFT *power* at 1e-7 before the square root: magnitudes below
# sqrt(1e-7) ~ 3.2e-4 count as equal. That is about the level of 16-bit quantisation noise in one
# bin of these (unnormalised) STFTs, 110-125 dB below a full-scale sine's peak. Until session 13
# the figure clamped the magnitude at 1e-7 instead, so its log term also scored differences down
# to ~190 dB below full scale (digital silence against faint noise). The vocoder's training loss
# keeps that floor, which its shipped weights were trained with.
PWG_MAGNITUDE_FLOOR = 1e-7**0.5
TRAINING_MAGNITUDE_FLOOR = 1e-7


# (n_fft, hop) of the figure's three STFTs, each with a Hann window of n_fft samples
FIGURE_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def spectral_convergence(estimate: torch.Tensor, reference: torch.Tensor, per_item: bool = False) -> torch.Tensor:
    """||R - E|| / ||R|| of two (floored) STFT magnitudes: over the whole batch, as Parallel
    WaveGAN's loss takes it, or with ``per_item`` over each item's (bins, frames) slice, then
    averaged (the figure ``bench codec`` gives each clip, averaged over the batch)."""
    if per_item:
        return (torch.linalg.norm((reference - estimate).flatten(1), dim=1) / torch.linalg.norm(reference.flatten(1), dim=1)).mean()
    return torch.linalg.norm(reference - estimate) / torch.linalg.norm(reference)


def log_magnitude_distance(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean |log R - log E| of two (floored) STFT magnitudes."""
    return (reference.log() - estimate.log()).abs().mean()


def stft_magnitude_distance(estimate: torch.Tensor, reference: torch.Tensor, floor: float = PWG_MAGNITUDE_FLOOR, per_item: bool = False) -> torch.Tensor:
    """Spectral convergence + log-magnitude distance of two STFT magnitudes, both clamped at
    ``floor``: one resolution of Parallel WaveGAN's multi-resolution STFT loss."""
    estimate, reference = estimate.clamp_min(floor), reference.clamp_min(floor)
    return spectral_convergence(estimate, reference, per_item) + log_magnitude_distance(estimate, reference)


def figure_magnitudes(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(batch, samples) -> (batch, n_fft // 2 + 1, frames) unfloored STFT magnitudes at one of
    the figure's resolutions (centred, Hann window of n_fft)."""
    window = torch.hann_window(n_fft, device=audio.device)
    return torch.stft(audio, n_fft, hop, window=window, return_complex=True).abs()


def multi_resolution_stft_distance(estimate: torch.Tensor, reference: torch.Tensor, resolutions: tuple[tuple[int, int], ...] = FIGURE_RESOLUTIONS,
                                   per_item: bool = False) -> torch.Tensor:
    """``stft_magnitude_distance`` of two waveforms (batch, samples) averaged over STFT
    resolutions (n_fft, hop), as in Parallel WaveGAN's multi-resolution STFT loss."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        total = total + stft_magnitude_distance(figure_magnitudes(estimate, n_fft, hop), figure_magnitudes(reference, n_fft, hop), per_item=per_item)
    return total / len(resolutions)
