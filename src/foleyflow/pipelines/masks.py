"""Edit masks: where in a clip an edit happens (issue 9: localisation is what makes an edit
preserve the rest of the recording).

Masks live on the latent grid as (batch, 1, latent frames, 1) floats in [0, 1] — a time mask,
broadcast over the latent's frequency rows — so that compositing (``output = source outside,
edit inside``) works on latents and on mel frames alike.

The ground truth comes from the data set: a triplet knows the sample spans of the event it
adds, removes or replaces (``edit_mask`` per mel frame). Spans include an event's quiet tails,
so the ground truth keeps only the span's frames where source and target latents really
differ (``energy_fraction`` of the span's largest difference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from foleyflow.data.recipes import TASKS
from foleyflow.errors import InputError


def pool_frame_mask(frame_mask: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """(batch, mel frames) bool -> (batch, latent frames) float: a latent frame is in the
    region when any of the mel frames it covers is."""
    frames = frame_mask.float()[:, None, :]
    return F.adaptive_max_pool1d(frames, latent_frames)[:, 0]


def ground_truth_latent_mask(
    frame_mask: torch.Tensor, x_target: torch.Tensor, x_source: torch.Tensor, energy_fraction: float = 0.2
) -> torch.Tensor:
    """(batch, 1, latent frames, 1) mask of the frames an edit changes.

    frame_mask: (batch, mel frames) bool span mask; x_target, x_source: (batch, C, frames, F).
    """
    span = pool_frame_mask(frame_mask, x_target.shape[2])
    change = (x_target - x_source).abs().mean(dim=(1, 3))  # (batch, latent frames)
    peak = (change * span).amax(dim=1, keepdim=True)
    changed = change >= energy_fraction * peak
    return (span * changed.float() * (peak > 0).float())[:, None, :, None]


# -- estimated masks (issue 9): the user gives no mask; the editor finds the edit region ---------
#
#   none       the paper's plain recipe: everything may change (an all-ones mask)
#   learned    sigmoid of a mask-head editor's extra output channel, averaged over frequency and
#              over the solver's calls of the conditional branch (no extra network call)
#   localiser  sigmoid of the editor's separate localiser (models.localiser) on the source latent
#              and the instruction, one call per window
#   diffedit   |v(instruction) - v(null instruction)| averaged over channels, frequency and the
#              solver's calls, from the CFG batch (DiffEdit's idea, on velocities)
#   attention  cross-attention of the instruction's object tokens over time
#   oracle     the ground truth (``ground_truth_latent_mask``); the benchmark's upper bound only
# A score becomes a mask by one shared recipe (``finish_mask``): smooth over time, normalise,
# threshold, dilate, then soften the edges with a linear ramp outside the region.

METHODS = ("none", "learned", "localiser", "diffedit", "attention")  # what a user may choose
# A time region the user marks (``Editor.edit(region=...)``, ``foleyflow edit --region``) is not
# estimated; the benchmark scores it with the true event's span, as a user marking it would.
REGION = "region"
BENCH_METHODS = METHODS + (REGION, "oracle")
# Words of the instruction templates (data/language.py) that name the operation, not the sound.
FUNCTION_WORDS = frozenset(
    "add insert mix in to recording remove take out delete get rid replace swap for change into with "
    "the a an of sound some and".split()
)


@dataclass(frozen=True)
class MaskOptions:
    """How a score (per latent frame) becomes a mask. Frames are latent frames (40 ms for the default codec)."""

    threshold: float | None = None  # None: the method's default (``DEFAULT_THRESHOLDS``)
    smooth: int = 5  # moving-average width of the score before thresholding (diffedit, attention)
    dilate: int = 1  # frames added on each side of the thresholded region
    ramp: int = 3  # frames of linear fall-off outside the region (soft edges)
    # How the localiser marks an "add": "threshold" as any other task, or "expected" (``expected_span``).
    add_span: str = "threshold"
    # {instruction task: threshold} over ``threshold`` for that task's edits. Why: one mask does two
    # jobs in a replace (where the old sound is taken out *and* where the new one may enter), so the
    # threshold best for a remove need not be best for a replace (docs/editor.md).
    task_thresholds: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.add_span not in ADD_SPANS:
            raise InputError(f"mask add_span must be one of {', '.join(ADD_SPANS)}, got {self.add_span!r}")
        for task, threshold in {None: self.threshold, **(self.task_thresholds or {})}.items():
            if task is not None and task not in TASKS:
                raise InputError(f"mask task thresholds: tasks are {', '.join(TASKS)}, got {task!r}")
            if threshold is not None and not 0.0 <= threshold <= 1.0:
                raise InputError(f"mask threshold must lie in [0, 1], got {threshold}")
        for name in ("smooth", "dilate", "ramp"):
            value = getattr(self, name)
            if int(value) != value or value < (1 if name == "smooth" else 0):
                raise InputError(f"mask {name} must be a whole number of frames (>= {1 if name == 'smooth' else 0}), got {value}")

    def threshold_for(self, method: str, task: str | None) -> float:
        """The threshold a ``method``'s score is cut at for an edit of ``task``."""
        if task in (self.task_thresholds or {}):
            return self.task_thresholds[task]
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS.get(method, 0.5)


