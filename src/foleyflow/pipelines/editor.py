"""RFM-Edit: edit a recording from a plain instruction (SPEC 2).

    audio --codec--> x_T (source latent)            instruction --text encoder (+LoRA)--> E_I
    x_start = path at t_start between noise and x_T (4)
    Euler (or Heun) from t_start to 1 on v_theta(x_t (+) x_T, t, E_I), CFG on E_I (5)
    x_1 --codec--> edited audio, exactly the input's length

Clips of any length go through ``windowing`` (fixed model window, cross-faded overlaps).
Other sample rates: files are read through ``load_audio`` (mono, resampled to 16 kHz with
soxr); arrays passed to ``edit`` must already be 16 kHz mono. Output is 16 kHz.

The ``ddpm`` objective (the AUDIT-style baseline: same network, same concatenated source,
noise prediction) samples with DDIM from pure noise; it has no t_start.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from foleyflow.audio.io import SAMPLE_RATE, load_audio
from foleyflow.errors import InputError
from foleyflow.pipelines import removal, windowing
from foleyflow.diffusion.ode import SOLVERS
from foleyflow.pipelines.attention import AttentionRecorder
from foleyflow.data.language import instruction_task, removal_instruction
from foleyflow.pipelines.compositing import (
    MODES, blend, blend_audio, blend_removal, blend_spectral, check_mode, every_step, in_audio, latent_end, spectral, spectral_rule,
    unmarked_is_source,
)
from foleyflow.pipelines.edit_network import ddpm_edit, flow_edit, network_evaluations
from foleyflow.pipelines.masks import (
    REGION,
    MaskEvidence,
    MaskOptions,
    NO_LOCALISER,
    check_method,
    estimated_mask,
    frames_to_samples,
    region_mask,
    region_samples,
)

OBJECTIVES = ("flow", "ddpm")
LOCALISER_QUERIES = ("instruction", "removed")
REMOVALS = ("unet", "gains")
REMOVAL_REGIONS = ("mask", "clip")
NULL_INSTRUCTION = ""  # the unconditional branch of CFG, as trained by instruction dropout


@dataclass
class EditorConfig:
    """Everything the editor needs besides weights; saved as the model folder's config.json."""

    objective: str = "flow"
    sigma_min: float = 1e-4  # foleyflow.diffusion.flow's default; the papers do not give one
    steps: int = 25
    cfg_scale: float = 1.0
    t_start: float = 0.01
    solver: str = "euler"
    window_seconds: float = 10.24
    overlap_seconds: float = 1.0
    unet: dict[str, Any] = field(default_factory=dict)  # UNet2DConditionModel config
    text_encoder: dict[str, Any] = field(default_factory=dict)  # spec understood by foleyflow.models.text
    codec: str = "default"  # "default", or a codec folder (relative paths: inside the editor folder)
    # The UNet has one output channel more than the latent: the logits of the edit mask
    # (pipelines.masks), trained from the data set's ground-truth edit regions.
    mask_head: bool = False
    # A separate localiser (models.localiser, ``foleyflow train localise``): its LocaliserConfig
    # as a dict, weights under ``localiser.*``; None: the editor has none.
    localiser: dict[str, Any] | None = None
    # The removal gains (pipelines.removal; ``foleyflow train localise`` with ``target:
    # "removal-gains"``): a per-cell localiser's config, weights under ``remover.*``; None: none.
    remover: dict[str, Any] | None = None
    # How a remove (and a replace's removal) takes the sound out (``REMOVALS``): "unet", the
    # regenerated content's level under spectral compositing (RFM-Edit's content); "gains", the
    # remover's gains on the recording (docs/editor.md, "Removal gains").
    removal: str = "unet"
    # Where the gains act: "mask", inside the edit mask (the localiser's); "clip", everywhere
    # (the gains are 1 wherever the network hears nothing to remove).
    removal_region: str = "mask"
    # The removal inside a region the user marks. "unet": with the true region the UNet's content
    # removes more than the gains (200 test removes, the oracle mask: gains minus UNet +0.039
    # [+0.016, +0.063]; BENCHMARKS.md "Editor benchmark, session 23").
    region_removal: str = "unet"
    # Localisation defaults (issue 9, docs/editor.md): None picks "learned" + "end" for a
    # mask-head model and the paper's plain recipe ("none" + "none") otherwise.
    mask: str | None = None  # pipelines.masks.METHODS
    composite: str | None = None  # pipelines.compositing.MODES
    mask_threshold: float | None = None  # None: the method's own (masks.DEFAULT_THRESHOLDS)
    mask_task_thresholds: dict[str, float] | None = None  # {"replace": 0.9}: over mask_threshold for that task
    # A region the user marks (``edit(region=...)``) is regenerated inside from (almost) pure noise
    # with the source's own path kept outside at every step: inpainting, which matches what
    # path (1) trains (docs/editor.md, "A region you mark"). None: every-step+spectral for the flow
    # objective, spectral for ddpm.
    region_t_start: float = 0.01
    region_composite: str | None = None
    mask_smooth: int = 5  # latent frames
    mask_dilate: int = 1
    mask_ramp: int = 3
    mask_add_span: str = "threshold"  # masks.MaskOptions.add_span: how the localiser marks an "add"
    # What the localiser is asked for a replace (``LOCALISER_QUERIES``): the instruction itself, or
    # where the replaced sound is ("removed": the instruction as "Remove <old sound>"). Why: the new
    # sound's place cannot be read from the source, so a localiser trained on both events' regions
    # spreads its probability; the old sound's region is what it can find (docs/editor.md).
    localiser_query: str = "instruction"
    # Spectral compositing: no bin of the edit quieter than this quantile of the source's magnitude
    # over the frames the edit leaves alone, per frequency (``compositing.room_tone``); None: no floor.
    room_tone_quantile: float | None = None
    # ... read only within this many seconds of the edit (``compositing.room_tone``); None: the whole clip.
    room_tone_seconds: float | None = None
    # Spectral compositing by local level over (STFT bins, frames) instead of bin by bin
    # (``compositing.keep_levels``); None: bin by bin.
    spectral_level: list[int] | None = None
    # Set by training on the from-source bridge (diffusion.flow.SourceBridgePath): the only
    # t_start whose start states the network has seen. None: path (1), any t_start.
    trained_t_start: float | None = None
    distillation: dict[str, Any] | None = None  # how `foleyflow distill edit` made it (steps, teacher, ...)

    def __post_init__(self) -> None:
        check_edit_settings(self.steps, self.cfg_scale, self.t_start, self.solver)
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.mask is None:
            self.mask = "learned" if self.mask_head else "none"
        if self.composite is None:
            self.composite = "none" if self.mask == "none" else "end"
        check_localisation(self.mask, self.composite, self.mask_head, self.objective, self.localiser is not None)
        if self.region_composite is None:
            self.region_composite = "every-step+spectral" if self.objective == "flow" else "spectral"
        check_region_settings(self.region_composite, self.objective)
        check_edit_settings(self.steps, self.cfg_scale, self.region_t_start, self.solver)
        self.mask_options()  # checks the numbers
        self.spectral_level = check_spectral_bounds(self.room_tone_quantile, self.spectral_level, self.room_tone_seconds)
        if self.localiser_query not in LOCALISER_QUERIES:
            raise InputError(f"localiser_query must be one of {', '.join(LOCALISER_QUERIES)}, got {self.localiser_query!r}")
        check_removal(self.removal, self.remover is not None)
        check_removal(self.region_removal, self.remover is not None)
        if self.removal_region not in REMOVAL_REGIONS:
            raise InputError(f"removal_region must be one of {', '.join(REMOVAL_REGIONS)}, got {self.removal_region!r}")
        if self.window_seconds <= 0 or not 0 <= self.overlap_seconds < self.window_seconds:
            raise InputError(f"need window_seconds > overlap_seconds >= 0, got {self.window_seconds} and {self.overlap_seconds}")

    def mask_options(self) -> MaskOptions:
        return MaskOptions(self.mask_threshold, self.mask_smooth, self.mask_dilate, self.mask_ramp, self.mask_add_span,
                           self.mask_task_thresholds)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EditorConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"editor config: unknown keys {', '.join(unknown)}")
        return cls(**data)


