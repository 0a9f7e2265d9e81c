"""The Tango text-to-audio recipe (SPEC 1): a UNet learns DDPM denoising of VAE latents of
captioned 10.24 s clips, conditioned on frozen text-encoder states.

Per training item: the clip (or a pressure-level mixture of two clips, "c1 and c2"), Tango's
waveform preparation, log-mel, the frozen VAE's posterior mean (scaled latents), and the frozen
text encoder's token states of the caption. Both encoders are frozen, so by default every
latent and text state is computed once and read from the feature cache
(``foleyflow.training.cache``); ``cache: false`` encodes on the fly in ``collate`` instead.

Loss: ``foleyflow.diffusion.DiffusionObjective`` (epsilon or v, optional Min-SNR-gamma) at
uniformly drawn DDPM indices; the text states of ``text_dropout`` (10%) of the samples are
zeroed for classifier-free guidance (Tango's choice, SPEC 6).

Pressure-level mixing (Tokozume et al., ``foleyflow.audio.mixing``) adds ``mixtures`` items per
run: pairs of distinct training clips drawn once from ``mixture_seed``. The pool is fixed so
that its latents can be cached like any clip's (keyed by the two clips' content hashes).

Data: a manifest, one JSON object per line, either ``{"audio": "clips/cow.wav", "caption": "A cow
moos"}`` (paths relative to the manifest's folder) or a foleyflow corpus's ``clips.jsonl``
(``{"clip_id", "captions", "split", ...}`` with audio in ``audio/<clip_id>.wav``), filtered by
``train_split`` / ``val_split``. Every caption of a clip is one training item.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.audio.mel import pad_or_crop, tango_waveform_prep
from foleyflow.audio.mixing import join_captions, pressure_level_mix
from foleyflow.data.manifest import numbered_jsonl
from foleyflow.diffusion import DDPMSchedule, DiffusionObjective, drop_condition, sample_indices
from foleyflow.errors import InputError
from foleyflow.generator import GENERATOR_CLASS
from foleyflow.models.checkpoint import save_model_folder
from foleyflow.models.vae import COMPRESSION
from foleyflow.models.vocoder import HOP
from foleyflow.training.cache import CachedFeatures, FeatureCache, hash_file, hash_latent_encoder, hash_module, hash_parts, hash_text
from foleyflow.training.config import dataclass_from_dict, expand_path



@dataclasses.dataclass
class TTAOptions:
    train_manifest: str
    val_manifest: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    codec: str = "default"
    text_encoder: str = "minilm"
    text_max_length: int = 128
    unet_preset: str = "cpu-small"
    unet_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    prediction: str = "epsilon"
    min_snr_gamma: float | None = None
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    text_dropout: float = 0.1
    mixtures: int = 0
    mixture_seed: int = 0
    clip_seconds: float = 10.24
    cache: bool = True
    cache_dir: str | None = None
    encode_batch_size: int = 8
    init_from: str | None = None  # a generator folder or "default": continue training its UNet (same config)

    def __post_init__(self) -> None:
        if not 0 <= self.text_dropout <= 1:
            raise InputError(f"recipe_options.text_dropout must be in [0, 1], got {self.text_dropout}")
        if self.mixtures < 0 or self.encode_batch_size < 1 or self.clip_seconds <= 0:
            raise InputError("recipe_options: mixtures >= 0, encode_batch_size >= 1 and clip_seconds > 0 are required")

    @property
    def num_samples(self) -> int:
        """Clip length in samples, rounded to whole latent frames (4 mel frames of 160 samples)."""
        per_latent = HOP * COMPRESSION
        return int(round(self.clip_seconds * SAMPLE_RATE / per_latent)) * per_latent


@dataclasses.dataclass(frozen=True)
class Clip:
    audio: Path
    captions: tuple[str, ...]


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[Clip]:
    """Clips of a JSON-lines manifest (``audio`` + ``caption`` lines, or a corpus's
    ``clips.jsonl``); lines with a ``split`` other than ``split`` are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    clips = []
    for number, entry in numbered_jsonl(path):
        try:
            if split is not None and entry.get("split", split) != split:
                continue
            clips.append(_clip_of(entry, path.parent))
        except (AttributeError, KeyError, TypeError, IndexError):
            raise InputError(f"{path}:{number}: expected {{\"audio\", \"caption\"}} or a corpus record {{\"clip_id\", \"captions\"}}") from None
    if not clips:
        raise InputError(f"{path}: the manifest lists no clips" + (f" of split {split!r}" if split else ""))
    return clips


