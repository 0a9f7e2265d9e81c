"""The public backbones wrapped for extraction: PANNs Cnn14 16 kHz and VGGish from local files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from foleyflow.evaluation.backbones import as_batch, load_strict, read_state_dict, weights_fingerprint
from foleyflow.evaluation.backbones.panns import Cnn14
from foleyflow.evaluation.backbones.vggish import VGGish, vggish_examples
from foleyflow.models.checkpoint import load_config

# The crop audioldm_eval applies is none: the whole clip goes through Cnn14. Long files are
# still bounded so that one odd file cannot exhaust memory.
MAX_SECONDS = 60.0
VGGISH_BATCH = 64


def _folder_config(checkpoint: str | os.PathLike) -> dict:
    """A model folder may state a non-default architecture in config.json; a file is the official one."""
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        return {}
    config = load_config(folder)
    return {key: tuple(value) if isinstance(value, list) else value for key, value in config.items() if key != "class"}


class PannsBackbone:
    """FD embedding (2048-d) and the 527 AudioSet logits of Cnn14 16 kHz."""

    kind = "panns"

    def __init__(self, checkpoint: str | os.PathLike, **architecture):
        state = read_state_dict(checkpoint)
        self.model = Cnn14(**(architecture or _folder_config(checkpoint)))
        load_strict(self.model, state, str(checkpoint))
        self.model.eval()
        self.fingerprint = f"panns-{weights_fingerprint(state)}"
        self.name = f"PANNs Cnn14 16k ({Path(checkpoint).name})"

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        output = self.model(as_batch(audio[: int(MAX_SECONDS * 16_000)]))
        return {"embedding": output["embedding"][0].numpy(), "logits": output["logits"][0].numpy()}


class VggishBackbone:
    """FAD frame embeddings: 128-d per 0.96 s example, no PCA, no final ReLU."""

    kind = "vggish"

    def __init__(self, checkpoint: str | os.PathLike, **architecture):
        state = read_state_dict(checkpoint)
        # The port's release also carries the PCA parameters in a separate file; unused here.
        state = {k: v for k, v in state.items() if not k.startswith("pproc.")}
        self.model = VGGish(**(architecture or _folder_config(checkpoint)))
        load_strict(self.model, state, str(checkpoint))
        self.model.eval()
        self.fingerprint = f"vggish-{weights_fingerprint(state)}"
        self.name = f"VGGish ({Path(checkpoint).name})"

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        examples = torch.from_numpy(vggish_examples(audio[: int(MAX_SECONDS * 16_000)]))
        frames = torch.cat([self.model(chunk) for chunk in examples.split(VGGISH_BATCH)])
        return {"frames": frames.numpy()}
