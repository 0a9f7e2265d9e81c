"""The RFM-Edit training recipe (SPEC 2), and the AUDIT-style DDPM baseline on the same network and data.

Per batch of (source, target, instruction) triplets:
    x_T = codec(source), x_0 = codec(target)      (frozen codec, no gradients)
    E_I = text encoder(instruction)               (base frozen, LoRA adapters trained jointly)
          instructions are replaced by "" with probability ``instruction_dropout`` (for CFG)
    flow: t ~ U(0, 1) (the paper) or logit-normal; x_t on path (1); loss (3) against (2)
          ``path: "from-source"``: t in [t_start, 1] on diffusion.flow.SourceBridgePath, the
          straight path from the sampler's start state (4) to the target (not in the papers)
    ddpm: i ~ U{0..999}; epsilon loss on z_i (+) x_T
The network always sees its noisy input concatenated with x_T on channels.

Issue 9 additions (localisation and preservation):
    source dropout  ``source_dropout``: the network sees a zero source on that share of rows,
                 which then train as text-to-audio from the instruction (InstructPix2Pix's
                 conditioning dropout; not in RFM-Edit); the path itself is unchanged
    mask head    a UNet with C + 1 output channels predicts the edit region from x_T and the
                 instruction; trained with BCE against the data set's ground-truth region
                 (pipelines.masks.ground_truth_latent_mask), only on rows that kept their
                 instruction (without it the region is unknowable)
    init_from    start from a trained editor's UNet and LoRA (a folder, or "default"): fine-tunes
    init_unet_from_generator  start the UNet from a text-to-audio generator's (a folder, or
                 "default"; the same UNet config but for the channels): InstructPix2Pix's
                 initialisation, with the time axis and the output's sign turned to the flow's
                 (models.unet.editor_unet_from_generator); the LoRA adapters start fresh
    region loss  ``edit_region_weight`` w: the velocity loss weighs the edit region 1 + w
    crops        ``crop_frames``: train on a latent-time window; convolutions and attention
                 carry over to the full window at inference, and a crop costs proportionally
                 less CPU. A crop holds (part of) the edit region with probability
                 ``crop_on_edit`` so the rare edited frames are not diluted further.
    cache        source and target latents of every (scene, mix) are encoded once into the
                 feature cache (keyed by codec hash and the mix's recipe), so training never
                 renders audio or runs the VAE.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from foleyflow.errors import InputError
from foleyflow.diffusion.flow import RectifiedFlowPath, SourceBridgePath, TimeSampling, flow_matching_loss, sample_flow_times
from foleyflow.diffusion.objective import DiffusionObjective, sample_indices
from foleyflow.diffusion.tensors import weighted_mse
from foleyflow.pipelines.edit_network import UNetNoise, UNetVelocity
from foleyflow.pipelines.masks import ground_truth_latent_mask
from foleyflow.pipelines.editor import NULL_INSTRUCTION, OBJECTIVES, Editor, EditorConfig
from foleyflow.pipelines.editor_io import DEFAULT_TEXT_ENCODER, build_component
from foleyflow.training.config import expand_path

TIME_SAMPLINGS = tuple(mode.value for mode in TimeSampling)
DEFAULT_DATA = {"factory": "foleyflow.data.datasets:TripletDataset"}  # the triplet set `foleyflow data build` wrote
PATHS = ("paper", "from-source")  # path (1) from noise to the target; SourceBridgePath


@dataclasses.dataclass
class EditRecipeOptions:
    """``recipe_options`` of an edit config; docs/editor.md explains every key."""

    objective: str = "flow"
    sigma_min: float = 1e-4
    time_sampling: str = "uniform"
    path: str = "paper"  # PATHS; "from-source" starts at the editor's t_start (recipe_options.editor)
    init_from: str | None = None  # an editor folder or "default": fine-tune it (same UNet config)
    init_unet_from_generator: str | None = None  # a generator folder or "default": start the UNet from its (flow objective only)
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    instruction_dropout: float = 0.1
    source_dropout: float = 0.0  # share of training rows whose source latent is zeroed (InstructPix2Pix; not in RFM-Edit)
    unet: dict[str, Any] = dataclasses.field(default_factory=dict)  # UNet2DConditionModel config, or {"factory": ...}
    text_encoder: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TEXT_ENCODER))
    codec: Any = "default"
    data: dict[str, Any] = dataclasses.field(default_factory=dict)  # {"factory": ..., split passed as split=}
    editor: dict[str, Any] = dataclasses.field(default_factory=dict)  # EditorConfig defaults saved with the model
    mask_head: bool = False  # UNet out_channels = C + 1; the last channel: edit-region logits
    mask_loss_weight: float = 1.0
    mask_energy_fraction: float = 0.2  # ground truth: span frames changed by >= this share of the peak
    edit_region_weight: float = 0.0  # velocity loss weight 1 + w inside the ground-truth region
    crop_frames: int | None = None  # latent frames per training crop (None: the whole window)
    crop_on_edit: float = 0.75  # share of crops placed on the edit region
    train_triplets: int | None = None  # first N triplets of a split (None: all); passed to the data set
    val_triplets: int | None = None
    cache: bool = True
    cache_dir: str | None = None
    encode_batch_size: int = 8

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise InputError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {self.time_sampling!r}")
        if self.path not in PATHS:
            raise InputError(f"path must be one of {', '.join(PATHS)}, got {self.path!r}")
        if self.path == "from-source" and self.objective != "flow":
            raise InputError("path 'from-source' is a flow-matching path: it needs objective 'flow'")
        if not 0.0 <= self.instruction_dropout < 1.0:
            raise InputError(f"instruction_dropout must be in [0, 1), got {self.instruction_dropout}")
        if not 0.0 <= self.source_dropout < 1.0:
            raise InputError(f"source_dropout must be in [0, 1), got {self.source_dropout}")
        if not 0.0 <= self.sigma_min < 1.0 or self.logit_normal_std <= 0:
            raise InputError("need 0 <= sigma_min < 1 and logit_normal_std > 0")
        if not self.unet:
            raise InputError("recipe_options.unet must give the UNet config (in_channels = 2 x latent channels)")
        if self.init_unet_from_generator is not None and (self.init_from is not None or self.objective != "flow"):
            raise InputError("init_unet_from_generator starts a flow editor afresh: it takes neither init_from nor objective 'ddpm'")


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
        # The bridge starts where the exported editor's sampler will start: one number for both.
        self.bridge = SourceBridgePath(self.editor_t_start(), self.options.sigma_min) if self.options.path == "from-source" else None
        self.diffusion = DiffusionObjective(prediction="epsilon")  # the ddpm baseline only
        self._codec = None

    @property
    def codec(self):
        """The frozen codec: it fills the latent cache and is the model's codec (``build``)."""
        if self._codec is None:
            self._codec = build_component(self.options.codec, "codec").eval()
            self._codec.requires_grad_(False)
        return self._codec

    def editor_t_start(self) -> float:
        return float(self.options.editor.get("t_start", EditorConfig.t_start))

    # -- what to build and train ------------------------------------------------------
    def build(self) -> Mapping[str, torch.nn.Module]:
        from diffusers import UNet2DConditionModel

        if self.options.init_from is not None:
            return self.build_from_editor(self.options.init_from)
        spec = dict(self.options.unet)
        if self.options.mask_head:
            spec["out_channels"] = spec.get("in_channels", 16) // 2 + 1
        unet = build_component(spec, "unet") if "factory" in spec else UNet2DConditionModel.from_config(spec)
        if self.options.init_unet_from_generator is not None:
            unet = self.unet_from_generator(unet, self.options.init_unet_from_generator)
        codec = self.codec  # frozen; the same object fills the latent cache
        text_encoder = build_component(self.options.text_encoder, "text encoder")
        return {"unet": unet, "text_encoder": text_encoder, "codec": codec.eval()}

    @staticmethod
    def unet_from_generator(unet: torch.nn.Module, name: str) -> torch.nn.Module:
        """``unet`` with a text-to-audio generator's weights, turned to the flow editor's inputs."""
        from foleyflow.diffusion.schedule import DDPMSchedule
        from foleyflow.generator import load_generator_unet, read_generator_config
        from foleyflow.models.unet import editor_unet_from_generator
        from foleyflow.pipelines.edit_network import FLOW_TIME_SCALE

        folder, config = read_generator_config(name)
        steps = DDPMSchedule(**config["schedule"]).num_train_timesteps
        if steps != FLOW_TIME_SCALE:  # the time reversal maps flow t in [0, 1] onto DDPM indices [steps, 0]
            raise InputError(f"{folder}: a schedule of {steps} steps; the editor's time axis spans {FLOW_TIME_SCALE:g}")
        return editor_unet_from_generator(load_generator_unet(folder, config), unet, time_horizon=FLOW_TIME_SCALE)

    def build_from_editor(self, name: str) -> Mapping[str, torch.nn.Module]:
        """A trained editor's UNet and LoRA adapters, to fine-tune; its UNet must be this config's."""
        from diffusers import UNet2DConditionModel

        editor = Editor.from_pretrained(name)
        if bool(editor.config.mask_head) != bool(self.options.mask_head):
            raise InputError(f"init_from {name}: mask_head is {editor.config.mask_head}, the config says {self.options.mask_head}")
        unet = UNet2DConditionModel.from_config(editor.unet.config)
        unet.load_state_dict({key: value.float() for key, value in editor.unet.state_dict().items()})
        text_encoder = editor.text_encoder.float() if isinstance(editor.text_encoder, torch.nn.Module) else editor.text_encoder
        return {"unet": unet, "text_encoder": text_encoder, "codec": self.codec.eval()}

    def optimizer_groups(self) -> Mapping[str, list[str]]:
        return {"main": ["unet", "text_encoder"]}  # only requires_grad parameters: the text encoder's LoRA

    def dataset(self, split: str):
        if not self.options.data:
            raise InputError("recipe_options.data must name the triplet data set ({\"factory\": ...})")
        limit = self.options.train_triplets if split == "train" else self.options.val_triplets
        spec = {**self.options.data, "split": split, **({"max_triplets": limit} if limit is not None else {})}
        if "root" in spec:  # another build of the set, e.g. "$FOLEYFLOW_HOME/datasets/editing-15k"
            spec["root"] = expand_path(str(spec["root"]))
        triplets = build_component(spec, "edit data set")
        if not self.options.cache or not hasattr(triplets, "mix_key"):
            return triplets
        return self._cached_dataset(triplets)

    def latent_encoder_hash(self) -> str:
        from foleyflow.training.cache import hash_latent_encoder

        return hash_latent_encoder(self.codec, {"prep": "tango", "posterior": "mode"})

    def _cached_dataset(self, triplets):
        """Latents of every source and target mix, encoded once (see the module docstring)."""
        from foleyflow.training.cache import CachedFeatures, FeatureCache, hash_text

        cache = FeatureCache(self.options.cache_dir)
        encoder = self.latent_encoder_hash()
        # Triplets of a scene share its mixes: hash each (scene, mix) recipe once.
        mixes = list(dict.fromkeys((t["scene_id"], t[role]) for t in triplets.triplets for role in ("source", "target")))
        key = {mix: hash_text(triplets.mix_key(*mix)) for mix in mixes}
        self.fill_shared(cache, "edit-latent", encoder, [(key[m], m) for m in mixes], self._encode_mixes(triplets))
        fields = [{role: ("edit-latent", key[(t["scene_id"], t[role])]) for role in ("source", "target")} for t in triplets.triplets]
        extras = [{"instruction": t["instruction"], "edit_spans": t["edit_spans"]} for t in triplets.triplets]
        return CachedFeatures(cache, {"edit-latent": encoder}, fields, extras)

    def fill_shared(self, cache, kind: str, encoder: str, items, encode) -> None:
        """``cache.fill`` split over the Accelerate processes (each its own share of the distinct
        keys, so no two compute the same entry), then a barrier so that every process reads a
        complete cache."""
        from accelerate import PartialState

        items = list(dict(items).items())  # distinct keys (triplets share mixes), in first-seen order
        state = PartialState()
        cache.fill(kind, encoder, items[state.process_index :: state.num_processes], encode, self.options.encode_batch_size,
                   state.is_main_process)
        state.wait_for_everyone()

    def _encode_mixes(self, triplets):
        def encode(mixes: list[tuple[str, str]]) -> list[dict[str, torch.Tensor]]:
            audio = torch.stack([torch.as_tensor(triplets.render(scene, mix)) for scene, mix in mixes])
            return [{"latent": z.to(torch.float16)} for z in self.codec.encode(audio)]

        return encode

    def collate(self, items: list[Mapping[str, Any]]) -> dict[str, Any]:
        from foleyflow.data.recipes import NUM_SAMPLES, edit_mask

        frames = NUM_SAMPLES // 160
        masks = [item["edit_mask"] if "edit_mask" in item else edit_mask(item["edit_spans"], frames) for item in items]
        batch = {"instruction": [str(item["instruction"]) for item in items],
                 "edit_mask": torch.stack([torch.as_tensor(m, dtype=torch.bool) for m in masks])}
        for role in ("source", "target"):
            if isinstance(items[0][role], Mapping):  # cached latents
                batch[f"{role}_latent"] = torch.stack([item[role]["latent"].float() for item in items])
            else:
                batch[role] = torch.stack([torch.as_tensor(item[role], dtype=torch.float32) for item in items])
        return batch

    # -- the objective ----------------------------------------------------------------
    def losses(self, modules, batch, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        instructions = self.drop_instructions(batch["instruction"])
        # drawn only when on, so a run without it draws the same random numbers as before the option
        keep_source = torch.rand(len(instructions)) >= self.options.source_dropout if self.options.source_dropout else None
        losses = self.objective_losses(modules, batch, instructions, crop=True, keep_source=keep_source)
        total = losses["loss"] + self.options.mask_loss_weight * losses.get("mask_bce", 0.0)
        return total, {name: float(value.detach()) for name, value in losses.items()}

    def validate(self, modules, batch) -> dict[str, float]:
        # A fixed seed makes validation figures comparable from one evaluation to the next.
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            losses = self.objective_losses(modules, batch, batch["instruction"], crop=False)
        return {f"val_{name}": float(value) for name, value in losses.items()}

    def latents(self, modules, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_T, x_0): from the cache, or encoded here when the data set gives audio."""
        if "source_latent" in batch:
            return batch["source_latent"].to(device), batch["target_latent"].to(device)
        with torch.no_grad():
            return modules["codec"].encode(batch["source"].to(device)), modules["codec"].encode(batch["target"].to(device))

    def training_latents(self, modules, batch, device, crop: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_T, x_0, ground-truth edit region), cropped to ``crop_frames`` when ``crop`` asks."""
        x_source, x_0 = self.latents(modules, batch, device)
        region = ground_truth_latent_mask(batch["edit_mask"].to(device), x_0, x_source, self.options.mask_energy_fraction)
        if crop and self.options.crop_frames is not None and self.options.crop_frames < x_0.shape[2]:
            x_source, x_0, region = crop_on_region((x_source, x_0, region), region, self.options.crop_frames, self.options.crop_on_edit)
        return x_source, x_0, region

    def objective_losses(self, modules, batch, instructions: list[str], crop: bool,
                         keep_source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{"loss": the objective's loss, "mask_bce": the mask head's loss (mask-head models)}.
        ``keep_source`` (bool per row): rows where it is False see a zero source latent, so they
        train as text-to-audio from the instruction alone (``source_dropout``)."""
        unet, text_encoder = modules["unet"], modules["text_encoder"]
        device = next(unet.parameters(), torch.empty(0)).device
        x_source, x_0, region = self.training_latents(modules, batch, device, crop)
        kept = torch.ones(x_0.shape[0], dtype=torch.bool) if keep_source is None else keep_source.cpu()
        # the flow/bridge paths below still start from the true source; only the network's view of it goes
        seen_source = x_source * kept.to(device=device, dtype=x_source.dtype).view(-1, 1, 1, 1)
        states, mask = text_encoder.encode(instructions)
        eps = torch.randn_like(x_0)
        weights = 1.0 + self.options.edit_region_weight * region if self.options.edit_region_weight else None
        if self.options.objective == "ddpm":
            noised = self.diffusion.noise(x_0, eps, sample_indices(x_0.shape[0], self.diffusion.schedule, device=device))
            output, logits = UNetNoise(unet).with_mask_logits(torch.cat([noised.z_s, seen_source], dim=1), noised.index, states, mask)
            losses = {"loss": self.diffusion.loss(output, noised) if weights is None else weighted_mse(output, noised.target, weights)}
        else:
            sample = self.flow_sample(x_0, x_source, eps)
            velocity, logits = UNetVelocity(unet).with_mask_logits(torch.cat([sample.x_t, seen_source], dim=1), sample.t, states, mask)
            losses = {"loss": flow_matching_loss(velocity, sample, weights)}
        if logits is not None:
            # the region is knowable only from a source and an instruction
            losses["mask_bce"] = mask_loss(logits, region, [text != NULL_INSTRUCTION and bool(k) for text, k in zip(instructions, kept)])
        return losses

    def flow_sample(self, x_0: torch.Tensor, x_source: torch.Tensor, eps: torch.Tensor):
        """(x_t, v_target) on path (1), or on the bridge from the start state (4) to the target."""
        t = self.sample_t(x_0.shape[0]).to(x_0.device)
        if self.bridge is None:
            return self.path.sample(x_0, eps, t)
        return self.bridge.sample(x_0, x_source, eps, self.bridge.times(t))

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
            **{**self.options.editor, "objective": self.options.objective, "sigma_min": self.options.sigma_min,
               "mask_head": self.options.mask_head, "trained_t_start": self.bridge.t_start if self.bridge else None},
            unet=dict(modules["unet"].config),
            text_encoder=self.options.text_encoder,
            codec=self.options.codec,
        )
        return Editor(modules["unet"], modules["text_encoder"], modules["codec"], config).save_pretrained(folder, card)


def mask_loss(logits: torch.Tensor, region: torch.Tensor, has_instruction: list[bool]) -> torch.Tensor:
    """BCE of the mask head against the ground-truth region, on rows that kept their instruction."""
    keep = torch.tensor(has_instruction, dtype=torch.float32, device=logits.device)
    if not keep.any():
        return logits.sum() * 0.0  # keeps the graph (and DDP's unused-parameter check) intact
    per_row = F.binary_cross_entropy_with_logits(logits.float(), region.expand_as(logits).float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_row * keep).sum() / keep.sum()


def crop_on_region(tensors: tuple[torch.Tensor, ...], region: torch.Tensor, frames: int, on_edit: float) -> tuple[torch.Tensor, ...]:
    """The same ``frames``-long latent-time window of every tensor, one window per row.

    With probability ``on_edit`` (and when the row has an edit region) the window holds a
    frame drawn uniformly from the region; otherwise it is uniform over the clip.
    """
    total = tensors[0].shape[2]
    starts = []
    for row in region[:, 0, :, 0]:
        inside = torch.nonzero(row > 0).flatten()
        if len(inside) and float(torch.rand(())) < on_edit:
            anchor = int(inside[torch.randint(len(inside), ())])
            low, high = max(0, anchor - frames + 1), min(anchor, total - frames)
        else:
            low, high = 0, total - frames
        starts.append(int(torch.randint(low, high + 1, ())))
    return tuple(torch.stack([x[i, :, s : s + frames] for i, s in enumerate(starts)]) for x in tensors)
