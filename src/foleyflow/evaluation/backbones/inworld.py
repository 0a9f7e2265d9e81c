"""In-world backbones, trained here on the corpus and shipped (no AudioSet weights needed).

Tagger: a narrow Cnn14 (same code as PANNs, ``panns.Cnn14``) trained multi-label on the
corpus classes. Its clip embedding stands in for PANNs' 2048-d one (FD), its logits for the
527 AudioSet logits (KL, IS), and embeddings of 0.96 s windows for VGGish's frames (FAD).

CLAP: the same narrow Cnn14 trunk as audio encoder, the frozen all-MiniLM-L6-v2 of
``foleyflow.models.text`` as text tower (token states mean-pooled, 384-d), one linear projection per side into
a shared space and a learnt temperature, trained with the symmetric contrastive loss of
CLIP/CLAP. Only the audio encoder, the projections and the temperature are saved: the text
tower ships with its own package.
"""

from __future__ import annotations

import math
import os
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foleyflow.evaluation.backbones import as_batch, load_strict, read_state_dict, weights_fingerprint
from foleyflow.evaluation.backbones.panns import Cnn14
from foleyflow.models.checkpoint import load_config, resolve_model_dir, save_model_folder
from foleyflow.models.text import TextEncoder

INWORLD_CHANNELS = (16, 32, 64, 128, 128, 128)
FRAME_SECONDS = 0.96  # VGGish's example length, so in-world FAD pools comparable frames
# The Cnn14-style trunk halves time five times, so it needs 32 mel frames (hop 160, centred):
# shorter clips (the corpus has 0.28 s events) are zero-padded to this length instead of failing.
# Clips that already had 32 frames are left as they are, so their cached features stay valid.
MIN_SAMPLES = 31 * 160
SAMPLE_RATE = 16_000
TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384


def build_tagger(class_names: list[str], channels: tuple[int, ...] = INWORLD_CHANNELS) -> Cnn14:
    return freeze_front_end(Cnn14(classes_num=len(class_names), channels=tuple(channels)))


def freeze_front_end(model: Cnn14) -> Cnn14:
    """The STFT kernels and mel filters are fixed signal processing (PANNs froze them too);
    training them would let the 'spectrogram' drift away from a spectrogram."""
    model.spectrogram_extractor.requires_grad_(False)
    model.logmel_extractor.requires_grad_(False)
    return model


def save_tagger(folder: str | os.PathLike, model: Cnn14, class_names: list[str], card: str | None = None,
                input_seconds: float | None = None, dtype: torch.dtype | None = None):
    config = {"class": "InworldTagger", "class_names": list(class_names), "channels": model.config["channels"]}
    if input_seconds is not None:
        config["input_seconds"] = input_seconds  # the crop it was trained on; held-out figures use it
    return save_model_folder(folder, model.state_dict(), config, card, dtype=dtype)


def save_clap(folder: str | os.PathLike, model: "ClapModel", card: str | None = None,
              input_seconds: float | None = None, dtype: torch.dtype | None = None):
    config = {"class": "InworldClap", **model.config, **({"input_seconds": input_seconds} if input_seconds is not None else {})}
    return save_model_folder(folder, model.state_dict(), config, card, dtype=dtype)