ADD_SPANS = ("threshold", "expected")

NO_LOCALISER = "mask 'localiser' needs an editor with a localiser (foleyflow train localise)"

# learned: a probability; diffedit and attention: scores min-max normalised per window.
DEFAULT_THRESHOLDS = {"learned": 0.5, "localiser": 0.5, "diffedit": 0.5, "attention": 0.5}


def check_method(method: str, allowed: tuple[str, ...] = METHODS) -> str:
    if method not in allowed:
        raise InputError(f"mask must be one of {', '.join(allowed)}, got {method!r}")
    return method


def as_mask(frames: torch.Tensor) -> torch.Tensor:
    """(batch, frames) -> the common (batch, 1, frames, 1) format."""
    return frames[:, None, :, None]


def full_mask(like: torch.Tensor) -> torch.Tensor:
    """The ``none`` method: every frame of a (batch, C, frames, F) latent may change."""
    return torch.ones(like.shape[0], 1, like.shape[2], 1, dtype=like.dtype, device=like.device)


def moving_average(frames: torch.Tensor, width: int) -> torch.Tensor:
    """(batch, frames) smoothed over ``width`` frames (edges: replicated)."""
    if width <= 1:
        return frames
    left = (width - 1) // 2
    padded = F.pad(frames[:, None], (left, width - 1 - left), mode="replicate")
    return F.avg_pool1d(padded, width, stride=1)[:, 0]


def min_max(frames: torch.Tensor) -> torch.Tensor:
    """(batch, frames) rescaled to [0, 1] per row; a flat row (no evidence anywhere) becomes zeros."""
    low, high = frames.amin(dim=1, keepdim=True), frames.amax(dim=1, keepdim=True)
    span = high - low
    return torch.where(span > 1e-12, (frames - low) / span.clamp_min(1e-12), torch.zeros_like(frames))


def dilate(binary: torch.Tensor, frames: int) -> torch.Tensor:
    """(batch, frames) 0/1 grown by ``frames`` on each side."""
    if frames <= 0:
        return binary
    return F.max_pool1d(binary[:, None], 2 * frames + 1, stride=1, padding=frames)[:, 0]


def soft_edges(binary: torch.Tensor, ramp: int) -> torch.Tensor:
    """1 inside the region, falling linearly to 0 over ``ramp`` frames outside it.

    The region itself stays at exactly 1 (the edit is never diluted where it was detected);
    only frames outside get a partial weight, 1 - k / (ramp + 1) at distance k.
    """
    soft = binary
    for distance in range(1, ramp + 1):
        soft = torch.maximum(soft, dilate(binary, distance) * (1.0 - distance / (ramp + 1)))
    return soft


def finish_mask(score: torch.Tensor, threshold: float, options: MaskOptions, normalise: bool) -> torch.Tensor:
    """(batch, frames) score -> (batch, 1, frames, 1) mask in [0, 1] with soft edges."""
    score = moving_average(score.float(), options.smooth)
    if normalise:
        score = min_max(score)
    binary = (score >= threshold).float()
    return as_mask(soft_edges(dilate(binary, options.dilate), options.ramp))


