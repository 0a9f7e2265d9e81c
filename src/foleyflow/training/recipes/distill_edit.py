"""Few-step editing: progressive halving of the RFM-Edit editor's Euler steps (SPEC 2 + SPEC 4's idea).

The editor is a rectified-flow model solved with Euler from t_start to 1, so Algorithm 1's
"one student DDIM step = two teacher DDIM steps" becomes "one student Euler step = two teacher
Euler steps": on the student's grid t = t_start + k (1 - t_start) / N, the guided teacher takes two
Euler steps of dt = (1 - t_start) / 2N from x_t, and the student regresses the velocity
v~ = (x_{t+2dt} - x_t) / (2 dt) that lands there in one step
(``foleyflow.diffusion.distill.flow_halving_loss``). x_t is drawn on the training path (1)
between noise and the true target, as Algorithm 1 draws z_t from the data. Rounds halve N
(``foleyflow distill edit``: e.g. 32 -> 16 -> 8).

Why halving and not reflow (retraining on (x_start, teacher output) pairs):
- cost: a halving sample costs two guided teacher calls; a reflow pair costs the teacher's whole
  trajectory (200 guided calls at the paper's setting) before the student sees it, which on our
  2-core machines would leave almost no budget for training the student;
- target: the benchmark compares the student at N steps with the teacher's own many-step Euler
  result, and a perfect halving student reproduces the teacher's 2N-step Euler run exactly
  (tested), while reflow straightens paths towards a new coupling whose endpoint can drift;
- reuse: the same round structure, trainer runs and outer loop as the generator's BSA rounds.
The flow loss needs no SNR weighting: the velocity target's scale does not blow up at either end
of the path, unlike x-prediction from eps at low SNR, which is what BSA's weights correct.

The student is a copy of the teacher's UNet (theta <- eta); the text encoder with its LoRA and the
codec are the teacher's, frozen. Data: the edit recipe's data path (``recipe_options.data``, the
triplet set by default). The exported editor runs unguided (cfg 1: the guidance is learnt) at N.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from foleyflow.diffusion.distill import flow_halving_loss
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource
from foleyflow.errors import InputError
from foleyflow.models.checkpoint import resolve_model_dir
from foleyflow.pipelines.edit_network import UNetVelocity, branch_kwargs
from foleyflow.pipelines.editor import NULL_INSTRUCTION, Editor
from foleyflow.training.config import dataclass_from_dict, expand_path
from foleyflow.training.recipes.distill import DEFAULT_CONFIG as GENERATOR_CONFIG, round_record
from foleyflow.training.recipes.edit import DEFAULT_DATA, EditRecipe

# `foleyflow distill edit` without --config: the generator rounds' trainer settings, the triplet
# set `foleyflow data build` wrote, and the edit recipe's batch size (the codec runs per batch).
DEFAULT_CONFIG: dict[str, Any] = {**GENERATOR_CONFIG, "recipe": "distill-edit", "recipe_options": {"data": dict(DEFAULT_DATA)}, "batch_size": 8}


@dataclasses.dataclass
class EditDistillOptions:
    teacher: str
    teacher_steps: int | None = None  # default: the teacher's own steps
    guidance: float | None = None  # CFG inside the teacher's steps; default: the teacher's cfg_scale
    data: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_DATA))
    # The edit recipe's data settings, passed through (see EditOptions): latent-time crops make a
    # step cheaper (the UNet is convolutional, the teacher's two steps see the same crop), and the
    # triplet limits reuse the latent cache the editor's own training filled.
    crop_frames: int | None = None
    crop_on_edit: float = 0.0
    train_triplets: int | None = None
    val_triplets: int | None = None


class EditDistillRecipe(EditRecipe):
    name = "distill-edit"

    def __init__(self, options: Mapping[str, Any]):
        from foleyflow.pipelines.editor_io import load_editor

        self.distill = dataclass_from_dict(EditDistillOptions, options, "recipe_options")
        self.teacher_dir = resolve_model_dir(expand_path(self.distill.teacher), "editor")
        self.teacher = load_editor(self.teacher_dir)
        config = self.teacher.config
        if config.objective != "flow":
            raise InputError(f"{self.distill.teacher}: a {config.objective!r} editor; Euler-step halving needs a flow (RFM-Edit) editor")
        d = self.distill
        super().__init__({"sigma_min": config.sigma_min, "instruction_dropout": 0.0, "unet": config.unet, "text_encoder": config.text_encoder, "data": d.data,
                          "crop_frames": d.crop_frames, "crop_on_edit": d.crop_on_edit, "train_triplets": d.train_triplets, "val_triplets": d.val_triplets})
        self.teacher_steps = int(self.distill.teacher_steps or config.steps)
        self.guidance = float(config.cfg_scale if self.distill.guidance is None else self.distill.guidance)
        if self.teacher_steps < 2 or self.teacher_steps % 2:
            raise InputError(f"teacher_steps must be even to be halved, got {self.teacher_steps}")
        if self.guidance < 0:
            raise InputError(f"guidance must be >= 0, got {self.guidance}")
        self.student_steps = self.teacher_steps // 2
        self.t_start = config.t_start

    def build(self) -> Mapping[str, torch.nn.Module]:
        teacher = self.teacher
        return {"unet": copy.deepcopy(teacher.unet), "teacher_unet": teacher.unet, "text_encoder": teacher.text_encoder, "codec": teacher.codec}

    def optimizer_groups(self) -> Mapping[str, list[str]]:
        return {"main": ["unet"]}

    def objective_losses(self, modules, batch, instructions: list[str], crop: bool,
                         keep_source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One student Euler step against two guided teacher Euler steps. Replaces the edit
        recipe's objective in its ``losses`` (cropped) and ``validate`` (whole window). The student
        always sees the source (``keep_source`` is None: this recipe sets no ``source_dropout``)."""
        text_encoder = modules["text_encoder"]
        device = next(modules["unet"].parameters()).device
        x_source, x_0, _ = self.training_latents(modules, batch, device, crop)  # the latent cache when it is on
        with torch.no_grad():
            states, mask = text_encoder.encode(list(instructions) + [NULL_INSTRUCTION])
        cond, uncond = branch_kwargs((states[:-1], None if mask is None else mask[:-1]), (states[-1:], None if mask is None else mask[-1:]))
        teacher = ClassifierFreeGuidance(ConcatSource(UNetVelocity(modules["teacher_unet"])), self.guidance)
        student = ConcatSource(UNetVelocity(modules["unet"]))
        loss, _ = flow_halving_loss(
            student, teacher, self.path, x_0, self.student_steps, self.t_start,
            student_args={"source": x_source, **cond}, teacher_args={"source": x_source, "cond": cond, "uncond": uncond},
        )
        return {"loss": loss}

    def export(self, modules, folder: Path, card: str) -> Path:
        unet = getattr(modules["unet"], "module", modules["unet"])
        config = dataclasses.replace(self.teacher.config, steps=self.student_steps, cfg_scale=1.0, solver="euler", unet=dict(unet.config), distillation=self.record())
        # The instruction encoder is the teacher's, unchanged, so the teacher's localiser and remover still fit it.
        return Editor(unet, modules["text_encoder"], modules["codec"], config, self.teacher.localiser,
                      remover=self.teacher.remover).save_pretrained(folder, card)

    def record(self) -> dict[str, Any]:
        return round_record(self, self.teacher.config.distillation, t_start=self.t_start, method="progressive halving of Euler steps")