@contextlib.contextmanager
def reporting_progress(network: torch.nn.Module, progress: Callable[[int, int], None] | None, total: int):
    """Call ``progress(done, total)`` after each forward of ``network`` inside the block.

    A forward hook rather than a callback through the solvers: every sampler (Euler, Heun, DDIM,
    with or without every-step compositing) calls the UNet once per network evaluation, the CFG
    branches in one batch, so counting its forwards counts evaluations whatever the path.
    """
    if progress is None:
        yield
        return
    done = 0

    def after_forward(*_) -> None:
        nonlocal done
        done += 1
        progress(done, total)

    handle = network.register_forward_hook(after_forward)
    try:
        yield
    finally:
        handle.remove()


def check_edit_settings(steps: int, cfg_scale: float, t_start: float, solver: str) -> None:
    if int(steps) != steps or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps}")
    if not np.isfinite(cfg_scale) or cfg_scale < 0:
        raise InputError(f"cfg scale must be >= 0, got {cfg_scale}")
    if not 0.0 <= t_start < 1.0:
        raise InputError(f"t_start must be in [0, 1), got {t_start}")
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


def check_spectral_bounds(room_tone_quantile: float | None, spectral_level, room_tone_seconds: float | None = None) -> list[int] | None:
    """Checks the spectral-compositing settings; returns ``spectral_level`` as [bins, frames] ints."""
    if room_tone_quantile is not None and not 0.0 <= room_tone_quantile <= 1.0:
        raise InputError(f"room_tone_quantile must lie in [0, 1], got {room_tone_quantile}")
    if room_tone_seconds is not None and (room_tone_quantile is None or room_tone_seconds <= 0):
        raise InputError(f"room_tone_seconds must be above 0 and needs room_tone_quantile, got {room_tone_seconds}")
    if spectral_level is None:
        return None
    level = list(spectral_level)
    if len(level) != 2 or any(int(v) != v or v < 1 or v % 2 == 0 for v in level):
        raise InputError(f"spectral_level must be [bins, frames], two odd whole numbers >= 1, got {spectral_level!r}")
    return [int(v) for v in level]


