"""Text-to-audio generation with a trained Tango generator (SPEC 1).

    gen = Generator.from_pretrained("default")          # or a folder written by `foleyflow train tta`
    audio = gen.generate("A cow moos while rain falls", steps=50, cfg=3.0, seed=0)   # (1, samples) at 16 kHz

Pipeline: prompt -> text-encoder states tau; seeded noise z_1 of the requested length;
a sampler (DDIM, DDPM or DPM-Solver++ from ``foleyflow.diffusion``) on the denoiser
``Denoiser(ClassifierFreeGuidance(unet, w))`` with Tango's guidance
eps = w eps(z, tau) + (1 - w) eps(z, "") (SPEC 1); the VAE decodes the latents to a log-mel and
the vocoder renders the waveform.

Durations: the latent length follows the requested seconds (640 samples per latent frame).
Beyond the training window the UNet is applied to overlapping windows of the training length
and their x_0 estimates are cross-faded (triangular weights) at every sampler step, so the
whole latent is denoised as one piece (``WindowedDenoiser``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.diffusion import ClassifierFreeGuidance, DDPMSchedule, Denoiser, get_sampler, initial_noise
from foleyflow.errors import InputError
from foleyflow.models.checkpoint import load_config, load_weights, resolve_model_dir

log = logging.getLogger(__name__)

GENERATOR_CLASS = "TangoGenerator"
MAX_SECONDS = 300.0
# How a generator samples unless told otherwise (Tango: 200 DDIM steps, w = 3). A distilled
# student records its own in config.json's "sampling": DDIM at its N, w = 1 (guidance is inside it).
DEFAULT_SAMPLING = {"steps": 200, "cfg": 3.0, "sampler": "ddim"}


class WindowedDenoiser:
    """Apply a denoiser to a latent longer than its training window, window by window.

    Windows of ``window`` latent frames overlap by ``overlap`` frames; the x_0 estimates are
    averaged with triangular weights that fall to a small floor at window edges, which
    cross-fades neighbouring windows. Latents that fit one window pass straight through.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor], window: int, overlap: int):
        if not 0 <= overlap < window:
            raise InputError(f"window overlap must be in [0, {window}), got {overlap}")
        self.denoiser, self.window, self.overlap = denoiser, window, overlap
        self.schedule = getattr(denoiser, "schedule", None)

    def starts(self, length: int) -> list[int]:
        if length <= self.window:
            return [0]
        hop = self.window - self.overlap
        starts = list(range(0, length - self.window, hop)) + [length - self.window]
        return sorted(set(starts))

    def __call__(self, z_s: torch.Tensor, s: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        length = z_s.shape[2]
        if length <= self.window:
            return self.denoiser(z_s, s, **kwargs)
        total = torch.zeros_like(z_s)
        weights = torch.zeros(length, device=z_s.device, dtype=z_s.dtype)
        ramp = self._ramp(z_s)
        for start in self.starts(length):
            piece = self.denoiser(z_s[:, :, start : start + self.window], s, **kwargs)
            total[:, :, start : start + self.window] += piece * ramp[None, None, :, None]
            weights[start : start + self.window] += ramp
        return total / weights[None, None, :, None]

    def _ramp(self, like: torch.Tensor) -> torch.Tensor:
        position = torch.arange(self.window, device=like.device, dtype=like.dtype)
        edge = torch.minimum(position + 1, self.window - position) / max(self.overlap, 1)
        return edge.clamp(min=1e-3, max=1.0)


class Generator:
    def __init__(
        self,
        unet: torch.nn.Module,
        codec: Any,
        text_encoder: Any,
        schedule: DDPMSchedule,
        prediction: str,
        train_seconds: float,
        sampling: dict[str, Any] | None = None,
        distillation: dict[str, Any] | None = None,
    ):
        self.unet = unet.eval()
        self.codec = codec.eval()
        self.text_encoder = text_encoder.eval()
        self.schedule = schedule
        self.prediction = prediction
        self.train_seconds = train_seconds
        self.sampling = {**DEFAULT_SAMPLING, **(sampling or {})}
        self.distillation = distillation  # None, or what `foleyflow distill tta` recorded (N, weighting, ...)
        self.device = next(unet.parameters()).device

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = "default", device: str | torch.device | None = None) -> "Generator":
        """"default" (the shipped generator) or a generator folder (``foleyflow train tta``'s export)."""
        from foleyflow.models.codec import Codec
        from foleyflow.models.text import TextEncoder

        folder, config = read_generator_config(name)
        codec = Codec.from_pretrained(codec_location(folder, config))
        text_encoder = TextEncoder(config["text_encoder"], config.get("text_max_length", 128))
        generator = cls(
            load_generator_unet(folder, config),
            codec,
            text_encoder,
            DDPMSchedule(**config["schedule"]),
            config["prediction"],
            float(config["train_seconds"]),
            config.get("sampling"),
            config.get("distillation"),
        )
        return generator.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def to(self, device: str | torch.device) -> "Generator":
        self.device = torch.device(device)
        for module in (self.unet, self.codec, self.text_encoder):
            module.to(self.device)
        return self

    # --- generation ----------------------------------------------------------------------

    def sampling_settings(self, steps: int | None = None, cfg: float | None = None, sampler: str | None = None) -> tuple[int, float, str]:
        """(steps, cfg, sampler): the given ones, else the model's recorded defaults.

        A distilled student learnt the DDIM update at its N only, so other samplers are refused.
        """
        steps = self.sampling["steps"] if steps is None else steps
        cfg = self.sampling["cfg"] if cfg is None else cfg
        sampler = self.sampling["sampler"] if sampler is None else sampler
        if self.distillation is not None and sampler != "ddim":
            raise InputError(f"this generator was distilled for DDIM at {self.sampling['steps']} steps; the {sampler!r} sampler does not apply to it")
        return int(steps), float(cfg), sampler

    @torch.no_grad()
    def generate(
        self,
        prompt: str | list[str],
        steps: int | None = None,
        cfg: float | None = None,
        seed: int = 0,
        sampler: str | None = None,
        num_samples: int = 1,
        duration: float | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Audio for each prompt, ``num_samples`` each: float32 (prompts x num_samples, samples) at 16 kHz.

        Sample k of prompt p starts from noise seeded with ``seed + p * num_samples + k``, so a
        sample does not depend on the batch it is generated in. ``duration`` defaults to the
        training window (10.24 s for Tango); steps, cfg and sampler to the model's own
        (``sampling_settings``: 200 DDIM steps at w = 3, or a distilled student's N at w = 1).
        ``on_step(done, total)`` is called after each sampling step (the CLI draws its progress bar from it).
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        duration = self.train_seconds if duration is None else float(duration)
        steps, cfg, sampler = self.sampling_settings(steps, cfg, sampler)
        _check_request(prompts, steps, cfg, num_samples, duration)
        latents = self.generate_latents(prompts, steps, cfg, seed, sampler, num_samples, duration, on_step)
        samples = int(round(duration * SAMPLE_RATE))
        audio = self.codec.decode(latents, samples)
        return audio.float().cpu().numpy()

    def generate_latents(self, prompts: list[str], steps: int, cfg: float, seed: int, sampler: str, num_samples: int, duration: float,
                         on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
        solve = get_sampler(sampler)
        states, mask, empty_states, empty_mask = self._text_states(prompts)
        states, mask = states.repeat_interleave(num_samples, 0), mask.repeat_interleave(num_samples, 0)
        count = len(prompts) * num_samples
        shape = (count, self.unet.config.out_channels, self.latent_frames(duration), self._latent_bins())
        generators = [torch.Generator(self.device).manual_seed(seed + k) for k in range(count)]
        noise = initial_noise(shape, generator=generators, device=self.device, dtype=torch.float32)
        denoiser = WindowedDenoiser(Denoiser(ClassifierFreeGuidance(self._unet_call, cfg), self.schedule, self.prediction), self.latent_frames(self.train_seconds), self.latent_frames(self.train_seconds) // 4)
        extra = {"cond": {"context": states, "mask": mask}, "uncond": {"context": empty_states.expand(count, -1, -1), "mask": empty_mask.expand(count, -1)}}
        step_generator = torch.Generator(self.device).manual_seed(seed)
        times = sampling_times(self.schedule, steps).to(self.device)
        callback = None if on_step is None else (lambda info: on_step(info["i"] + 1, steps))
        return solve(denoiser, noise, times, extra_args=extra, callback=callback, disable=True, generator=step_generator)

    def latent_frames(self, seconds: float) -> int:
        """Latent frames for ``seconds``, rounded up to what the UNet's down-sampling divides."""
        per_frame = self.codec.samples_per_latent_frame
        frames = math.ceil(seconds * SAMPLE_RATE / per_frame)
        factor = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return math.ceil(frames / factor) * factor

    def _latent_bins(self) -> int:
        sample_size = self.unet.config.sample_size
        return sample_size[1] if isinstance(sample_size, (list, tuple)) else 16

    def _unet_call(self, x: torch.Tensor, index: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.unet(x, index, encoder_hidden_states=context, encoder_attention_mask=mask).sample

    def _text_states(self, prompts: list[str]) -> tuple[torch.Tensor, ...]:
        """States and masks of the prompts and of the empty prompt (the unconditional branch),
        encoded together so they share one padded length (CFG then runs as one batch)."""
        states, mask = self.text_encoder.encode(prompts + [""])
        return states[:-1], mask[:-1], states[-1:], mask[-1:]


def read_generator_config(name: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(folder, config.json) of a generator folder ("default": the shipped one), checked to be one."""
    folder = resolve_model_dir(name, "generator")
    config = load_config(folder)
    if config.get("_class_name") != GENERATOR_CLASS:
        raise InputError(f"{folder}: not a text-to-audio generator (class {config.get('_class_name')!r})")
    return folder, config


def load_generator_unet(folder: Path, config: dict[str, Any]) -> torch.nn.Module:
    """The generator's UNet with its weights (strict: every key must match)."""
    from foleyflow.models.unet import unet_from_config
    from foleyflow.models.vae import load_state_strict

    unet = unet_from_config(config["unet"])
    load_state_strict(unet, load_weights(folder), str(folder))
    return unet


def codec_location(folder: Path, config: dict[str, Any]) -> str:
    """The codec a generator names: "default", an absolute folder, or one inside the generator folder."""
    name = config["codec"]
    return name if name == "default" or os.path.isabs(name) else str(folder / name)


def sampling_times(schedule: DDPMSchedule, steps: int) -> torch.Tensor:
    """(steps + 1,) diffusion times from 1 to 0 on the training grid s = (i + 1) / N.

    diffusers' "trailing" spacing, rounded to whole indices so that every sampler (the
    diffusers-based DDPM and DPM-Solver++ need integer indices) accepts any step count;
    when N / steps is whole it is exactly ``foleyflow.diffusion.schedule.diffusion_times``.
    """
    count = schedule.num_train_timesteps
    if not 1 <= steps <= count:
        raise InputError(f"steps must be in [1, {count}], got {steps}")
    indices = torch.round(torch.arange(count, 0, -count / steps, dtype=torch.float64)) - 1
    return torch.cat([schedule.time_of(indices), torch.zeros(1, dtype=torch.float64)]).float()


def check_prompt(prompt: str) -> str:
    """A user's prompt with its whitespace tidied; InputError when it is empty. The library's
    ``generate`` takes "" (the unconditional model classifier-free guidance trains); the command
    line, the web page and a prompts CSV refuse it, where it is far likelier a slip than a request."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty; describe the sound, e.g. \"A dog barks while rain falls\"")
    return " ".join(prompt.split())


def _check_request(prompts: list[str], steps: int, cfg: float, num_samples: int, duration: float) -> None:
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise InputError("give at least one text prompt")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    if num_samples < 1:
        raise InputError(f"num_samples must be >= 1, got {num_samples}")
    if not math.isfinite(cfg) or cfg < 0:
        raise InputError(f"cfg must be a finite number >= 0, got {cfg}")
    if not 0 < duration <= MAX_SECONDS:
        raise InputError(f"duration must be in (0, {MAX_SECONDS:g}] seconds, got {duration}")


def write_outputs(audio: np.ndarray, output: str | os.PathLike) -> list[Path]:
    """One audio file per generated sample: ``out.wav``, or ``out_0.wav``, ``out_1.wav`` ... for several
    (the suffix, hence the format, is ``output``'s)."""
    from foleyflow.audio.io import write_audio

    output = Path(output)
    if len(audio) == 1:
        return [write_audio(output, audio[0])]
    return [write_audio(output.with_name(f"{output.stem}_{index}{output.suffix}"), row) for index, row in enumerate(audio)]