def _clip_of(entry: Mapping[str, Any], root: Path) -> Clip:
    if "clip_id" in entry:  # a foleyflow corpus record
        captions = tuple(str(caption) for caption in entry["captions"])
        captions[0]  # at least one caption (IndexError otherwise)
        return Clip((root / "audio" / f"{entry['clip_id']}.wav").resolve(), captions)
    return Clip((root / entry["audio"]).resolve(), (str(entry["caption"]),))


# An item is ("clip", i, c): clip i with its caption c, or ("mix", i, j): the pressure-level
# mixture of clips i and j, captioned with their first captions joined.
Item = tuple


class _ItemSource:
    """Waveform, caption and content hash of every item (a clip or a mixture of two clips)."""

    def __init__(self, clips: list[Clip], num_samples: int):
        self.clips, self.num_samples = clips, num_samples
        self._file_hashes: dict[int, str] = {}

    def file_hash(self, index: int) -> str:
        if index not in self._file_hashes:
            self._file_hashes[index] = hash_file(self.clips[index].audio)
        return self._file_hashes[index]

    def content_hash(self, item: Item) -> str:
        if item[0] == "clip":
            return self.file_hash(item[1])
        return hash_parts("pressure-level-mix", self.file_hash(item[1]), self.file_hash(item[2]))

    def caption(self, item: Item) -> str:
        if item[0] == "clip":
            return self.clips[item[1]].captions[item[2]]
        return join_captions(self.clips[item[1]].captions[0], self.clips[item[2]].captions[0])

    def waveform(self, item: Item) -> np.ndarray:
        """Tango's preparation (mean removed, peak 0.5, padded or cropped); a mixture is
        prepared again after mixing so every item has the same peak."""
        first = self._prepared(item[1])
        if item[0] == "clip":
            return first
        return tango_waveform_prep(pressure_level_mix(first, self._prepared(item[2])), self.num_samples)

    def _prepared(self, index: int) -> np.ndarray:
        return tango_waveform_prep(pad_or_crop(load_audio(self.clips[index].audio), self.num_samples), self.num_samples)


def mixture_pairs(count: int, clips: int, seed: int) -> list[Item]:
    """``count`` distinct unordered pairs of distinct clips, drawn with ``seed``."""
    possible = clips * (clips - 1) // 2
    if count > possible:
        raise InputError(f"recipe_options.mixtures = {count}, but {clips} clips make only {possible} pairs")
    rng = np.random.default_rng(seed)
    pairs: dict[tuple[int, int], None] = {}
    while len(pairs) < count:
        first, second = sorted(rng.choice(clips, size=2, replace=False).tolist())
        pairs.setdefault((first, second), None)
    return [("mix", first, second) for first, second in pairs]


class _OnTheFly(Dataset):
    """Items as (waveform, caption); ``collate`` encodes them (the slow path, ``cache: false``)."""

    def __init__(self, source: _ItemSource, items: list[Item]):
        self.source, self.items = source, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {"waveform": torch.from_numpy(self.source.waveform(item)), "caption": self.source.caption(item)}


