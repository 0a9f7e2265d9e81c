"""BSA progressive distillation of a Tango generator (SPEC 4, Algorithm 1 of seed 003): one round.

One round on the shared trainer turns a teacher sampled with DDIM at N_teacher steps into a
student sampled with DDIM at N = N_teacher / 2 steps:

    theta <- eta                      ``build``: the student UNet starts as a copy of the teacher's
    y, x ~ D; tau, z_0               the tta recipe's data path (cached VAE latents, cached text states)
    t = i / N, eps, z_t              ``foleyflow.diffusion.distill.progressive_distillation_loss``
    two DDIM steps of the guided teacher (Tango's CFG w eps(z, tau) + (1 - w) eps(z, "") inside
    each step), the x~_0 target, and w(lambda_t) || x~_0 - x_theta(z_t, tau) ||^2
    with w = bsa (min(SNR + 1, gamma), the default) | salimans-max | salimans-plus1 | min-snr | none

The exported student is a generator folder like the teacher's, plus ``"sampling": {"steps": N,
"cfg": 1, "sampler": "ddim"}`` (it learnt the guided prediction, so it runs unguided) and a
``"distillation"`` record (N, teacher, weighting, ...). ``foleyflow distill tta`` chains K
rounds (``foleyflow.training.rounds``): the student becomes the teacher and N halves.

Recipe options (``recipe_options`` of a "distill" config):
    teacher        generator name or folder (required)
    teacher_steps  N_teacher (default: the teacher's own sampling steps, 200 for Tango)
    guidance       CFG scale inside the teacher steps (default: the teacher's own, 3 for Tango,
                   1 for a student, which already carries the guidance)
    weighting, gamma
    data           the tta recipe's data options (train_manifest, val_manifest, ...); the
                   codec, text encoder, schedule, prediction and clip length come from the teacher
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from foleyflow.diffusion import ClassifierFreeGuidance, Denoiser
from foleyflow.diffusion.distill import parse_weighting, progressive_distillation_loss
from foleyflow.errors import InputError
from foleyflow.generator import DEFAULT_SAMPLING, codec_location, load_generator_unet, read_generator_config
from foleyflow.pipelines.edit_network import UNetNoise, branch_kwargs
from foleyflow.training.cache import FeatureCache, hash_text
from foleyflow.training.config import dataclass_from_dict, expand_path
from foleyflow.training.recipes.tta import TTARecipe

# The tta recipe's options a distillation config may set; everything else follows the teacher.
DATA_OPTIONS = ("train_manifest", "val_manifest", "train_split", "val_split", "mixtures", "mixture_seed", "cache", "cache_dir", "encode_batch_size")
EMPTY_PROMPT = ""  # the unconditional branch at inference (SPEC 6), as the Generator uses it
# `foleyflow distill tta` without --config: the corpus the cpu-small generator was trained on.
# Salimans & Ho anneal the LR linearly to 0 in every round; the student starts at the teacher,
# so a small LR and no warm-up.
DEFAULT_CONFIG: dict[str, Any] = {
    "recipe": "distill",
    "recipe_options": {"data": {"train_manifest": "$FOLEYFLOW_HOME/corpus/clips.jsonl", "val_manifest": "$FOLEYFLOW_HOME/corpus/clips.jsonl"}},
    "max_steps": 2000,
    "batch_size": 16,
    "optimizer": {"lr": 1e-4, "lr_schedule": "linear", "warmup_steps": 0, "max_grad_norm": 1.0},
    "ema_decay": 0.999,
    "val_every": 250,
    "val_batches": 4,
    "checkpoint_every": 250,
    "log_every": 25,
}


@dataclasses.dataclass
class DistillOptions:
    teacher: str
    teacher_steps: int | None = None
    guidance: float | None = None
    weighting: str = "bsa"
    gamma: float = 5.0
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_weighting(self.weighting)
        if self.gamma <= 0:
            raise InputError(f"recipe_options.gamma must be > 0, got {self.gamma}")
        if self.guidance is not None and self.guidance < 0:
            raise InputError(f"recipe_options.guidance must be >= 0, got {self.guidance}")
        unknown = sorted(set(self.data) - set(DATA_OPTIONS))
        if unknown:
            raise InputError(f"recipe_options.data: unknown key(s) {', '.join(unknown)} (known: {', '.join(DATA_OPTIONS)}; the rest follows the teacher)")


def teacher_sampling(config: Mapping[str, Any]) -> dict[str, Any]:
    """How a generator config says it samples (Tango's defaults unless it records its own)."""
    return {**DEFAULT_SAMPLING, **config.get("sampling", {})}


def tta_options_of(folder: Path, config: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The tta recipe's options that encode data exactly as the teacher was trained on it."""
    return {
        **data,
        "codec": codec_location(folder, config),
        "text_encoder": config["text_encoder"],
        "text_max_length": config.get("text_max_length", 128),
        "prediction": config["prediction"],
        **config["schedule"],
        "clip_seconds": float(config["train_seconds"]),
        "text_dropout": 0.0,  # Algorithm 1 conditions the student on every caption
    }


class DistillRecipe(TTARecipe):
    name = "distill"

    def __init__(self, options: Mapping[str, Any]):
        self.distill = dataclass_from_dict(DistillOptions, options, "recipe_options")
        self.teacher_dir, self.teacher_config = read_generator_config(expand_path(self.distill.teacher))
        if "train_manifest" not in self.distill.data:
            raise InputError("recipe_options.data.train_manifest is required (the captioned clips to distil on)")
        super().__init__(tta_options_of(self.teacher_dir, self.teacher_config, self.distill.data))
        sampling = teacher_sampling(self.teacher_config)
        self.teacher_steps = int(self.distill.teacher_steps or sampling["steps"])
        self.guidance = float(sampling["cfg"] if self.distill.guidance is None else self.distill.guidance)
        self.weighting = parse_weighting(self.distill.weighting)
        if self.teacher_steps < 2 or self.teacher_steps % 2 or self.teacher_steps > self.options.num_train_timesteps:
            raise InputError(f"teacher_steps must be even and in [2, {self.options.num_train_timesteps}] to be halved, got {self.teacher_steps}")
        self.student_steps = self.teacher_steps // 2
        self._empty_prompt: torch.Tensor | None = None

    # --- the Recipe contract -------------------------------------------------------------

    def build(self) -> dict[str, torch.nn.Module]:
        teacher = load_generator_unet(self.teacher_dir, self.teacher_config)
        return {"unet": copy.deepcopy(teacher), "teacher": teacher}  # theta <- eta

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: Any, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return self.distillation_loss(modules, batch)

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: Any) -> dict[str, float]:
        return {"val_loss": self.distillation_loss(modules, batch)[0].item()}

    def distillation_loss(self, modules: Mapping[str, torch.nn.Module], batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Algorithm 1's loss on one batch of cached latents z_0 and caption states tau."""
        schedule, prediction = self.objective.schedule, self.objective.prediction
        empty = self.empty_prompt_states().to(batch["text_states"])
        cond, uncond = branch_kwargs((batch["text_states"], batch["text_mask"]), (empty[None], torch.ones(1, empty.shape[0], dtype=torch.long, device=empty.device)))
        student = Denoiser(UNetNoise(modules["unet"]), schedule, prediction)
        teacher = Denoiser(ClassifierFreeGuidance(UNetNoise(modules["teacher"]), self.guidance), schedule, prediction)
        return progressive_distillation_loss(
            student, teacher, batch["latent"], self.student_steps, self.weighting, self.distill.gamma, student_args=cond, teacher_args={"cond": cond, "uncond": uncond}
        )

    def empty_prompt_states(self) -> torch.Tensor:
        """(tokens, hidden) states of "" for the teacher's unconditional branch, from the feature cache
        (a run with a full cache never loads the text encoder for it)."""
        if self._empty_prompt is None:
            if not self.options.cache:
                self._empty_prompt = self.encode_text([EMPTY_PROMPT])[0].cpu()
            else:
                cache = FeatureCache(expand_path(self.options.cache_dir) if self.options.cache_dir else None)
                encoder = self.encoder_hashes()["text"]
                key = hash_text(EMPTY_PROMPT)
                cache.fill("text", encoder, [(key, EMPTY_PROMPT)], lambda texts: [{"states": s} for s in self.encode_text(texts)])
                self._empty_prompt = cache.load("text", encoder, key)["states"]
        return self._empty_prompt

    def model_config(self, unet: torch.nn.Module, folder: Path) -> dict[str, Any]:
        config = super().model_config(unet, folder)
        config["sampling"] = {"steps": self.student_steps, "cfg": 1.0, "sampler": "ddim"}
        config["distillation"] = self.record()
        return config

    def record(self) -> dict[str, Any]:
        """What the student's config.json says about how it was made."""
        return round_record(self, self.teacher_config.get("distillation"), weighting=self.weighting.value, gamma=self.distill.gamma,
                            method="BSA progressive distillation (seed 003, Algorithm 1)")


def round_record(recipe, previous: Mapping[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """The distillation record of one round (generator or editor), counting on from the teacher's."""
    return {
        "steps": recipe.student_steps,
        "round": int((previous or {}).get("round", 0)) + 1,
        "teacher": str(recipe.teacher_dir.resolve()),
        "teacher_steps": recipe.teacher_steps,
        "teacher_guidance": recipe.guidance,
        **extra,
    }
