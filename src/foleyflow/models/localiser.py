"""The edit localiser (issue 9): where in the source does the instruction act?

A small network beside the editor's UNet: it reads the source latent x_T and the instruction's
token states and gives one logit per latent frame, trained with BCE against the data set's
ground-truth edit regions (``foleyflow train localise``). The user still gives no mask.

Why not the UNet's own mask channel (``mask_head``): it does not find the region (held out, the
shipped editor: mask IoU 0.03 for remove and replace; BENCHMARKS.md "Editor benchmark, session
11"), while this network does (0.55 / 0.25). A likely reason, not measured: the channel also sees
the noisy latent x_t, and on path (1) at large t the edit region shows as |x_t - x_T| in training,
a clue that sampling, where x_t is the model's own trajectory, never gives. It runs once per
window, not once per solver step.

Layout: a 2-D convolutional stem over (frames, latent bins), the bins folded into channels,
then a stack of dilated residual 1-D convolutions over time (receptive field 69 latent frames,
about 2.8 s, with the default dilations), conditioned on the instruction twice: a FiLM from the mean token state
and cross-attention from frames to tokens. Written by hand: diffusers and transformers have no
text-conditioned 1-D sequence labeller of this size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from foleyflow.errors import InputError


@dataclass
class LocaliserConfig:
    latent_channels: int = 8
    latent_bins: int = 16  # latent frequency bins (64 mels / 4)
    text_dim: int = 384  # the instruction encoder's token width (MiniLM-L6: 384)
    stem_channels: int = 32
    width: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    film_after: int = 1  # FiLM by the pooled instruction after this block
    attend_after: tuple[int, ...] = (2, 4)  # cross-attention to the tokens after these blocks
    heads: int = 4
    groups: int = 8
    # False: one logit per latent frame (where the edit acts). True: one per latent frequency bin and
    # frame (the removal gains, ``removal_gains``: how much of the source each cell keeps).
    per_bin: bool = False

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        self.attend_after = tuple(int(k) for k in self.attend_after)
        if self.latent_bins % 2 or self.width % self.heads or self.width % self.groups:
            raise InputError("localiser config: latent_bins must be even and width divisible by heads and groups")
        blocks = len(self.dilations)
        if not 0 <= self.film_after < blocks or any(not 0 <= k < blocks for k in self.attend_after):
            raise InputError(f"localiser config: film_after and attend_after must index the {blocks} blocks")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LocaliserConfig":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"localiser config: unknown keys {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["dilations"], values["attend_after"] = list(self.dilations), list(self.attend_after)
        return values


class EditLocaliser(nn.Module):
    def __init__(self, config: LocaliserConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        c = config if isinstance(config, LocaliserConfig) else LocaliserConfig.from_dict(config or {})
        self.config = c
        self.stem = nn.Sequential(
            nn.Conv2d(c.latent_channels, c.stem_channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(c.stem_channels, c.stem_channels, 3, padding=1, stride=(1, 2)), nn.GELU(),
        )
        self.fold = nn.Conv1d(c.stem_channels * c.latent_bins // 2, c.width, 1)
        self.norms = nn.ModuleList([nn.GroupNorm(c.groups, c.width) for _ in c.dilations])
        self.convs = nn.ModuleList([nn.Conv1d(c.width, c.width, 3, padding=d, dilation=d) for d in c.dilations])
        self.film = nn.Linear(c.text_dim, 2 * c.width)
        self.keys = nn.Linear(c.text_dim, c.width)
        self.attention = nn.MultiheadAttention(c.width, c.heads, batch_first=True)
        self.head = nn.Conv1d(c.width, c.latent_bins if c.per_bin else 1, 1)

    def forward(self, x_source: torch.Tensor, states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x_source (batch, C, frames, bins), states (batch, tokens, text_dim), token_mask (batch, tokens)
        -> logits (batch, frames), or (batch, bins, frames) with ``per_bin``."""
        if token_mask is None:
            token_mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        token_mask = token_mask.bool()
        states = states.to(self.keys.weight.dtype)
        h = self.stem(x_source.to(self.keys.weight.dtype))  # (batch, stem, frames, bins / 2)
        batch, channels, frames, bins = h.shape
        h = self.fold(h.permute(0, 1, 3, 2).reshape(batch, channels * bins, frames))
        pooled = (states * token_mask[..., None]).sum(1) / token_mask.sum(1, keepdim=True).clamp(min=1)
        scale, shift = self.film(pooled).chunk(2, dim=-1)
        keys = self.keys(states)
        for index, (norm, conv) in enumerate(zip(self.norms, self.convs)):
            h = h + conv(F.gelu(norm(h)))
            if index == self.config.film_after:
                h = h * (1 + scale[..., None]) + shift[..., None]
            if index in self.config.attend_after:
                attended, _ = self.attention(h.transpose(1, 2), keys, keys, key_padding_mask=~token_mask)
                h = h + attended.transpose(1, 2)
        logits = self.head(h)
        return logits if self.config.per_bin else logits[:, 0]

    def to_spec(self) -> dict[str, Any]:
        """The config an editor folder stores for this network (``build_localiser`` reads it back)."""
        return self.config.to_dict()


class LocaliserEnsemble(nn.Module):
    """Localisers of one config read as one network: the mean of their logits.

    For the remover the logits are log-gains, so the mean is the geometric mean of the members'
    gains. Why: one remover memorises the clips it was trained on (training loss about 0.05 against
    validation 0.21, however many scenes it sees; BENCHMARKS.md, sessions 23-25), and members trained
    on other scene draws err on held-out clips in other ways, so their mean errs less."""

    def __init__(self, members: Sequence[EditLocaliser]) -> None:
        super().__init__()
        if len(members) < 2:
            raise InputError(f"an ensemble needs at least two localisers, got {len(members)}")
        if any(member.config != members[0].config for member in members):
            raise InputError("the localisers of an ensemble must share one config")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, x_source: torch.Tensor, states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([member(x_source, states, token_mask) for member in self.members]).mean(0)

    def to_spec(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "members": len(self.members)}


def build_localiser(spec: Mapping[str, Any]) -> EditLocaliser | LocaliserEnsemble:
    """The network an editor folder's config describes: a ``LocaliserConfig``, plus ``members``
    (default 1) for an ensemble of that many."""
    spec = dict(spec)
    members = spec.pop("members", 1)
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise InputError(f"localiser config: members must be a whole number >= 1, got {members!r}")
    if members == 1:
        return EditLocaliser(spec)
    return LocaliserEnsemble([EditLocaliser(spec) for _ in range(members)])


def ensemble_members(network: EditLocaliser | LocaliserEnsemble) -> list[EditLocaliser]:
    """The single localisers a network averages (itself when it is one)."""
    return list(network.members) if isinstance(network, LocaliserEnsemble) else [network]