def expected_span(probability: torch.Tensor) -> torch.Tensor:
    """(batch, frames) edit probability -> (batch, frames) 0/1: one run of frames as long as the
    expected number of edited frames (the probabilities' sum), where their mean is highest.

    Why, for "add": where an added sound starts cannot be read from the recording, so a localiser
    trained on true masks spreads its probability (rarely above 0.5: the thresholded mask of an add
    is mostly empty) while its sum still tracks how long the sound is. Any placement is as right as
    the instruction; this one is where the localiser leans, at the expected length.
    """
    frames = probability.shape[1]
    spans = torch.zeros_like(probability)
    for row, frame_probability in enumerate(probability.float()):
        length = int(min(max(round(float(frame_probability.sum())), 1), frames))
        start = int(torch.argmax(F.avg_pool1d(frame_probability[None, None], length, stride=1)))
        spans[row, start : start + length] = 1.0
    return spans


def parse_time_ranges(text: str) -> list[tuple[float, float]]:
    """'1.2-2.0, 3-3.5' -> [(1.2, 2.0), (3.0, 3.5)] seconds (the form --region and the web page take)."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        start, sep, end = part.partition("-")
        try:
            if not sep:
                raise ValueError
            ranges.append((float(start), float(end)))
        except ValueError:
            raise InputError(f"a region is START-END in seconds (e.g. 1.2-2.0), got {part!r}") from None
    return ranges


def region_samples(ranges, total_samples: int, sample_rate: int) -> np.ndarray:
    """(samples,) bool: the time ranges [(start s, end s), ...] of a clip ``total_samples`` long.
    A range may run past the end (it is cut there); one that is empty or starts outside the clip
    is an error, not an edit of nothing."""
    ranges = list(ranges)
    if not ranges:
        raise InputError("a region needs at least one time range")
    duration = total_samples / sample_rate
    region = np.zeros(total_samples, dtype=bool)
    for start, end in ranges:
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
            raise InputError(f"a region's range must have 0 <= start < end (seconds), got {start:g}-{end:g}")
        if start >= duration:
            raise InputError(f"region {start:g}-{end:g} s starts after the clip ends ({duration:.2f} s)")
        region[int(round(start * sample_rate)) : int(round(min(end, duration) * sample_rate))] = True
    return region


def region_mask(sample_windows: np.ndarray, latent_frames: int, options: MaskOptions) -> torch.Tensor:
    """(windows, samples) 0/1 region -> (windows, 1, latent frames, 1) mask: a latent frame is in
    when any of its samples is; then the dilation and soft edges every mask gets."""
    frames = pool_frame_mask(torch.from_numpy(np.asarray(sample_windows)) > 0.5, latent_frames)
    return finish_mask(frames, 0.5, replace(options, smooth=1), normalise=False)


class MaskEvidence:
    """What the sampler's network calls say about the edit region, accumulated call by call.

    ``record`` gets the full outputs (velocity or noise channels, + the mask channel of a
    mask-head UNet) of the conditional branch and, when the CFG batch ran it, of the
    unconditional one. The estimates are running averages, so every-step compositing can use
    the mask known so far and the final mask is the average over all solver calls.
    """

    def __init__(self, latent_channels: int) -> None:
        self.latent_channels = latent_channels
        self._learned: torch.Tensor | None = None
        self._learned_calls = 0
        self._difference: torch.Tensor | None = None
        self._difference_calls = 0
        self.localised: torch.Tensor | None = None  # (batch, frames) probability of the editor's localiser

    def record(self, out_cond: torch.Tensor, out_uncond: torch.Tensor | None) -> None:
        from foleyflow.pipelines.edit_network import split_mask_channel

        prediction, logits = split_mask_channel(out_cond, self.latent_channels)
        if logits is not None:
            probability = torch.sigmoid(logits.float()).mean(dim=(1, 3))  # (batch, frames)
            self._learned = probability if self._learned is None else self._learned + probability
            self._learned_calls += 1
        if out_uncond is not None:
            other = split_mask_channel(out_uncond, self.latent_channels)[0]
            difference = (prediction.float() - other.float()).abs().mean(dim=(1, 3))
            self._difference = difference if self._difference is None else self._difference + difference
            self._difference_calls += 1

    def learned_score(self) -> torch.Tensor:
        """(batch, frames) mean edit probability of the mask head."""
        if self._learned is None:
            raise InputError("mask 'learned' needs a mask-head editor (its config has mask_head: true)")
        return self._learned / self._learned_calls

    def localiser_score(self) -> torch.Tensor:
        """(batch, frames) edit probability of the localiser (models.localiser), run once on the source."""
        if self.localised is None:
            raise InputError(NO_LOCALISER)
        return self.localised

    def diffedit_score(self) -> torch.Tensor:
        """(batch, frames) mean |v(instruction) - v(null)|."""
        if self._difference is None:
            raise RuntimeError("no unconditional branch was run; the diffedit mask needs the CFG batch")
        return self._difference / self._difference_calls


def object_token_indices(tokens: list[str]) -> list[int]:
    """Positions of the tokens that name sounds: not special tokens, punctuation or template words.

    Tokenizer pieces are compared without their word markers (T5's "▁", BERT's "##", BPE's "Ġ");
    if nothing is left (an instruction of function words only), every real token counts.
    """
    keep = []
    for index, token in enumerate(tokens):
        word = token.replace("▁", "").replace("Ġ", "").lstrip("#").lower()
        special = token.startswith(("[", "<")) and token.endswith(("]", ">"))
        if word and not special and any(ch.isalnum() for ch in word) and word not in FUNCTION_WORDS:
            keep.append(index)
    return keep or [i for i, t in enumerate(tokens) if not (t.startswith(("[", "<")) and t.endswith(("]", ">")))] or list(range(len(tokens)))


def attention_score(token_frame: torch.Tensor, tokens: list[str]) -> torch.Tensor:
    """(batch, tokens, frames) attention -> (batch, frames): the object tokens' share of attention."""
    return token_frame[:, object_token_indices(tokens)].sum(dim=1)


def estimated_mask(method: str, evidence: MaskEvidence, options: MaskOptions, attention: torch.Tensor | None = None,
                   tokens: list[str] | None = None, like: torch.Tensor | None = None, task: str | None = None) -> torch.Tensor:
    """The (batch, 1, frames, 1) mask of ``method`` from what the sampler recorded; ``task`` is the
    instruction's (``data.language.instruction_task``), for the localiser's ``add_span`` and
    ``MaskOptions.task_thresholds``."""
    threshold = options.threshold_for(method, task)
    if method == "none":
        return full_mask(like)
    if method == "learned":
        # A probability needs no normalising, and smoothing would blur a head trained on sharp targets.
        return finish_mask(evidence.learned_score(), threshold, replace(options, smooth=1), normalise=False)
    if method == "localiser":
        if task == "add" and options.add_span == "expected":
            return as_mask(soft_edges(dilate(expected_span(evidence.localiser_score()), options.dilate), options.ramp))
        return finish_mask(evidence.localiser_score(), threshold, replace(options, smooth=1), normalise=False)
    if method == "diffedit":
        return finish_mask(evidence.diffedit_score(), threshold, options, normalise=True)
    if method == "attention":
        if attention is None or tokens is None:
            raise RuntimeError("the attention mask needs the recorded cross-attention and the instruction's tokens")
        return finish_mask(attention_score(attention, tokens), threshold, options, normalise=True)
    raise InputError(f"mask must be one of {', '.join(METHODS)}, got {method!r}")


def frame_iou(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-row intersection over union of two (batch, frames) boolean masks (1 when both are empty):
    the localiser's validation figure and the benchmark's mask IoU."""
    union = (predicted | truth).sum(dim=1)
    inter = (predicted & truth).sum(dim=1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union, dtype=torch.float32))


def frames_to_samples(frame_mask: np.ndarray, samples_per_frame: int, total: int) -> np.ndarray:
    """(frames,) per-latent-frame mask -> (total,) per-sample mask, linear between frame centres."""
    frame_mask = np.asarray(frame_mask, dtype=np.float64).reshape(-1)
    centres = (np.arange(frame_mask.size) + 0.5) * samples_per_frame
    return np.interp(np.arange(total) + 0.5, centres, frame_mask)
