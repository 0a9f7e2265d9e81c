"""The RFM-Edit training recipe (SPEC 2), and the AUDIT-style DDPM baseline on the same network and data.

Per batch of (source, target, instruction) triplets:
    x_T = codec(source), x_0 = codec(target)      (frozen codec, no gradients)
    E_I = text encoder(instruction)               (base frozen, LoRA adapters trained jointly)
          instructions are replaced by "" with probability ``instruction_dropout`` (for CFG)
    flow: t ~ U(0, 1) (the paper) or logit-normal; x_t on path (1); loss (3) against (2)
    ddpm: i ~ U{0..999}; epsilon loss on z_i (+) x_T
The network always sees its noisy input concatenated with x_T on channels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from foleyflow.errors import InputError
from foleyflow.diffusion.flow import RectifiedFlowPath, TimeSampling, flow_matching_loss, sample_flow_times
from foleyflow.diffusion.objective import DiffusionObjective, sample_indices
from foleyflow.pipelines.edit_network import UNetNoise, UNetVelocity
from foleyflow.pipelines.editor import NULL_INSTRUCTION, OBJECTIVES, Editor, EditorConfig
from foleyflow.pipelines.editor_io import DEFAULT_TEXT_ENCODER, build_component

TIME_SAMPLINGS = tuple(mode.value for mode in TimeSampling)


@dataclasses.dataclass
class EditRecipeOptions:
    """``recipe_options`` of an edit config; docs/editor.md explains every key."""

    objective: str = "flow"
    sigma_min: float = 1e-4
    time_sampling: str = "uniform"
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    instruction_dropout: float = 0.1
    unet: dict[str, Any] = dataclasses.field(default_factory=dict)  # UNet2DConditionModel config, or {"factory": ...}
    text_encoder: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TEXT_ENCODER))
    codec: Any = "default"
    data: dict[str, Any] = dataclasses.field(default_factory=dict)  # {"factory": ..., split passed as split=}
    editor: dict[str, Any] = dataclasses.field(default_factory=dict)  # EditorConfig defaults saved with the model

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise InputError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {self.time_sampling!r}")
        if not 0.0 <= self.instruction_dropout < 1.0:
            raise InputError(f"instruction_dropout must be in [0, 1), got {self.instruction_dropout}")
        if not 0.0 <= self.sigma_min < 1.0 or self.logit_normal_std <= 0:
            raise InputError("need 0 <= sigma_min < 1 and logit_normal_std > 0")
        if not self.unet:
            raise InputError("recipe_options.unet must give the UNet config (in_channels = 2 x latent channels)")


class EditRecipe:
    name = "edit"

    def __init__(self, options: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        """``options`` is the config's ``recipe_options`` (the registry passes it as one mapping)."""
        options = {**(options or {}), **overrides}
        known = {f.name for f in dataclasses.fields(EditRecipeOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"recipe_options: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        self.options = EditRecipeOptions(**options)
        self.path = RectifiedFlowPath(self.options.sigma_min)
        self.diffusion = DiffusionObjective(prediction="epsilon")  # the ddpm baseline only

    # -- what to build and train ------------------------------------------------------
    def build(self) -> Mapping[str, torch.nn.Module]:
        from diffusers import UNet2DConditionModel

        spec = self.options.unet
        unet = build_component(spec, "unet") if "factory" in spec else UNet2DConditionModel.from_config(spec)
        codec = build_component(self.options.codec, "codec")
        for parameter in codec.parameters():
            parameter.requires_grad_(False)
        text_encoder = build_component(self.options.text_encoder, "text encoder")
        return {"unet": unet, "text_encoder": text_encoder, "codec": codec.eval()}

    def optimizer_groups(self) -> Mapping[str, list[str]]:
        return {"main": ["unet", "text_encoder"]}  # only requires_grad parameters: the text encoder's LoRA

    def dataset(self, split: str):
        if not self.options.data:
            raise InputError("recipe_options.data must name the triplet data set ({\"factory\": ...})")
        return build_component({**self.options.data, "split": split}, "edit data set")

    def collate(self, items: list[Mapping[str, Any]]) -> dict[str, Any]:
        return {
            "source": torch.stack([torch.as_tensor(item["source"], dtype=torch.float32) for item in items]),
            "target": torch.stack([torch.as_tensor(item["target"], dtype=torch.float32) for item in items]),
            "instruction": [str(item["instruction"]) for item in items],
        }

    # -- the objective ----------------------------------------------------------------
    def losses(self, modules, batch, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        instructions = self.drop_instructions(batch["instruction"])
        loss = self.objective_loss(modules, batch, instructions)
        return loss, {"loss": float(loss.detach())}

    def validate(self, modules, batch) -> dict[str, float]:
        # A fixed seed makes validation figures comparable from one evaluation to the next.
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            return {"val_loss": float(self.objective_loss(modules, batch, batch["instruction"]))}

    def objective_loss(self, modules, batch, instructions: list[str]) -> torch.Tensor:
        codec, unet, text_encoder = modules["codec"], modules["unet"], modules["text_encoder"]
        device = next(unet.parameters(), batch["source"]).device
        with torch.no_grad():
            x_source = codec.encode(batch["source"].to(device))
            x_0 = codec.encode(batch["target"].to(device))
        states, mask = text_encoder.encode(instructions)
        eps = torch.randn_like(x_0)
        if self.options.objective == "ddpm":
            noised = self.diffusion.noise(x_0, eps, sample_indices(x_0.shape[0], self.diffusion.schedule, device=device))
            output = UNetNoise(unet)(torch.cat([noised.z_s, x_source], dim=1), noised.index, states, mask)
            return self.diffusion.loss(output, noised)
        sample = self.path.sample(x_0, eps, self.sample_t(x_0.shape[0]).to(device))
        velocity = UNetVelocity(unet)(torch.cat([sample.x_t, x_source], dim=1), sample.t, states, mask)
        return flow_matching_loss(velocity, sample)

    def sample_t(self, batch: int) -> torch.Tensor:
        """Flow times: uniform (the paper) or logit-normal (more weight mid-path)."""
        o = self.options
        return sample_flow_times(batch, o.time_sampling, loc=o.logit_normal_mean, scale=o.logit_normal_std)

    def drop_instructions(self, instructions: list[str]) -> list[str]:
        keep = torch.rand(len(instructions)) >= self.options.instruction_dropout
        return [text if kept else NULL_INSTRUCTION for text, kept in zip(instructions, keep.tolist())]

    # -- the result ---------------------------------------------------------------------
    def export(self, modules, folder: Path, card: str) -> Path:
        config = EditorConfig(
            **{**self.options.editor, "objective": self.options.objective, "sigma_min": self.options.sigma_min},
            unet=dict(modules["unet"].config),
            text_encoder=self.options.text_encoder,
            codec=self.options.codec,
        )
        return Editor(modules["unet"], modules["text_encoder"], modules["codec"], config).save_pretrained(folder, card)