def sentence_embeddings(encoder: TextEncoder, texts: list[str]) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence embedding: token states averaged over the attention mask."""
    states, mask = encoder.encode(list(texts))
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class ClapModel(nn.Module):
    """Audio trunk + projections + temperature; text features come in precomputed (TEXT_DIM)."""

    def __init__(self, embed_dim: int = 128, channels: tuple[int, ...] = INWORLD_CHANNELS, text_dim: int = TEXT_DIM):
        super().__init__()
        self.config = dict(embed_dim=embed_dim, channels=list(channels), text_dim=text_dim, text_model=TEXT_MODEL)
        self.audio_encoder = freeze_front_end(Cnn14(classes_num=1, channels=tuple(channels)))
        self.audio_projection = nn.Linear(channels[-1], embed_dim)
        self.text_projection = nn.Linear(text_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / 0.07)))
        self.audio_frozen = False

    def freeze_audio_encoder(self) -> None:
        """Train only the projections and the temperature (the trunk stays as initialised)."""
        self.audio_frozen = True
        self.audio_encoder.requires_grad_(False)
        self.audio_encoder.eval()

    def train(self, mode: bool = True) -> "ClapModel":
        super().train(mode)
        if self.audio_frozen:  # no dropout, no BatchNorm statistics updates in a frozen trunk
            self.audio_encoder.eval()
        return self

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) 16 kHz audio -> unit embeddings; clips shorter than ``MIN_SAMPLES``
        are zero-padded here, so every caller (the backbone, the CLAP filter) gets the same."""
        audio = F.pad(audio, (0, max(MIN_SAMPLES - audio.shape[-1], 0)))
        return self.project_audio(self.audio_encoder(audio)["embedding"])

    def project_audio(self, trunk_embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_projection(trunk_embedding), dim=-1)

    def embed_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(text_features), dim=-1)

    def contrastive_loss(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                         positives: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over the batch: item i's audio matches item i's caption.

        ``positives`` (batch, batch) bool marks further matching pairs (a corpus whose captions
        repeat per class puts several clips with one caption in a batch; treating those as
        negatives would push apart what should match). Each row's target spreads evenly over
        its positives; without it the target is the diagonal (CLIP's loss).
        """
        logits = self.logit_scale.exp().clamp(max=100.0) * audio_embeddings @ text_embeddings.T
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        matches = (eye if positives is None else positives.to(logits.device) | eye).to(logits.dtype)
        audio_to_text = F.cross_entropy(logits, matches / matches.sum(dim=1, keepdim=True))
        text_to_audio = F.cross_entropy(logits.T, matches.T / matches.T.sum(dim=1, keepdim=True))
        return (audio_to_text + text_to_audio) / 2.0


def long_enough(audio: np.ndarray) -> np.ndarray:
    """``audio`` zero-padded at the end to ``MIN_SAMPLES`` when shorter."""
    return np.pad(audio, (0, max(MIN_SAMPLES - audio.size, 0)))


def window_starts(num_samples: int, window: int) -> list[int]:
    """Non-overlapping window starts; a clip shorter than one window gives one (padded) window."""
    return list(range(0, max(num_samples - window, 0) + 1, window))


class InworldTaggerBackbone:
    kind = "tagger"

    def __init__(self, folder: str | os.PathLike = "default"):
        folder = resolve_model_dir(folder, "tagger")
        config = load_config(folder)
        self.class_names = list(config["class_names"])
        self.input_seconds = config.get("input_seconds")
        self.model = build_tagger(self.class_names, tuple(config["channels"]))
        state = read_state_dict(folder)
        load_strict(self.model, state, str(folder))
        self.model.eval()
        self.fingerprint = f"tagger-{weights_fingerprint(state)}"
        self.name = f"in-world tagger ({folder.name}, {len(self.class_names)} classes)"

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        clip = self.model(as_batch(long_enough(audio)))
        window = int(FRAME_SECONDS * SAMPLE_RATE)
        padded = np.pad(audio, (0, max(window - audio.size, 0)))
        windows = torch.from_numpy(np.stack([padded[s : s + window] for s in window_starts(padded.size, window)]).astype(np.float32))
        frames = self.model(windows)["embedding"]
        return {"embedding": clip["embedding"][0].numpy(), "logits": clip["logits"][0].numpy(), "frames": frames.numpy()}


class InworldClapBackbone:
    kind = "clap"

    def __init__(self, folder: str | os.PathLike = "default"):
        folder = resolve_model_dir(folder, "clap")
        config = load_config(folder)
        self.model = ClapModel(config["embed_dim"], tuple(config["channels"]), config.get("text_dim", TEXT_DIM))
        self.input_seconds = config.get("input_seconds")
        state = read_state_dict(folder)
        load_strict(self.model, state, str(folder))
        self.model.eval()
        self._text_encoder: TextEncoder | None = None
        self.fingerprint = f"clap-{weights_fingerprint(state)}"
        self.name = f"in-world CLAP ({folder.name})"

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        return {"audio_embedding": self.model.embed_audio(as_batch(audio))[0].numpy()}

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        if self._text_encoder is None:
            self._text_encoder = TextEncoder("minilm").eval()
        return self.model.embed_text(sentence_embeddings(self._text_encoder, texts)).numpy()
