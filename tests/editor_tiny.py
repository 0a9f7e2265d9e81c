"""Tiny seeded stand-ins for the editor's components (CPU, milliseconds), shared by tests/test_editor_*.py."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig, inject_adapter_in_model

from foleyflow.pipelines.editor import Editor, EditorConfig

LATENT_CHANNELS = 8
LATENT_BINS = 16
TEXT_DIM = 16


def tiny_unet_config() -> dict:
    return dict(
        sample_size=None,
        in_channels=2 * LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**tiny_unet_config())


class ReshapeCodec(torch.nn.Module):
    """An exactly invertible 'codec': 128 samples per latent frame, laid out as 8 channels x 16 bins."""

    samples_per_latent_frame = LATENT_CHANNELS * LATENT_BINS

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        audio = torch.as_tensor(audio, dtype=torch.float32)
        batch, samples = audio.shape
        frames = samples // self.samples_per_latent_frame
        return audio.reshape(batch, frames, LATENT_CHANNELS, LATENT_BINS).permute(0, 2, 1, 3) * 4.0

    def decode(self, latents: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        audio = (latents / 4.0).permute(0, 2, 1, 3).reshape(latents.shape[0], -1)
        return audio if num_samples is None else audio[:, :num_samples]


def make_reshape_codec() -> ReshapeCodec:
    return ReshapeCodec()


class TinyTextEncoder(torch.nn.Module):
    """Word-hash embeddings + a frozen projection with LoRA: ``encode(list[str]) -> (states, mask)``."""

    def __init__(self, lora_rank: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(97, TEXT_DIM)
        self.proj = torch.nn.Linear(TEXT_DIM, TEXT_DIM)
        if lora_rank:
            inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=["proj"], init_lora_weights=False), self)
        for name, parameter in self.named_parameters():
            parameter.requires_grad_("lora_" in name)
        self.last_tokens: list[list[str]] = []

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        words = [text.lower().split() or [""] for text in texts]
        self.last_tokens = words
        length = max(len(w) for w in words)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.long)
        for row, sentence in enumerate(words):
            ids[row, : len(sentence)] = torch.tensor([sum(word.encode()) % 97 for word in sentence])
            mask[row, : len(sentence)] = 1
        return self.proj(self.embed(ids)), mask


def tiny_editor(objective: str = "flow", window_seconds: float = 0.064, overlap_seconds: float = 0.016,
                remover: torch.nn.Module | None = None, **config) -> Editor:
    editor_config = EditorConfig(
        objective=objective,
        steps=config.pop("steps", 4),
        window_seconds=window_seconds,
        overlap_seconds=overlap_seconds,
        unet=tiny_unet_config(),
        text_encoder={"factory": "editor_tiny:TinyTextEncoder"},
        codec={"factory": "editor_tiny:make_reshape_codec"},
        remover=None if remover is None else remover.to_spec(),
        **config,
    )
    return Editor(tiny_unet(), TinyTextEncoder(), ReshapeCodec(), editor_config, remover=remover)


class TinyTriplets(torch.utils.data.Dataset):
    """Seeded (source, target, instruction) items of ``samples`` audio samples; target = source + a tone for "add"."""

    def __init__(self, split: str = "train", count: int = 8, samples: int = 1024) -> None:
        rng = torch.Generator().manual_seed(0 if split == "train" else 1)
        self.sources = 0.1 * torch.randn(count, samples, generator=rng)
        self.tone = 0.2 * torch.sin(torch.arange(samples) * 0.3)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        return {"source": self.sources[index], "target": self.sources[index] + self.tone, "instruction": "Add a tone", "task": "add",
                "edit_spans": [[0, self.sources.shape[1]]]}


def mask_head_editor(**config) -> Editor:
    """A tiny editor whose UNet has the mask channel (mask "learned"); ``config``: EditorConfig keys."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**(tiny_unet_config() | {"out_channels": LATENT_CHANNELS + 1}))
    editor_config = EditorConfig(
        steps=config.pop("steps", 3), window_seconds=0.064, overlap_seconds=0.016, unet=dict(unet.config),
        text_encoder={"factory": "editor_tiny:TinyTextEncoder"}, codec={"factory": "editor_tiny:make_reshape_codec"},
        mask_head=True, **config,
    )
    return Editor(unet, TinyTextEncoder(), ReshapeCodec(), editor_config)