def check_localisation(mask: str, composite: str, mask_head: bool, objective: str, has_localiser: bool = False) -> None:
    check_method(mask)
    check_mode(composite)
    if mask == "learned" and not mask_head:
        raise InputError("mask 'learned' needs a mask-head editor (its config has mask_head: true); try --mask diffedit")
    if mask == "localiser" and not has_localiser:
        raise InputError(f"{NO_LOCALISER}; try --mask diffedit")
    check_compositing(composite, objective)


def check_removal_name(removal: str) -> str:
    if removal not in REMOVALS:
        raise InputError(f"removal must be one of {', '.join(REMOVALS)}, got {removal!r}")
    return removal


def check_removal(removal: str, has_remover: bool) -> str:
    check_removal_name(removal)
    if removal == "gains" and not has_remover:
        raise InputError("removal 'gains' needs an editor with a remover (foleyflow train localise, target removal-gains)")
    return removal


def check_region_settings(composite: str, objective: str) -> None:
    check_compositing(composite, objective)
    if composite == "none":
        raise InputError(f"a region needs compositing ({', '.join(m for m in MODES if m != 'none')}), not 'none'")


def check_compositing(composite: str, objective: str) -> None:
    if every_step(check_mode(composite)) and objective != "flow":
        raise InputError(f"composite {composite!r} follows the rectified-flow path; the {objective} objective supports end and audio")


@dataclass
class EditResult:
    audio: np.ndarray  # (samples,) float32 at ``sample_rate``, the input's length
    instruction: str
    elapsed_s: float
    nfe: int  # network evaluations per window (a CFG pair runs as one batched forward)
    sample_rate: int = SAMPLE_RATE
    attention: np.ndarray | None = None  # (tokens, latent frames) over the whole clip
    tokens: list[str] | None = None
    mask: np.ndarray | None = None  # (latent frames,) in [0, 1] over the whole clip: where the edit was allowed
    mask_method: str = "none"
    composite: str = "none"

    @property
    def seconds(self) -> float:
        return self.audio.size / self.sample_rate

    @property
    def untouched(self) -> bool:
        """True when the mask marked no frame: nothing was edited (the localiser found nothing it
        was asked for, common for an "add" whose place the recording does not suggest), so the
        interfaces say so instead of returning the recording as if it were the edit."""
        return self.mask is not None and float(np.max(self.mask, initial=0.0)) <= 0.0