class TTARecipe:
    name = "tta"

    def __init__(self, options: Mapping[str, Any]):
        self.options = dataclass_from_dict(TTAOptions, options, "recipe_options")
        self.objective = DiffusionObjective(
            schedule=DDPMSchedule(self.options.num_train_timesteps, self.options.beta_start, self.options.beta_end, self.options.beta_schedule),
            prediction=self.options.prediction,
            min_snr_gamma=self.options.min_snr_gamma,
        )
        self._codec = None
        self._text_encoder = None
        # init_from's measured sampling settings (its config.json's "sampling"), kept in the export:
        # the continued UNet is that model trained further, so they are a better start than Tango's 200 steps.
        self.inherited_sampling: dict[str, Any] | None = None
        self.data_summary: dict[str, dict[str, Any]] = {}  # split -> where its items came from (for the model card)

    # --- frozen encoders (kept by the recipe: with the cache, training never runs them) ------

    @property
    def codec(self):
        if self._codec is None:
            from foleyflow.models.codec import Codec

            self._codec = Codec.from_pretrained(expand_path(self.options.codec)).eval().to(_encoder_device())
            self._codec.requires_grad_(False)
        return self._codec

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from foleyflow.models.text import TextEncoder

            self._text_encoder = TextEncoder(expand_path(self.options.text_encoder), self.options.text_max_length).eval().to(_encoder_device())
        return self._text_encoder

    @torch.no_grad()
    def encode_audio(self, waveforms: list[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """(batch, samples) prepared waveforms -> scaled VAE latents (posterior mean)."""
        audio = torch.as_tensor(np.stack([np.asarray(w) for w in waveforms]) if isinstance(waveforms, list) else waveforms)
        return self.codec.encode(audio.to(_encoder_device()))

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> list[torch.Tensor]:
        """Each caption's token states, (tokens, hidden), without padding."""
        states, mask = self.text_encoder.encode(list(captions))
        return [row[: int(length)] for row, length in zip(states, mask.sum(1).tolist())]

    def encoder_hashes(self) -> dict[str, str]:
        latent_settings = {"prep": "tango", "num_samples": self.options.num_samples, "posterior": "mode"}
        return {
            "latent": hash_latent_encoder(self.codec, latent_settings),
            "text": hash_module(self.text_encoder, {"source": self.options.text_encoder, "max_length": self.options.text_max_length}),
        }

    # --- the Recipe contract -------------------------------------------------------------

    def build(self) -> dict[str, torch.nn.Module]:
        from foleyflow.models.unet import build_unet

        overrides = {"cross_attention_dim": self.text_encoder.hidden_size, **self.options.unet_overrides}
        unet = build_unet(self.options.unet_preset, **overrides)
        if self.options.init_from is not None:
            unet = self.continued_unet(unet, self.options.init_from)
        return {"unet": unet}

    def continued_unet(self, unet: torch.nn.Module, name: str) -> torch.nn.Module:
        """``unet`` with a trained generator's weights; the generator must have been trained as this
        config says (its UNet, text encoder, schedule and prediction), or continuing would mix two models."""
        from foleyflow.generator import load_generator_unet, read_generator_config

        folder, config = read_generator_config(expand_path(name))
        if "distillation" in config:  # guidance and N steps live in its weights; the plain loss would undo them
            raise InputError(f"init_from {name}: a distilled student; continue from its teacher instead")
        trained = load_generator_unet(folder, config)
        ours = json.loads(json.dumps(generator_config(unet, self.options, self.options.codec)))  # tuples as the JSON's lists
        differ = [key for key in ("unet", "text_encoder", "prediction", "schedule") if config.get(key) != ours[key]]
        if (config["codec"] == "default") != (self.options.codec == "default"):  # another latent space
            differ.append("codec")
        if differ:
            raise InputError(f"init_from {name}: the generator's {', '.join(differ)} differ from this config's")
        unet.load_state_dict(trained.state_dict())
        self.inherited_sampling = config.get("sampling")
        return unet

    def optimizer_groups(self) -> dict[str, list[str]]:
        return {"main": ["unet"]}

    def dataset(self, split: str) -> Dataset:
        manifest = self.options.train_manifest if split == "train" else self.options.val_manifest
        if manifest is None:
            return _OnTheFly(_ItemSource([], self.options.num_samples), [])
        clips = read_manifest(expand_path(manifest), self.options.train_split if split == "train" else self.options.val_split)
        source = _ItemSource(clips, self.options.num_samples)
        items: list[Item] = [("clip", index, caption) for index, clip in enumerate(clips) for caption in range(len(clip.captions))]
        if split == "train":
            items += mixture_pairs(self.options.mixtures, len(clips), self.options.mixture_seed)
        self.data_summary[split] = {"manifest": str(manifest), "split": self.options.train_split if split == "train" else self.options.val_split,
                                    "clips": len(clips), "items": len(items), "mixtures": self.options.mixtures if split == "train" else 0}
        if not self.options.cache:
            return _OnTheFly(source, items)
        return self._cached_dataset(source, items)

    def _cached_dataset(self, source: _ItemSource, items: list[Item]) -> CachedFeatures:
        from accelerate import PartialState

        cache = FeatureCache(expand_path(self.options.cache_dir) if self.options.cache_dir else None)
        hashes = self.encoder_hashes()
        state = PartialState()
        shard = items[state.process_index :: state.num_processes]  # each process encodes its share
        batch = self.options.encode_batch_size
        cache.fill("latent", hashes["latent"], [(source.content_hash(i), i) for i in shard], lambda chunk: [{"latent": z} for z in self.encode_audio([source.waveform(i) for i in chunk])], batch, state.is_main_process)
        captions = [source.caption(i) for i in shard]
        cache.fill("text", hashes["text"], [(hash_text(c), c) for c in captions], lambda chunk: [{"states": s} for s in self.encode_text(chunk)], batch, state.is_main_process)
        state.wait_for_everyone()
        fields = [{"latent": ("latent", source.content_hash(i)), "text": ("text", hash_text(source.caption(i)))} for i in items]
        return CachedFeatures(cache, hashes, fields, [{"caption": source.caption(i)} for i in items])

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if "waveform" in items[0]:  # on the fly: encode here
            latents = self.encode_audio(torch.stack([item["waveform"] for item in items])).cpu()
            states = [s.cpu() for s in self.encode_text([item["caption"] for item in items])]
        else:
            latents = torch.stack([item["latent"]["latent"] for item in items])
            states = [item["text"]["states"] for item in items]
        padded, mask = pad_states(states)
        return {"latent": latents.float(), "text_states": padded.float(), "text_mask": mask}

    def losses(self, modules: Mapping[str, torch.nn.Module], batch: Any, group: str, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        # Zeroed text states for the CFG share of the batch (SPEC 1 / 6); randomness from the
        # global RNG, which the trainer checkpoints.
        states, _ = drop_condition(batch["text_states"], self.options.text_dropout)
        return self._denoising_loss(modules["unet"], batch, states), {}

    def validate(self, modules: Mapping[str, torch.nn.Module], batch: Any) -> dict[str, float]:
        return {"val_loss": self._denoising_loss(modules["unet"], batch, batch["text_states"]).item()}

    def _denoising_loss(self, unet: torch.nn.Module, batch: Mapping[str, torch.Tensor], states: torch.Tensor) -> torch.Tensor:
        z_0 = batch["latent"]
        index = sample_indices(z_0.shape[0], self.objective.schedule, device=z_0.device)
        sample = self.objective.noise(z_0, torch.randn_like(z_0), index)
        output = unet(sample.z_s, index, encoder_hidden_states=states, encoder_attention_mask=batch["text_mask"]).sample
        return self.objective.loss(output, sample)

    def export(self, modules: Mapping[str, torch.nn.Module], folder: Path, card: str) -> Path:
        unet = getattr(modules["unet"], "module", modules["unet"])
        return save_model_folder(folder, unet.state_dict(), self.model_config(unet, folder), card + self._card_details())

    def model_config(self, unet: torch.nn.Module, folder: Path) -> dict[str, Any]:
        """The exported config.json (the distillation recipe adds its record to it)."""
        codec_reference = self.options.codec
        if codec_reference != "default":
            # The generator folder carries its own copy of a non-default codec, so it still
            # works after the training folders are gone.
            self.codec.save_pretrained(Path(folder) / "codec")
            codec_reference = "codec"
        config = generator_config(unet, self.options, codec_reference)
        if self.inherited_sampling is not None:
            config["sampling"] = dict(self.inherited_sampling)
        return config

    def _card_details(self) -> str:
        """The model card's data and model sections (docs/generator.md is the full card)."""
        lines = ["", "## Data", ""]
        for split, summary in self.data_summary.items():
            mixes = f", of which {summary['mixtures']} pressure-level mixtures" if summary["mixtures"] else ""
            lines.append(f"- {split}: {summary['items']} items ({summary['clips']} clips of split {summary['split']!r}, one item per caption{mixes}) from `{summary['manifest']}`")
        if not self.data_summary:
            lines.append("- not recorded (exported without building the data sets)")
        options = self.options
        lines += ["", "## Model", "",
                  f"- UNet preset `{options.unet_preset}`, {options.prediction} prediction, DDPM {options.num_train_timesteps} steps ({options.beta_schedule} betas),"
                  f" Min-SNR gamma {options.min_snr_gamma}, text dropout {options.text_dropout}",
                  f"- text encoder `{options.text_encoder}`, codec `{options.codec}`, clips of {options.num_samples / SAMPLE_RATE:.2f} s",
                  *([f"- continued from `{options.init_from}`; its sampling settings kept (not measured again): {json.dumps(self.inherited_sampling)}"]
                    if self.inherited_sampling is not None else []),
                  "- speed and quality: BENCHMARKS.md, section Generator (`foleyflow bench generate`); full card: docs/generator.md", ""]
        return "\n".join(lines)


def generator_config(unet: torch.nn.Module, options: TTAOptions, codec_reference: str) -> dict[str, Any]:
    """The exported generator's config.json: everything ``Generator.from_pretrained`` rebuilds from."""
    schedule = {"num_train_timesteps": options.num_train_timesteps, "beta_start": options.beta_start, "beta_end": options.beta_end, "beta_schedule": options.beta_schedule}
    return {
        "_class_name": GENERATOR_CLASS,
        "unet": {key: value for key, value in unet.config.items() if not key.startswith("_")},
        "text_encoder": options.text_encoder,
        "text_max_length": options.text_max_length,
        "codec": codec_reference,
        "prediction": options.prediction,
        "schedule": schedule,
        "train_seconds": options.num_samples / SAMPLE_RATE,
    }


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states of varying length -> (batch, longest, hidden) zero-padded, and the (batch, longest) mask."""
    longest = max(state.shape[0] for state in states)
    padded = torch.zeros(len(states), longest, states[0].shape[1], dtype=states[0].dtype)
    mask = torch.zeros(len(states), longest, dtype=torch.long)
    for row, state in enumerate(states):
        padded[row, : state.shape[0]] = state
        mask[row, : state.shape[0]] = 1
    return padded, mask


def _encoder_device() -> torch.device:
    from accelerate import PartialState

    return PartialState().device
