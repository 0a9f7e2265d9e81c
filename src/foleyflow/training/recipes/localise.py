"""Train an editor's localiser (issue 9; models.localiser): x_T + instruction -> edit region.

The base editor (``recipe_options.editor``, "default" or a folder) is frozen: the localiser reads
its instruction encoder's token states (LoRA adapters included) and the latents of its codec, so
the triplets' latent cache that the editor's training filled is reused. Loss: binary cross-entropy
per latent frame against the data set's ground-truth region (``ground_truth_latent_mask``, the
same region the mask head trains on). No instruction dropout: without an instruction the region
is unknowable. The export is the base editor with the localiser added (``mask: localiser`` is
then selectable; the editor's default mask is unchanged).

``target: "removal-gains"`` trains the same network with one output per latent cell instead
(``per_bin``) on remove and replace triplets, each asked as a removal, against the scene without
the named sound (``pipelines.removal``: the loss is the log-mel L1 at the cell's resolution). The
cells' mel levels of every (source mix, bare scene) pair go into the feature cache beside the
latents. The export is the base editor with these removal gains added (``removal: gains``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from foleyflow.data.language import removal_instruction
from foleyflow.errors import InputError
from foleyflow.models.checkpoint import resolve_model_dir
from foleyflow.models.localiser import EditLocaliser, LocaliserConfig
from foleyflow.pipelines.editor import LOCALISER_QUERIES, Editor
from foleyflow.pipelines.masks import frame_iou
from foleyflow.pipelines.removal import cell_levels, removal_gain_loss
from foleyflow.training.config import dataclass_from_dict, expand_path
from foleyflow.training.recipes.edit import DEFAULT_DATA, EditRecipe


@dataclasses.dataclass
class LocaliseOptions:
    editor: str = "default"
    localiser: dict[str, Any] = dataclasses.field(default_factory=dict)  # LocaliserConfig keys
    data: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_DATA))
    train_triplets: int | None = None
    val_triplets: int | None = None
    mask_energy_fraction: float = 0.2
    # "instruction": every triplet asked as it is, against all its edited events' region;
    # "removed": a replace asked as an editor with ``localiser_query: "removed"`` asks it at edit
    # time (``as_removal``), so that training and use pose the same question.
    query: str = "instruction"
    target: str = "region"  # or "removal-gains" (module docstring)


TARGETS = ("region", "removal-gains")
REMOVAL_TASKS = ("remove", "replace")
BARE_SCENE = "X"  # the data set's mix without either event: what a remove keeps, and a replace before its new sound
LEVELS_KIND = "removal-levels"


class LocaliseRecipe(EditRecipe):
    name = "localise"

    def __init__(self, options: Mapping[str, Any]):
        from foleyflow.pipelines.editor_io import load_editor

        self.localise = dataclass_from_dict(LocaliseOptions, options, "recipe_options")
        if self.localise.query not in LOCALISER_QUERIES:  # before the base editor loads
            raise InputError(f"recipe_options.query must be one of {', '.join(LOCALISER_QUERIES)}, got {self.localise.query!r}")
        if self.localise.target not in TARGETS:
            raise InputError(f"recipe_options.target must be one of {', '.join(TARGETS)}, got {self.localise.target!r}")
        self.base = load_editor(resolve_model_dir(expand_path(self.localise.editor), "editor"))
        o, config = self.localise, self.base.config
        data = {**o.data, "tasks": list(REMOVAL_TASKS)} if self.removal else o.data
        super().__init__({"sigma_min": config.sigma_min, "unet": config.unet, "text_encoder": config.text_encoder, "data": data,
                          "train_triplets": o.train_triplets, "val_triplets": o.val_triplets,
                          "mask_energy_fraction": o.mask_energy_fraction})
        self._codec = self.base.codec.eval()  # the cache key is this codec's hash
        self._codec.requires_grad_(False)
        # The editor's UNet sees x_t and x_T on channels: the latent has half its input channels.
        self.localiser_config = LocaliserConfig.from_dict({"latent_channels": config.unet["in_channels"] // 2, **o.localiser,
                                                           **({"per_bin": True} if self.removal else {})})

    @property
    def removal(self) -> bool:
        return self.localise.target == "removal-gains"

    def collate(self, items: list[Mapping[str, Any]]) -> dict[str, Any]:
        if self.localise.query == "removed" or self.removal:
            items = [as_removal(item) for item in items]
        batch = super().collate(items)
        if self.removal and "levels" in items[0]:  # from the cache
            for role in ("source", "kept"):
                batch[f"{role}_levels"] = torch.stack([item["levels"][f"log_{role}"].float().exp() for item in items])
        elif self.removal:  # audio items: a remove's target is its bare scene, other triplets must carry theirs
            frames = batch["source"].shape[-1] // self.codec.samples_per_latent_frame
            batch["source_levels"] = cell_levels(batch["source"], frames)
            batch["kept_levels"] = cell_levels(torch.stack([torch.as_tensor(bare_scene(item)) for item in items]), frames)
        return batch

    def _cached_dataset(self, triplets):
        """The latents (``EditRecipe``), and for removal gains the cell levels of each triplet's
        source mix and of its bare scene."""
        dataset = super()._cached_dataset(triplets)
        if not self.removal:
            return dataset
        from foleyflow.training.cache import hash_text

        encoder = hash_text(f"{LEVELS_KIND} {cell_levels.__module__} v1")
        pairs = [(t["scene_id"], t["source"]) for t in triplets.triplets]
        keys = [hash_text(triplets.mix_key(scene, mix) + "\x00" + triplets.mix_key(scene, BARE_SCENE)) for scene, mix in pairs]
        self.fill_shared(dataset.cache, LEVELS_KIND, encoder, list(zip(keys, pairs)), self._levels(triplets))
        dataset.encoders[LEVELS_KIND] = encoder
        for fields, key in zip(dataset.items, keys):
            fields["levels"] = (LEVELS_KIND, key)
        return dataset

    @staticmethod
    def _levels(triplets):
        def levels(pairs: list[tuple[str, str]]) -> list[dict[str, torch.Tensor]]:
            log_levels = {}  # (scene, mix) -> log cell levels: a scene's two source mixes share its bare mix

            def log_of(scene: str, mix: str) -> torch.Tensor:
                if (scene, mix) not in log_levels:
                    audio = torch.as_tensor(triplets.render(scene, mix))
                    log_levels[(scene, mix)] = cell_levels(audio)[0].clamp(min=1e-12).log().half()
                return log_levels[(scene, mix)]

            return [{"log_source": log_of(scene, mix), "log_kept": log_of(scene, BARE_SCENE)} for scene, mix in pairs]

        return levels

    def build(self) -> Mapping[str, torch.nn.Module]:
        text_encoder = self.base.text_encoder
        if isinstance(text_encoder, torch.nn.Module):
            text_encoder.requires_grad_(False)
        return {"localiser": EditLocaliser(self.localiser_config), "text_encoder": text_encoder, "codec": self.codec}

    def optimizer_groups(self) -> Mapping[str, list[str]]:
        return {"main": ["localiser"]}

    def region_logits(self, modules, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, ground-truth region), both (batch, latent frames)."""
        localiser = modules["localiser"]
        device = next(localiser.parameters()).device
        x_source, _, region = self.training_latents(modules, batch, device, crop=False)
        with torch.no_grad():
            states, mask = modules["text_encoder"].encode(batch["instruction"])
        return localiser(x_source, states, mask), region[:, 0, :, 0]

    def losses(self, modules, batch, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if self.removal:
            loss = self.gain_loss(modules, batch)
            return loss, {"loss": float(loss.detach())}
        logits, region = self.region_logits(modules, batch)
        loss = F.binary_cross_entropy_with_logits(logits.float(), region)
        return loss, {"loss": float(loss.detach())}

    def gain_loss(self, modules, batch, logits: torch.Tensor | None = None) -> torch.Tensor:
        """``removal_gain_loss`` of the network's log-gains (or of given ``logits``) on this batch."""
        if logits is None:
            logits = self.region_logits(modules, batch)[0]
        device = logits.device
        return removal_gain_loss(logits, batch["source_levels"].to(device), batch["kept_levels"].to(device))

    def validate(self, modules, batch) -> dict[str, float]:
        if self.removal:
            with torch.no_grad():
                loss = self.gain_loss(modules, batch)
                keep_all = self.gain_loss(modules, batch, torch.zeros_like(batch["source_levels"]))
            return {"val_loss": float(loss), "val_loss_keep_all": float(keep_all)}
        with torch.no_grad():
            logits, region = self.region_logits(modules, batch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), region)
        return {"val_loss": float(loss), "val_iou": float(frame_iou(torch.sigmoid(logits) >= 0.5, region > 0.5).mean())}

    def export(self, modules, folder: Path, card: str) -> Path:
        localiser = getattr(modules["localiser"], "module", modules["localiser"])
        if self.removal:
            config = dataclasses.replace(self.base.config, remover=localiser.config.to_dict(), removal="gains")
            return Editor(self.base.unet, self.base.text_encoder, self.base.codec, config, self.base.localiser,
                          remover=localiser).save_pretrained(folder, card)
        query = "removed" if self.localise.query == "removed" else self.base.config.localiser_query
        config = dataclasses.replace(self.base.config, localiser=localiser.config.to_dict(), localiser_query=query)
        return Editor(self.base.unet, self.base.text_encoder, self.base.codec, config, localiser,
                      remover=self.base.remover).save_pretrained(folder, card)


def bare_scene(item: Mapping[str, Any]):
    """The audio a removal keeps: a remove's target, or the item's own ``"bare"`` audio."""
    if "bare" in item:
        return item["bare"]
    if item.get("task") == "remove":
        return item["target"]
    raise InputError(f"a {item.get('task')!r} triplet trains removal gains only with its bare scene (the cached data set has it)")


def as_removal(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A replace triplet as the question ``localiser_query: "removed"`` asks at edit time: the remove
    instruction of the replaced sound ("Swap the siren for rain" -> "Remove the siren"), whose region
    is the span of that sound alone (the first of the triplet's edit spans: the data set lists the
    replaced event, then the new one). Other triplets are returned as they are."""
    query = removal_instruction(str(item["instruction"]))
    if query is None:
        return item
    kept = {key: value for key, value in item.items() if key != "edit_mask"}  # collate rebuilds it from the spans
    return kept | {"instruction": query, "edit_spans": list(item["edit_spans"])[:1]}