class Editor:
    """``Editor.from_pretrained("default").edit("park.wav", "Add a dog barking")``."""

    def __init__(self, unet: torch.nn.Module, text_encoder, codec, config: EditorConfig,
                 localiser: torch.nn.Module | None = None, remover: torch.nn.Module | None = None) -> None:
        if (localiser is None) != (config.localiser is None) or (remover is None) != (config.remover is None):
            raise InputError("an editor's config names a localiser (a remover) exactly when it has one")
        self.unet = unet.eval()
        self.text_encoder = text_encoder
        self.codec = codec
        self.config = config
        self.localiser = localiser.eval() if localiser is not None else None
        self.remover = remover.eval() if remover is not None else None

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = "default") -> "Editor":
        from foleyflow.pipelines.editor_io import load_editor

        return load_editor(name)

    def save_pretrained(self, folder: str | os.PathLike, card: str | None = None) -> Path:
        from foleyflow.pipelines.editor_io import save_editor

        return save_editor(self, folder, card)

    # -- editing ------------------------------------------------------------------
    @property
    def window_samples(self) -> int:
        """The model window rounded to whole latent frames (10.24 s -> 163,840 samples)."""
        per_frame = self.codec.samples_per_latent_frame
        return max(1, round(self.config.window_seconds * SAMPLE_RATE / per_frame)) * per_frame

    @property
    def overlap_samples(self) -> int:
        return min(round(self.config.overlap_seconds * SAMPLE_RATE), self.window_samples - 1)

    @torch.no_grad()
    def edit(
        self,
        audio: str | os.PathLike | np.ndarray,
        instruction: str,
        steps: int | None = None,
        cfg_scale: float | None = None,
        t_start: float | None = None,
        seed: int = 0,
        solver: str | None = None,
        attention: bool = False,
        mask: str | None = None,
        composite: str | None = None,
        region: Sequence[tuple[float, float]] | None = None,
        progress: Callable[[int, int], None] | None = None,
        removal: str | None = None,
    ) -> EditResult:
        """Edit ``audio`` (a path, or 16 kHz mono samples) as ``instruction`` says.

        ``mask`` ("learned", "localiser", "diffedit", "attention", "none") finds the edit region and
        ``composite`` (``compositing.MODES``: "end", "every-step", "audio", "spectral", ...) keeps the
        source outside it; both default to the model's config (docs/editor.md). ``region``, time
        ranges in seconds [(start, end), ...], is the user's own mask instead of an estimated one,
        edited with the config's ``region_t_start`` and ``region_composite`` unless given.
        ``progress(done, total)`` is called after every network evaluation of the sampling.
        ``removal`` ("unet" or "gains", ``REMOVALS``) overrides the config's (``removal``, or
        ``region_removal`` for a region) for a remove or replace.
        """
        samples = audio_samples(audio)
        removal = check_removal(self.default_removal(region is not None) if removal is None else removal, self.remover is not None)
        if region is not None:
            if mask is not None:
                raise InputError("give a region or a mask method, not both")
            composite = self.config.region_composite if composite is None else composite
            t_start = self.config.region_t_start if t_start is None else t_start
            check_region_settings(composite, self.config.objective)
            mask, region = REGION, region_samples(region, samples.size, SAMPLE_RATE)
        else:
            mask = self.config.mask if mask is None else mask
            composite = self.config.composite if composite is None else composite
            check_localisation(mask, composite, self.config.mask_head, self.config.objective, self.localiser is not None)
        run = self.sample_clip(
            samples, instruction, steps, cfg_scale, t_start, seed, solver,
            methods=() if mask == REGION else (mask,), keep=mask if every_step(composite) else None, attention=attention,
            region=region, progress=progress, network=attention or not self.removes_by_gains(instruction, mask, composite, removal),
            skip_unmarked=unmarked_is_source(composite),
        )
        start = time.perf_counter()
        out = self.finish(run, run.masks[mask], composite, removal)
        result = EditResult(out, run.instruction, run.seconds + time.perf_counter() - start, run.nfe,
                            mask=self.clip_frames(run.masks[mask], run), mask_method=mask, composite=composite)
        if attention:
            result.attention = self.clip_frames(run.attention, run)
            result.tokens = run.tokens
        return result

    @torch.no_grad()
    def sample_clip(
        self,
        samples: np.ndarray,
        instruction: str,
        steps: int | None = None,
        cfg_scale: float | None = None,
        t_start: float | None = None,
        seed: int = 0,
        solver: str | None = None,
        methods: Sequence[str] = (),
        keep: str | torch.Tensor | None = None,
        attention: bool = False,
        region: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
        network: bool = True,
        skip_unmarked: bool = False,
    ) -> "SampledClip":
        """Sample the edited latents of every window, estimating the masks of ``methods`` on the way.

        ``keep`` turns on every-step compositing with a method's running mask, ``"region"`` (the
        mask of ``region``, a (samples,) 0/1 array over the clip) or a given (windows, 1, frames, 1)
        mask (the benchmark's oracle). Decoding is ``finish``'s job, so that one sampling run can be
        composited with several masks; ``run.masks`` holds each method's mask, and ``"region"``'s.
        ``network=False`` skips the sampling (the edited latent is the source's, NFE 0): a removal
        by gains uses none of it (``removes_by_gains``). ``skip_unmarked`` skips it too when the
        localiser, the only mask asked for (and the one ``keep`` follows, if any), marks no frame; the caller
        says so only when its compositing keeps the source wherever the mask is 0 (``unmarked_is_source``),
        so that the output is the same without the sampling (most "add"s: ``EditResult.untouched``).
        """
        c = self.config
        steps, cfg_scale = c.steps if steps is None else steps, c.cfg_scale if cfg_scale is None else cfg_scale
        t_start, solver = c.t_start if t_start is None else t_start, c.solver if solver is None else solver
        check_edit_settings(steps, cfg_scale, t_start, solver)
        if c.trained_t_start is not None and abs(t_start - c.trained_t_start) > 1e-6:
            warnings.warn(f"this editor was trained to start at t_start {c.trained_t_start:g}; t_start {t_start:g} is outside "
                          "what it has seen", stacklevel=2)
        instruction = check_instruction(instruction)
        if keep == REGION and region is None:
            raise InputError("keep 'region' needs the region")
        if region is not None and np.shape(region) != samples.shape:
            raise InputError(f"the region has {np.size(region)} samples, the clip {samples.size}")
        wanted = set(methods) | ({keep} if isinstance(keep, str) and keep != REGION else set())
        for method in wanted:
            check_method(method)
        start = time.perf_counter()
        windows, starts = windowing.split_windows(samples, self.window_samples, self.overlap_samples)
        x_source = self.codec.encode(torch.from_numpy(windows))
        cond, uncond = self.encode_instruction(instruction, len(windows))
        noise = torch.randn(x_source.shape, generator=torch.Generator().manual_seed(seed))
        run = SampledClip(samples, instruction, starts, x_source)
        run.tokens = token_strings(self.text_encoder, instruction, int(cond[1][0].sum()))
        given = {}
        if region is not None:
            region_windows, _ = windowing.split_windows(np.asarray(region, np.float32), self.window_samples, self.overlap_samples)
            given[REGION] = region_mask(region_windows, x_source.shape[2], self.config.mask_options())
        evidence = MaskEvidence(x_source.shape[1]) if wanted & {"learned", "localiser", "diffedit"} else None
        if "localiser" in wanted:
            if self.localiser is None:
                raise InputError(NO_LOCALISER)
            evidence.localised = self.localise(x_source, instruction, cond)
        recorder = AttentionRecorder(self.unet) if attention or "attention" in wanted else contextlib.nullcontext()
        estimate = lambda method: self._estimate(method, run, evidence, recorder)  # noqa: E731
        if "localiser" in wanted:  # known before the first step: estimated once, not after every step
            given["localiser"] = estimate("localiser")
        if isinstance(keep, torch.Tensor):
            keep_mask = lambda: keep  # noqa: E731
        elif keep in given:
            keep_mask = lambda: given[keep]  # noqa: E731
        else:
            keep_mask = (lambda: estimate(keep)) if keep else None
        localiser_alone = wanted == {"localiser"} and (keep is None or isinstance(keep, str)) and region is None and not attention
        if network and skip_unmarked and localiser_alone:
            network = bool(given["localiser"].any())
        if not network:
            if wanted - {"localiser", "none"}:
                raise InputError(f"mask {sorted(wanted - {'localiser', 'none'})[0]!r} is read from the network's sampling")
            run.x_edited, run.nfe = x_source, 0
        else:
            with recorder, reporting_progress(self.unet, progress, network_evaluations(c.objective, steps, solver)):
                run.x_edited, run.nfe = self.sample(
                    x_source, noise, cond, uncond, steps, cfg_scale, t_start, solver,
                    evidence=evidence, both_branches="diffedit" in wanted, keep_mask=keep_mask,
                )
            if isinstance(recorder, AttentionRecorder):
                run.attention = self._cond_attention(recorder, run)
        run.masks = {method: estimate(method) for method in wanted if method not in given} | given
        run.seconds = time.perf_counter() - start
        return run

    def localise(self, x_source: torch.Tensor, instruction: str, cond) -> torch.Tensor:
        """(windows, frames) edit probability of the localiser; ``cond``: the instruction's encoded states."""
        query = removal_instruction(instruction) if self.config.localiser_query == "removed" else None
        if query is not None:  # only the query: the localiser never reads the null instruction
            cond = self.encode_texts([query], len(x_source))[0]
        return torch.sigmoid(self.localiser(x_source, cond[0], cond[1]).float())

    @torch.no_grad()
    def removal_gains(self, run: "SampledClip") -> np.ndarray:
        """(cells' bins, clip frames) the remover's gains: how much of the source each latent cell keeps
        once the named sound is out; a replace is asked as the removal of its old sound."""
        query = removal_instruction(run.instruction) or run.instruction
        states, mask = self.encode_texts([query], len(run.x_source))[0]
        return self.clip_frames(removal.gains(self.remover(run.x_source, states, mask)), run)  # (windows, bins, frames) before joining

    def _estimate(self, method: str, run: "SampledClip", evidence, recorder) -> torch.Tensor:
        attention = self._cond_attention(recorder, run) if method == "attention" else None
        return estimated_mask(method, evidence, self.config.mask_options(), attention, run.tokens, like=run.x_source,
                              task=run.task)

    @staticmethod
    def _cond_attention(recorder, run: "SampledClip") -> torch.Tensor:
        """(windows, valid tokens, frames): the conditional rows of the recorded attention (CFG batches are cond..., uncond...)."""
        return recorder.token_frame_map()[: run.x_source.shape[0], : len(run.tokens)]

    def default_removal(self, marked_region: bool) -> str:
        """The config's removal for an edit: ``region_removal`` inside a region the user marks, else ``removal``."""
        return self.config.region_removal if marked_region else self.config.removal

    def by_gains(self, task: str | None, composite: str, removal: str | None = None) -> bool:
        """Whether the remover's gains make this edit (a remove or replace, spectral compositing, ``removal``
        "gains"; default the config's ``removal``)."""
        removal = self.config.removal if removal is None else removal
        return removal == "gains" and spectral(composite) and task in ("remove", "replace")

    def removes_by_gains(self, instruction: str, mask: str, composite: str, removal: str | None = None) -> bool:
        """Whether this edit is a remove made by the remover's gains alone: no network sampling, no decoding."""
        task = instruction_task(instruction)
        return task == "remove" and mask in ("localiser", "none", REGION) and self.by_gains(task, composite, removal)

    @torch.no_grad()
    def finish(self, run: "SampledClip", mask: torch.Tensor, composite: str, removal: str | None = None) -> np.ndarray:
        """Composite (``end`` on latents, ``audio`` on waveforms), decode, and join the windows;
        a remove or replace by the remover's gains when ``removal`` (default: the config's) is "gains"."""
        sample_mask = None
        if in_audio(composite):
            sample_mask = frames_to_samples(self.clip_frames(mask, run), self.codec.samples_per_latent_frame, run.samples.size)
        # Composited on waveforms, an edit the mask lets in nowhere is the source (or its removal by
        # gains) whatever the network made: the source stands in for the decoded edit, which is never read.
        unmarked = sample_mask is not None and not sample_mask.any()
        if self.by_gains(run.task, composite, removal):
            gains = self.removal_gains(run)
            # a remove keeps nothing of the network's content, so nothing is decoded
            out = run.samples if run.task == "remove" or unmarked else self.decoded(run, mask, composite)
            whole = np.ones_like(sample_mask) if self.config.removal_region == "clip" else None
            return blend_removal(out, run.samples, sample_mask, gains, run.task, self.config.room_tone_quantile,
                                 self.config.spectral_level, self.config.room_tone_seconds, whole, self.codec.samples_per_latent_frame)
        out = run.samples if unmarked else self.decoded(run, mask, composite)
        if in_audio(composite):
            if spectral(composite):
                return blend_spectral(out, run.samples, sample_mask, spectral_rule(run.task), self.config.room_tone_quantile,
                                      self.config.spectral_level, self.config.room_tone_seconds)
            out = blend_audio(out, run.samples, sample_mask)
        return out

    def decoded(self, run: "SampledClip", mask: torch.Tensor, composite: str) -> np.ndarray:
        """(samples,) the edited latents (blended with the source's on latents for ``end``) decoded and joined."""
        x = blend(run.x_edited, run.x_source, mask) if latent_end(composite) else run.x_edited
        edited = self.codec.decode(x, self.window_samples).float().numpy()
        return windowing.overlap_add(edited, run.starts, run.samples.size).astype(np.float32)

    def encode_instruction(self, instruction: str, copies: int):
        """(cond, uncond) text states and masks, repeated for ``copies`` windows."""
        return tuple(self.encode_texts([instruction, NULL_INSTRUCTION], copies))

    def encode_texts(self, texts: Sequence[str], copies: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(states, mask) of each text, encoded in one batch, each repeated for ``copies`` windows."""
        states, mask = self.text_encoder.encode(list(texts))
        mask = torch.ones(states.shape[:2], dtype=torch.long) if mask is None else mask
        repeat = lambda x: x.expand(copies, *x.shape[1:])  # noqa: E731 - a view, no copy
        return [(repeat(states[k : k + 1]), repeat(mask[k : k + 1])) for k in range(len(texts))]

    def sample(self, x_source, noise, cond, uncond, steps, cfg_scale, t_start, solver,
               evidence=None, both_branches=False, keep_mask=None) -> tuple[torch.Tensor, int]:
        """The edited latent and the number of network evaluations."""
        if self.config.objective == "ddpm":
            return ddpm_edit(self.unet, x_source, noise, cond, uncond, steps, cfg_scale, evidence, both_branches)
        return flow_edit(self.unet, x_source, noise, cond, uncond, steps, cfg_scale, t_start, solver, self.config.sigma_min,
                         evidence, both_branches, keep_mask)

    def clip_frames(self, maps: torch.Tensor | np.ndarray, run: "SampledClip") -> np.ndarray:
        """Per-window maps (windows, ..., frames) joined over the whole clip: (..., clip frames), cross-faded like audio.

        A (windows, 1, frames, 1) mask becomes (clip frames,).
        """
        maps = torch.as_tensor(maps)
        if maps.ndim == 4:  # the mask format
            maps = maps[:, 0, :, 0]
        maps = maps.float().numpy()
        per_frame = self.codec.samples_per_latent_frame
        total_frames = max(1, -(-run.samples.size // per_frame))
        starts = run.starts
        # Sample starts need not fall on frames; the last window must still end on the last frame.
        frame_starts = [round(s / per_frame) for s in starts[:-1]] + [max(total_frames - maps.shape[-1], 0)]
        return windowing.overlap_add(maps, frame_starts, total_frames)


@dataclass
class SampledClip:
    """One sampling run over a clip's windows, before decoding."""

    samples: np.ndarray  # the source audio
    instruction: str
    starts: list[int]  # window starts in samples
    x_source: torch.Tensor  # (windows, C, frames, F)
    x_edited: torch.Tensor | None = None
    nfe: int = 0
    seconds: float = 0.0  # encoding + sampling + mask estimation
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (windows, 1, frames, 1)
    attention: torch.Tensor | None = None  # (windows, tokens, frames), conditional branch
    tokens: list[str] = field(default_factory=list)

    @property
    def task(self) -> str | None:
        """"add", "remove", "replace" or None, read from the instruction (mask and compositing rules use it)."""
        return instruction_task(self.instruction)


def token_strings(text_encoder, instruction: str, count: int) -> list[str]:
    """Labels for the instruction's ``count`` tokens: the tokenizer's pieces when the encoder has one."""
    tokenizer = getattr(text_encoder, "tokenizer", None)
    if tokenizer is not None:
        labels = tokenizer.convert_ids_to_tokens(tokenizer(instruction)["input_ids"])
    else:
        labels = list(getattr(text_encoder, "last_tokens", None) or [[]])[0]
    labels = list(labels)[:count]
    return labels if len(labels) == count else [f"token {i}" for i in range(count)]


def check_instruction(instruction: str) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError("the instruction is empty; say what to change, e.g. \"Add a dog barking\"")
    return " ".join(instruction.split())


def audio_samples(audio: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A file's or an array's 16 kHz mono samples, checked: InputError for what cannot be edited."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise InputError(f"audio must be non-empty 16 kHz mono samples (samples,), got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise InputError("the audio contains NaN or infinite samples")
    return samples


# -- the demo `make demo` runs ------------------------------------------------------------
DEMO_EDITS = (
    ("add", "Add a dog barking"),
    ("remove", "Remove the bell"),
    ("replace", "Replace the birds with rain"),
)


def clip_edits(clip: Path, default: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The clip's own ``<stem>.edits.json`` ([[task, instruction], ...]) or ``default``: a
    remove or replace instruction must name a sound the clip holds."""
    import json

    sidecar = clip.with_suffix(".edits.json")
    if not sidecar.is_file():
        return list(default)
    try:
        pairs = [(str(task), str(instruction)) for task, instruction in json.loads(sidecar.read_text())]
    except (ValueError, TypeError) as error:
        raise InputError(f"{sidecar}: expected [[task, instruction], ...] ({error})") from None
    return pairs


def run_edit_demo(
    out_dir: str | os.PathLike,
    examples_dir: str | os.PathLike | None = None,
    editor: Editor | None = None,
    edits: Sequence[tuple[str, str]] = DEMO_EDITS,
) -> list[str]:
    """Edit every bundled example with one add, one remove and one replace; return summary lines
    (each says when its mask marked no frame, so that the clip came back as it was).

    Writes ``<clip>_<task>.wav`` and ``<clip>_<task>.png`` (source and edited log-mel) per edit.
    """
    from foleyflow.audio.io import write_audio
    from foleyflow.audio.mel import log_mel
    from foleyflow.demo import AUDIO_SUFFIXES, default_examples_dir
    from foleyflow.plotting import save_spectrograms_png

    examples_dir = Path(examples_dir) if examples_dir is not None else default_examples_dir()
    clips = sorted(p for p in examples_dir.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if examples_dir.is_dir() else []
    if not clips:
        raise InputError(f"{examples_dir}: no example audio found (pass --examples DIR)")
    editor = editor or Editor.from_pretrained("default")
    out_dir = Path(out_dir)
    lines = []
    for clip in clips:
        source = load_audio(clip)
        source_mel = log_mel(source)[0].numpy()
        for task, instruction in clip_edits(clip, edits):
            result = editor.edit(source, instruction)
            wav = write_audio(out_dir / f"{clip.stem}_{task}.wav", result.audio)
            png = save_spectrograms_png(
                out_dir / f"{clip.stem}_{task}.png",
                [(f"before: {clip.name}", source_mel), (f"after: {instruction}", log_mel(result.audio)[0].numpy())],
            )
            unchanged = f"; unchanged: the {result.mask_method} mask marked no frame" if result.untouched else ""
            lines.append(
                f"{clip.name}: {instruction!r} -> {wav} ({result.seconds:.2f} s, {result.nfe} NFE,"
                f" {result.elapsed_s:.2f} s per edit{unchanged}) + {png.name}"
            )
    return lines

