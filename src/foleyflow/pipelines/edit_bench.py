"""The editing benchmark on held-out triplets with ground truth (``foleyflow bench edit``).

For every triplet (source, true target, instruction, task) and every method (the plain editor
at each t_start, the ddpm baseline at the same NFE, and each edit-mask method x compositing
mode with the oracle mask beside it, issue 9) we measure the log-mel L1 distance to the true
target of:
    identity  the source through the codec (no edit at all),
    floor     the true target through the codec (the best the codec allows),
    method    the edited output.
Per task type: fraction of the gap closed = (identity - method) / (identity - floor), from the
means (1 = as good as the codec allows, 0 = no better than not editing, < 0 = worse), with a
95% paired bootstrap interval over triplets; time per edit, NFE (the most any edit of the row
ran: an edit the localiser marks nothing of runs none, ``Editor.sample_clip(skip_unmarked=True)``),
the time of one network forward, and overhead = time per edit / (mean NFE x forward).

"add" is scored against the best-aligned target: the onset of an added event cannot be
inferred from the source, so the true event is re-placed on a 0.1 s grid and the output is
compared with the nearest such target (identity with the same one). "replace" has the same
freedom for its new event (the data set draws B's onset independently of A's, so nothing in
the source or the instruction says where B goes): by default (``replace_onset="aligned"``) the
target is the scene without the replaced event plus the new event on that grid; ``"true"``
keeps the data set's own target (the scoring before session 15).

With ``ceiling``, each mask row compositing at the end (``end``, ``audio``) gets a twin whose
content is the true target's latent instead of the UNet's: what a perfect editor would score
with that mask, that compositing and this codec. It separates the three limits of an edit:
the content (method row vs its ceiling), the mask (a method's ceiling vs the oracle's) and the
codec (the oracle's ceiling vs no edit).
"""

from __future__ import annotations

import copy
import dataclasses
import time
import zlib
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from dataclasses import replace as replace_options

from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.audio.mel import log_mel
from foleyflow.data.recipes import TASKS
from foleyflow.errors import InputError
from foleyflow.pipelines import windowing
from foleyflow.pipelines.compositing import blend, check_mode, every_step, unmarked_is_source
from foleyflow.pipelines.editor import Editor, check_removal
from foleyflow.pipelines.masks import REGION, BENCH_METHODS, check_method, finish_mask, frame_iou, full_mask, ground_truth_latent_mask

ALIGNABLE_TASKS = ("add", "replace")  # tasks whose target gains an event the source cannot place
REPLACE_ONSETS = ("aligned", "true")  # how "replace" is scored: its new event's onset free, or the data set's
MASKED_COMPOSITES = ("end", "every-step", "audio", "every-step+audio", "spectral", "every-step+spectral")
ADD_GRID_SECONDS = 0.1
ALIGNED_SCORING = f"best-aligned target (new event's onset on a {ADD_GRID_SECONDS:g} s grid)"


def log_mel_l1(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the AudioLDM log-mels (frames of the shorter clip)."""
    return _l1(_mel(audio), _mel(reference))


def _mel(audio: np.ndarray) -> torch.Tensor:
    """(batch, frames, mels) log-mel of (samples,) or (batch, samples) audio."""
    return log_mel(np.asarray(audio, np.float32))


def _l1(a: torch.Tensor, b: torch.Tensor) -> float:
    frames = min(a.shape[1], b.shape[1])
    return float(torch.mean(torch.abs(a[:, :frames] - b[:, :frames])))


def gap_closed(identity: np.ndarray, floor: np.ndarray, edited: np.ndarray) -> float:
    """(identity - edited) / (identity - floor) on the means."""
    gap = float(np.mean(identity) - np.mean(floor))
    return float("nan") if gap <= 0 else (float(np.mean(identity)) - float(np.mean(edited))) / gap


def test_triplets(split: str = "test", count: int = 300, seed: int = 0, root: str | None = None,
                  tasks: Sequence[str] = TASKS, replace_onset: str = "aligned",
                  perfect_sampler: bool = False) -> list[Mapping[str, Any]]:
    """``count`` triplets of the editing set's ``split`` (default folder, or ``root``), balanced over
    ``tasks`` (default add/remove/replace), seeded. A task's triplets depend on the seed and the
    per-task count only, not on which other tasks are chosen, so runs over a subset pair with a
    full run of the same per-task count.

    "add" items also carry the added event alone (``event_audio``, placed at onset 0) and its
    ``event_onset``, so that the add target can be re-rendered with the event elsewhere;
    "replace" items do too when ``replace_onset`` is "aligned", with the scene lacking both
    events (``base_audio``: the target is ``base_audio`` + the new event).

    ``perfect_sampler``: "add" and "replace" items also carry ``perfect_sampler_audio``, the target
    with its new event drawn from another clip of the class (``another_clip_of_class``): the
    reference row of a sampler that gets everything right but the one recording the target holds.
    """
    from foleyflow.data.datasets import TripletDataset
    from foleyflow.data.manifest import read_clips

    if replace_onset not in REPLACE_ONSETS:
        raise InputError(f"replace_onset must be one of {', '.join(REPLACE_ONSETS)}, got {replace_onset!r}")
    for task in tasks:
        if task not in TASKS:
            raise InputError(f"tasks must be among {', '.join(TASKS)}, got {task!r}")
    per_task = count // len(tasks)
    rng = np.random.default_rng(seed)
    chosen, clips = [], None
    for task in TASKS:
        dataset = TripletDataset(split, root=root, tasks=(task,))
        order = rng.permutation(len(dataset))  # drawn for every task, so each task's draw stays the same
        if task not in tasks:
            continue
        if len(dataset) < per_task:
            raise InputError(f"the {split} split has {len(dataset)} {task} triplets; {per_task} requested")
        for index in order[:per_task]:
            item = dataset[int(index)]
            if task == "add" or (task == "replace" and replace_onset == "aligned"):
                item["event_audio"], item["event_onset"] = added_event(dataset, int(index))
                if task == "replace":  # an add's base is its source
                    item["base_audio"] = dataset.render(item["scene_id"], "X")
            if perfect_sampler and task in ALIGNABLE_TASKS:
                clips = clips or read_clips(dataset.corpus_dir)
                audio = perfect_sampler_output(dataset, int(index), clips, seed)
                if audio is not None:
                    item["perfect_sampler_audio"] = audio
            chosen.append(item)
    return chosen


def perfect_sampler_output(dataset, index: int, clips, seed: int = 0) -> np.ndarray | None:
    """Triplet ``index``'s target with its new event drawn from another of the corpus ``clips`` of
    its class, at the same onset and level rule (``another_clip_of_class``; the draw seeded by the
    triplet's id); None when the class has no other clip."""
    from foleyflow.data.builder import another_clip_of_class
    from foleyflow.data.recipes import placed

    triplet = dataset.triplets[index]
    scene = dataset.scenes[triplet["scene_id"]]
    rng = np.random.default_rng(triplet_seed(seed, triplet["triplet_id"]))
    x = dataset.render(triplet["scene_id"], "X")  # the level rule's reference, and the base the event joins
    part = another_clip_of_class(scene, triplet["target"][1], x, clips, dataset.bank, rng, dataset.event_seconds)
    return None if part is None else x + placed(part, dataset.bank)


def added_event(dataset, index: int) -> tuple[np.ndarray, int]:
    """The event a triplet's target gains (an add's event, a replace's new one), rendered alone at
    onset 0 (frame length), and its true onset.

    Rendering adds parts in order in float32 and the added event comes last, so
    ``base + shifted(event, onset)`` *is* the scene's recipe re-rendered with the event at
    ``onset`` (the frame cuts what runs past its end, as rendering does), where the base is the
    source for an add and the scene's bare mix "X" for a replace.
    """
    from dataclasses import replace

    from foleyflow.data.recipes import placed

    triplet = dataset.triplets[index]
    part = dataset.scenes[triplet["scene_id"]].events[triplet["target"][1]]["part"]  # target mix "XA" -> event "A"
    return placed(replace(part, onset=0), dataset.bank), int(part.onset)


def shifted(event_at_zero: np.ndarray, onset: int, length: int) -> np.ndarray:
    """The event starting at ``onset`` in a frame of ``length`` samples."""
    out = np.zeros(length, dtype=np.float32)
    out[onset:] = event_at_zero[: length - onset]
    return out


def add_onsets(true_onset: int, length: int, grid_samples: int, event_samples: int = 0) -> np.ndarray:
    """Candidate onsets: the 0.1 s grid through the true onset, with the whole event inside the
    frame (or no later than the true onset): an onset that pushes the event out of the clip
    would make "the aligned target" the source itself and reward not editing."""
    first = true_onset % grid_samples
    last = max(true_onset, length - event_samples)
    return np.arange(first, last + 1, grid_samples)


def audible_length(event_at_zero: np.ndarray) -> int:
    """Samples up to the event's last non-zero sample."""
    nonzero = np.flatnonzero(event_at_zero)
    return int(nonzero[-1]) + 1 if nonzero.size else 0


class ItemScorer:
    """Log-mel L1 of outputs to one triplet's target, with the identity and floor beside it.

    For items that carry the event their target gains (every "add"; "replace" scored with its
    new event's onset free), every output is scored against the best-aligned target: the true
    event placed at the onset (on a 0.1 s grid through the true onset) whose target is nearest
    the output; identity is then measured against that same target. The
    floor stays the true target's codec round trip: the codec's error does not depend on where
    the event sits (to first order), and a round trip per chosen onset would cost as much as
    the edits.
    """

    def __init__(self, editor: Editor, item: Mapping[str, Any], grid_seconds: float = ADD_GRID_SECONDS) -> None:
        self.editor = editor
        self.source = np.asarray(item["source"], np.float32)
        self.target = np.asarray(item["target"], np.float32)
        self.x_source, self.x_target = (self._encode_windows(audio) for audio in (self.source, self.target))
        self.identity_mel = _mel(self._decode_windows(self.x_source))
        self.target_mel = _mel(self.target)
        self.identity_l1 = _l1(self.identity_mel, self.target_mel)
        self.floor_l1 = _l1(_mel(self._decode_windows(self.x_target)), self.target_mel)
        # (samples,) bool: the edited event's spans, what the oracle refines and a region row marks
        self.span = edit_span_samples(item, self.source, self.target)
        self._truth: torch.Tensor | None = None  # truth_mask's, for this item
        self._oracle: torch.Tensor | None = None  # oracle_mask's
        self.aligned = item["task"] in ALIGNABLE_TASKS and "event_audio" in item
        if self.aligned:
            self.true_onset = int(item["event_onset"])
            event = np.asarray(item["event_audio"], np.float32)
            base = np.asarray(item.get("base_audio", self.source), np.float32)
            self.onsets = add_onsets(self.true_onset, self.source.size, round(grid_seconds * SAMPLE_RATE), audible_length(event))
            self.candidates = np.stack([base + shifted(event, int(o), self.source.size) for o in self.onsets])
            self.candidate_mels = _mel(self.candidates)

    def score(self, audio: np.ndarray) -> tuple[float, float, float, int]:
        """(method L1, identity L1, floor L1, onset shift in samples) against the (aligned) target."""
        return self._score(_mel(audio))

    def score_and_true_target(self, audio: np.ndarray) -> tuple[tuple[float, float, float, int], float]:
        """``score``, and the L1 to the data set's own target whatever the alignment, from one log-mel of ``audio``."""
        out = _mel(audio)
        return self._score(out), _l1(out, self.target_mel)

    def _score(self, out: torch.Tensor) -> tuple[float, float, float, int]:
        if not self.aligned:
            return _l1(out, self.target_mel), self.identity_l1, self.floor_l1, 0
        frames = min(out.shape[1], self.candidate_mels.shape[1])
        distances = torch.mean(torch.abs(self.candidate_mels[:, :frames] - out[:, :frames]), dim=(1, 2))
        best = int(torch.argmin(distances))
        identity = _l1(self.identity_mel, self.candidate_mels[best : best + 1])
        return float(distances[best]), identity, self.floor_l1, int(self.onsets[best]) - self.true_onset

    def truth_mask(self) -> torch.Tensor:
        """(windows, 1, frames, 1): the latent frames the edit really changes (``ground_truth_latent_mask``),
        computed once per item: the oracle and every row's region move ask for it."""
        if self._truth is None:
            span_windows, _ = windowing.split_windows(self.span.astype(np.float32), self.editor.window_samples, self.editor.overlap_samples)
            self._truth = ground_truth_latent_mask(torch.from_numpy(span_windows) > 0.5, self.x_target, self.x_source)
        return self._truth

    def oracle_mask(self) -> torch.Tensor:
        """The ground-truth mask per window, shaped (dilation, soft edges) exactly like the estimated
        ones; computed once per item (the oracle rows and every row's mask IoU ask for it)."""
        if self._oracle is None:
            options = replace_options(self.editor.config.mask_options(), smooth=1)
            self._oracle = finish_mask(self.truth_mask()[:, 0, :, 0], 0.5, options, normalise=False)
        return self._oracle

    def region_move(self, item: Mapping[str, Any], x_edited: torch.Tensor) -> float:
        """Inside the true edit region, the edited latent's distance to the target latent over the
        source latent's (``region_move``); NaN for "add" (the onset is free, see the module) or
        when the edit changes no latent frame."""
        if item["task"] == "add":
            return float("nan")
        return region_move(x_edited, self.x_source, self.x_target, self.truth_mask())

    def mask_iou(self, item: Mapping[str, Any], mask: torch.Tensor) -> float:
        """Frames where ``mask`` >= 0.5 against the same for the oracle mask (shaped alike: dilation and
        soft edges), intersection over union; NaN for "add", whose onset is the editor's choice."""
        if item["task"] == "add":
            return float("nan")
        return mask_iou(mask, self.oracle_mask())

    def _encode_windows(self, audio: np.ndarray) -> torch.Tensor:
        windows, _ = windowing.split_windows(audio, self.editor.window_samples, self.editor.overlap_samples)
        return self.editor.codec.encode(torch.from_numpy(windows))

    def _decode_windows(self, latents: torch.Tensor) -> np.ndarray:
        _, starts = windowing.split_windows(self.target, self.editor.window_samples, self.editor.overlap_samples)
        decoded = self.editor.codec.decode(latents, self.editor.window_samples).float().numpy()
        return windowing.overlap_add(decoded, starts, self.target.size).astype(np.float32)


def region_move(x_edited: torch.Tensor, x_source: torch.Tensor, x_target: torch.Tensor, region: torch.Tensor) -> float:
    """sum |x_edited - x_target| / sum |x_source - x_target| over ``region`` (broadcast over channels
    and frequency): 1 = the edit left the region as far from the target as the source is (no edit,
    or moves that help as much as they hurt), 0 = the target exactly, > 1 = further away.

    Latents, not audio: the codec's error is out of it, so it says whether the *model* edits
    where the edit is, which the audio rows cannot tell apart from compositing and decoding.
    """
    weights = region.expand_as(x_target)
    reference = float((torch.abs(x_source - x_target) * weights).sum())
    if reference <= 0:
        return float("nan")
    return float((torch.abs(x_edited - x_target) * weights).sum()) / reference


def mask_iou(mask: torch.Tensor, reference: torch.Tensor) -> float:
    """Intersection over union of the frames where each mask is >= 0.5 (1 when both are empty)."""
    return float(frame_iou(mask.flatten()[None] >= 0.5, reference.flatten()[None] >= 0.5)[0])


def edit_span_samples(item: Mapping[str, Any], source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(samples,) bool: the edited event's spans when the item has them, else where target and source differ."""
    if "edit_spans" in item:
        span = np.zeros(source.size, dtype=bool)
        for start, end in item["edit_spans"]:
            span[max(0, int(start)) : max(0, int(end))] = True
        return span
    return np.abs(target - source) > 1e-7


def forward_seconds(editor: Editor, repeats: int = 3) -> float:
    """Median time of one UNet forward on one model window (batch 1, conditional branch only)."""
    x = editor.codec.encode(torch.zeros(1, editor.window_samples))
    states, mask = editor.text_encoder.encode(["Add a dog barking"])
    sample = torch.cat([x, x], dim=1)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            editor.unet(sample, torch.tensor([500.0]), encoder_hidden_states=states, encoder_attention_mask=mask)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def default_methods(editor: Editor) -> list[str]:
    """Every mask method the editor can run, the plain recipe, and the oracle."""
    runnable = {"learned": editor.config.mask_head, "localiser": editor.localiser is not None}
    return [m for m in BENCH_METHODS if runnable.get(m, True)]


SOURCE_ITSELF = "no edit (the source itself, no codec)"
PERFECT_SAMPLER = "another clip of the class (perfect sampler)"
# A mask letting the edit change less than this share of the clip's frames counts as empty:
# the row then returns (about) the source.
EMPTY_MASK_SHARE = 0.005


PRESENCE_KEYS = ("presence_old", "presence_new")  # the removed (replaced) class's, the added (new) class's
# A row's figures per item, keyed by the suffix of their name in the scores ("" is the L1 itself).
ROW_FIGURES = ("", "identity", "floor", "shift", "seconds", "nfe", "mask", "region", "iou")


def presence_changes(presence, item: Mapping[str, Any]):
    """A function of an output: its (old class, new class) presence minus the source's
    (``evaluation.presence``), NaN where the task has no such class; None without a tagger or labels."""
    from foleyflow.evaluation.presence import edited_classes

    classes = edited_classes(item)
    if presence is None or classes == (None, None):
        return None
    before = presence(item["source"], classes)
    return lambda audio: [after - was for after, was in zip(presence(audio, classes), before)]


def triplet_seed(seed: int, triplet_id: str) -> int:
    """The noise seed of one triplet's edits: a function of the run's seed and the triplet's id
    only. Why not the triplet's place in the run: a run over one task (or a subset) then draws the
    same noise for a triplet as a full run does, so their per-triplet rows pair noise for noise."""
    return zlib.crc32(f"{seed}:{triplet_id}".encode())


@torch.no_grad()
def run_edit_bench(
    model,
    triplets: Iterable[Mapping[str, Any]],
    baseline=None,
    steps: int | None = None,
    t_starts: Sequence[float] = (0.0, 0.01, 0.1),
    seed: int = 0,
    resamples: int = 200,
    methods: Sequence[str] | None = ("none",),
    composites: Sequence[str] = MASKED_COMPOSITES,
    progress: bool = False,
    ceiling: bool = False,
    per_triplet: bool = False,
    presence=None,
    cfg_scale: float | None = None,
    removal: str | None = None,
) -> dict[str, Any]:
    """Rows: the plain recipe at each t_start ("none"), the ddpm baseline, and each mask method x
    compositing mode with the oracle beside them (``RowPlan``). ``methods=None``: every method
    the editor can run (``default_methods``); ``ceiling``: the target-latent twins (module doc);
    ``per_triplet``: each row's L1 triplet by triplet too, with the triplets' ids, so that two
    runs on the same triplets (same split, per-task count and seed) can be paired; each triplet
    draws its noise from its id (``triplet_seed``), whatever else the run holds. Items that carry
    ``perfect_sampler_audio`` (``test_triplets(perfect_sampler=True)``) get that reference row;
    ``presence`` (an ``evaluation.presence.ClassPresence``) adds each row's change in the edited
    classes' presence from the source, with the true target's beside it. ``cfg_scale`` guides
    every editor of the run (the model and the baseline) at that scale instead of its own;
    ``removal`` ("unet" | "gains") removes that way on every row, a marked region's included,
    instead of the model's ``removal`` and ``region_removal``."""
    editor = with_removal(with_guidance(_load(model), cfg_scale), removal)
    methods = default_methods(editor) if methods is None else list(methods)
    triplets = list(triplets)
    plan = RowPlan(editor, with_guidance(_load(baseline), cfg_scale) if baseline is not None else None, steps or editor.config.steps,
                   list(t_starts), methods, list(composites), seed, ceiling,
                   perfect_sampler=any("perfect_sampler_audio" in item for item in triplets))
    scores: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    aligned: set[str] = set()  # tasks scored against a best-aligned target
    for index, item in enumerate(tqdm(triplets, disable=not progress, desc="bench edit", unit="triplet")):
        scorer = ItemScorer(editor, item)
        if scorer.aligned:
            aligned.add(item["task"])
        rows = scores[item["task"]]
        triplet_id = item.get("triplet_id", str(index))
        rows["triplet_id"].append(triplet_id)
        rows["identity"].append(scorer.identity_l1)
        rows["floor"].append(scorer.floor_l1)
        changes = presence_changes(presence, item)
        if changes is not None:
            for key, value in zip(PRESENCE_KEYS, changes(item["target"])):
                rows[f"target:{key}"].append(value)
        # Returning the input untouched is the honest "no edit" for methods that keep the
        # source's own audio outside the mask (composite "audio"): it pays no codec error.
        unedited = (SOURCE_ITSELF, np.asarray(item["source"], np.float32), 0.0, 0, 0.0, scorer.region_move(item, scorer.x_source), float("nan"))
        for name, audio, seconds, nfe, mask_share, moved, iou in [unedited, *plan.rows(item, scorer, triplet_seed(plan.seed, triplet_id))]:
            figures = dict.fromkeys(ROW_FIGURES, float("nan"))  # a reference this item lacks keeps its place, empty
            if audio is not None:
                (l1, identity, floor, shift), true_l1 = scorer.score_and_true_target(audio)
                figures = dict(zip(ROW_FIGURES, (l1, identity, floor, abs(shift), seconds, nfe, mask_share, moved, iou)))
                if changes is not None and name != SOURCE_ITSELF:
                    figures |= dict(zip(PRESENCE_KEYS, changes(audio)))
            elif changes is not None:
                figures |= dict.fromkeys(PRESENCE_KEYS, float("nan"))
            if scorer.aligned:  # beside it, the data set's own target: what the alignment changes
                figures["true_target"] = true_l1 if audio is not None else float("nan")
            for suffix, value in figures.items():
                rows[f"{name}:{suffix}" if suffix else name].append(value)
    forwards = {name: plan.forward(name) for name in plan.names} | {SOURCE_ITSELF: float("nan"), PERFECT_SAMPLER: float("nan")}
    report = summarise(scores, [SOURCE_ITSELF, *plan.names], forwards, plan.steps, resamples, seed, per_triplet)
    for task in (t for t in ALIGNABLE_TASKS if t in scores):  # a task the run did not hold has no scoring
        report[f"{task}_scoring"] = ALIGNED_SCORING if task in aligned else "true target"
    report["t_start"] = editor.config.t_start
    report["cfg_scale"] = editor.config.cfg_scale
    if editor.remover is not None and any(task in scores for task in ("remove", "replace")):
        report["removal"] = editor.config.removal
        report["region_removal"] = editor.config.region_removal
    if REGION in methods:
        report["region_t_start"] = editor.config.region_t_start
    return report


class RowPlan:
    """Which rows to produce for each item, sharing sampling runs between rows.

    One run at the model's t_start records every estimated mask and gives the plain row at
    that t_start and every ``end`` and ``audio`` row (they differ only after sampling);
    every-step needs its mask while sampling, so it runs once per mask method (shared by
    ``every-step``, ``every-step+audio`` and ``every-step+spectral``). A row's time is its run's full time (encoding,
    sampling with all the recording that run does) plus its own compositing and decoding.
    """

    def __init__(self, editor, baseline, steps, t_starts, methods, composites, seed, ceiling: bool = False,
                 perfect_sampler: bool = False) -> None:
        for method in methods:
            check_method(method, BENCH_METHODS)
        for composite in composites:
            if check_mode(composite) == "none":
                raise InputError("composite 'none' is the plain recipe: select it with the mask method none")
        self.editor, self.baseline, self.steps, self.seed = editor, baseline, steps, seed
        self.masked = [m for m in methods if m != "none"]
        self.composites = composites if self.masked else []
        if "none" not in methods:
            t_starts = []
        elif not t_starts:  # the plain recipe at the model's own t_start
            t_starts = [editor.config.t_start]
        self.t_starts = t_starts
        self.names = [plain_name(t) for t in t_starts] + (["ddpm (same NFE)"] if baseline is not None else [])
        self.names += [f"{method} + {composite}" for composite in self.composites for method in self.masked]
        self.ceilings = [c for c in self.composites if not every_step(c)] if ceiling else []
        if ceiling and not self.ceilings:
            raise InputError("ceiling rows need a mask method and a compositing mode applied at the end (end or audio)")
        self.names += [ceiling_name(method, composite) for composite in self.ceilings for method in self.masked]
        self.perfect_sampler = perfect_sampler
        # Every mode keeps the source where the mask is 0, so a run the localiser marks nothing of need not sample.
        self.skip_unmarked = all(unmarked_is_source(c) for c in self.composites)
        self.names += [PERFECT_SAMPLER] if perfect_sampler else []

    def forward(self, name: str) -> float:
        if not hasattr(self, "_forwards"):
            self._forwards = {"editor": forward_seconds(self.editor), "baseline": forward_seconds(self.baseline) if self.baseline else 0.0}
        return self._forwards["baseline" if name.startswith("ddpm") else "editor"]

    def rows(self, item, scorer: ItemScorer, seed: int):
        """(row name, output audio, seconds, NFE, mask share, region move, mask IoU) for every row of one item.

        The region move is measured on the latent the row keeps: the edited latent blended into the
        source's with the row's mask (``end`` and ``audio`` keep the same region). The mask IoU
        (``ItemScorer.mask_iou``) is for mask rows only: a plain row's mask is the whole clip."""
        source, instruction = np.asarray(item["source"], np.float32), item["instruction"]
        sample = lambda editor, **kw: editor.sample_clip(source, instruction, self.steps, seed=seed, **kw)  # noqa: E731
        t_model, t_region = self.editor.config.t_start, self.editor.config.region_t_start
        estimated = [m for m in self.masked if m not in ("oracle", REGION)]
        # The region row marks the true event's span, as a user would with --region, and is
        # sampled as the editor samples a marked region (from its region_t_start).
        region = scorer.span if REGION in self.masked else None
        main = region_main = None
        at_end = any(not every_step(c) for c in self.composites)
        if t_model in self.t_starts or at_end:
            # Plain rows use the whole sampled latent and other masks' rows its inside, so only a run
            # for the localiser's rows alone may skip a sampling the localiser marks nothing of.
            skip = not self.t_starts and set(self.masked) == {"localiser"} and self.skip_unmarked
            main = sample(self.editor, t_start=t_model, methods=estimated, region=region if t_region == t_model else None,
                          skip_unmarked=skip)
            if "oracle" in self.masked:
                main.masks["oracle"] = scorer.oracle_mask()
        if region is not None and at_end:
            region_main = main if t_region == t_model else sample(self.editor, t_start=t_region, region=region)
        end_run = lambda method: region_main if method == REGION else main  # noqa: E731
        moved = lambda run, mask: scorer.region_move(item, blend(run.x_edited, run.x_source, mask))  # noqa: E731
        for t in self.t_starts:
            run = main if t == t_model else sample(self.editor, t_start=t)
            yield (plain_name(t), *finished(self.editor, run, full_mask(run.x_source), "none"), moved(run, full_mask(run.x_source)), float("nan"))
        if self.baseline is not None:  # its own codec's latents: not comparable with the scorer's
            run = sample(self.baseline)
            yield ("ddpm (same NFE)", *finished(self.baseline, run, full_mask(run.x_source), "none"), float("nan"), float("nan"))
        blended: dict[str, Any] = {}
        for composite in self.composites:
            for method in self.masked:
                if not every_step(composite):
                    run = end_run(method)
                else:
                    if method not in blended:
                        blended[method] = self._blended_run(sample, method, scorer, item, region)
                    run = blended[method]
                mask = run.masks[method]
                yield (f"{method} + {composite}", *finished(self.editor, run, mask, composite, self.removal(method)), moved(run, mask),
                       scorer.mask_iou(item, mask))
        if self.ceilings:
            perfect = dataclasses.replace(main, x_edited=scorer.x_target, seconds=0.0, nfe=0)
            for composite in self.ceilings:
                for method in self.masked:
                    mask = end_run(method).masks[method]
                    # the target's own content decoded and composited: what a perfect sampler's would score
                    yield (ceiling_name(method, composite), *finished(self.editor, perfect, mask, composite, "unet"), moved(perfect, mask),
                           scorer.mask_iou(item, mask))
        if self.perfect_sampler and item["task"] in ALIGNABLE_TASKS:  # the reference row, no model in it
            audio = item.get("perfect_sampler_audio")
            yield (PERFECT_SAMPLER, None if audio is None else np.asarray(audio, np.float32), 0.0, 0, float("nan"), float("nan"), float("nan"))


    def removal(self, method: str) -> str:
        """The editor's removal for a row: a marked region's (``region_removal``), or its default."""
        return self.editor.default_removal(method == REGION)

    def _blended_run(self, sample, method: str, scorer: ItemScorer, item, region):
        """An every-step run: an estimated mask is used as it accumulates, the region and the oracle as given.
        A remove made by removal gains alone (``Editor.removes_by_gains``) skips the sampling, as ``edit`` does."""
        given = method in ("oracle", REGION)
        network = not all(self.editor.removes_by_gains(item["instruction"], "none" if given else method, c, self.removal(method))
                          for c in self.composites)
        if method == REGION:
            return sample(self.editor, t_start=self.editor.config.region_t_start, keep=REGION, region=region, network=network)
        if method != "oracle":
            return sample(self.editor, t_start=self.editor.config.t_start, keep=method, network=network, skip_unmarked=self.skip_unmarked)
        oracle = scorer.oracle_mask()
        run = sample(self.editor, t_start=self.editor.config.t_start, keep=oracle, network=network)
        run.masks["oracle"] = oracle
        return run


def ceiling_name(method: str, composite: str) -> str:
    return f"{method} + {composite}, target latent (ceiling)"


def plain_name(t_start: float) -> str:
    return f"flow t_start={t_start:g}"


def finished(editor: Editor, run, mask: torch.Tensor, composite: str, removal: str | None = None) -> tuple[np.ndarray, float, int, float]:
    """The row's audio, seconds, NFE, and the share of the clip its mask lets the edit change."""
    start = time.perf_counter()
    audio = editor.finish(run, mask, composite, removal)
    seconds = run.seconds + time.perf_counter() - start
    return audio, seconds, run.nfe, float(np.mean(editor.clip_frames(mask, run)))


def compare_editors(
    editors: Mapping[str, tuple[Editor, Mapping[str, Any]]],
    triplets: Iterable[Mapping[str, Any]],
    seed: int = 0,
    resamples: int = 200,
    steps: int | str = "per method",
) -> dict[str, Any]:
    """Score each named (editor, ``Editor.edit`` options) on the same triplets and seeds; the first
    editor's codec gives the identity and floor rows."""
    reference = next(iter(editors.values()))[0]
    scores: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for index, item in enumerate(triplets):
        task, source, target = item["task"], np.asarray(item["source"], np.float32), np.asarray(item["target"], np.float32)
        rows = scores[task]
        scorer = ItemScorer(reference, {**item, "task": "compare"})  # the true target: no add alignment here
        rows["identity"].append(scorer.identity_l1)
        rows["floor"].append(scorer.floor_l1)
        for name, (editor, options) in editors.items():
            result = editor.edit(source, item["instruction"], seed=triplet_seed(seed, item.get("triplet_id", str(index))), **options)
            rows[name].append(log_mel_l1(result.audio, target))
            rows[f"{name}:seconds"].append(result.elapsed_s)
            rows[f"{name}:nfe"].append(result.nfe)
    forwards = {name: forward_seconds(editor) for name, (editor, _) in editors.items()}
    return summarise(scores, list(editors), forwards, steps, resamples, seed)


def summarise(scores, methods: list[str], forwards: Mapping[str, float], steps: int | str, resamples: int, seed: int,
              per_triplet: bool = False) -> dict[str, Any]:
    from foleyflow.evaluation.bootstrap import bootstrap_ci, mean_ci

    report: dict[str, Any] = {"steps": steps, "methods": methods, "tasks": {}}
    for task in TASKS:
        if task not in scores:
            continue
        ids = list(scores[task].get("triplet_id", []))
        rows = {key: np.asarray(values, np.float64) for key, values in scores[task].items() if key != "triplet_id"}
        identity, floor = rows["identity"], rows["floor"]
        entry = {
            "n": int(identity.size),
            "identity_l1": mean_ci(identity, resamples, seed).to_dict(),
            "floor_l1": mean_ci(floor, resamples, seed).to_dict(),
            "methods": {},
        }
        if per_triplet:
            entry["triplet_ids"] = ids
        for key in PRESENCE_KEYS:  # what the true edit does to the classes' presence: the scale of the rows'
            if (figure := _presence_figure(rows.get(f"target:{key}"), resamples, seed)) is not None:
                entry[f"target_{key}"] = figure
        for name in methods:
            if name not in rows:  # a row this task has none of (the perfect sampler for remove)
                continue
            have = np.isfinite(rows[name])  # a reference row may lack some items
            rows_here = {key: value[have] for key, value in rows.items() if value.shape == have.shape} if not have.all() else rows
            seconds = float(np.mean(rows_here[f"{name}:seconds"]))
            nfe = int(np.max(rows_here[f"{name}:nfe"]))
            mean_nfe = float(np.mean(rows_here[f"{name}:nfe"]))
            # "add" rows may be scored against a re-aligned target, with identity and floor to match.
            own_identity, own_floor = rows_here.get(f"{name}:identity", identity[have]), rows_here.get(f"{name}:floor", floor[have])
            entry["methods"][name] = {
                "l1": mean_ci(rows_here[name], resamples, seed).to_dict(),
                "gap_closed": bootstrap_ci(gap_closed, [own_identity, own_floor, rows_here[name]], paired=True, resamples=resamples, seed=seed).to_dict(),
                "mean_onset_shift_s": float(np.mean(rows_here.get(f"{name}:shift", [0]))) / SAMPLE_RATE,
                "seconds_per_edit": seconds,
                "nfe": nfe,
                "mean_nfe": mean_nfe,
                "forward_seconds": forwards[name],
                "overhead": seconds / (mean_nfe * forwards[name]) if nfe else float("nan"),
            }
            if not have.all():
                entry["methods"][name]["n"] = int(have.sum())
            if per_triplet:  # every triplet's place kept (NaN where a reference row has none), so runs pair
                entry["methods"][name]["per_triplet_l1"] = rows[name].tolist()
                if f"{name}:true_target" in rows:  # an aligned task's figure against the data set's own target
                    entry["methods"][name]["per_triplet_true_target_l1"] = rows[f"{name}:true_target"].tolist()
            if SOURCE_ITSELF in rows_here and name != SOURCE_ITSELF:
                # Paired, per triplet: does the method beat leaving the recording alone? (< 0: yes)
                entry["methods"][name]["vs_unedited"] = mean_ci(rows_here[name] - rows_here[SOURCE_ITSELF], resamples, seed).to_dict()
                true_target = f"{name}:true_target"
                if true_target in rows_here:  # the same, scored against the data set's target (JSON only)
                    entry["methods"][name]["vs_unedited_true_target"] = mean_ci(rows_here[true_target] - rows_here[f"{SOURCE_ITSELF}:true_target"], resamples, seed).to_dict()
            share = rows_here.get(f"{name}:mask", np.array([np.nan]))
            if np.isfinite(share).all():  # the edit's reach: mean mask share, and how often it is empty
                entry["methods"][name] |= {"mask_share": float(np.mean(share)), "empty_mask_fraction": float(np.mean(share < EMPTY_MASK_SHARE))}
            moved = rows_here.get(f"{name}:region", np.array([]))
            moved = moved[np.isfinite(moved)]
            if moved.size:  # latent distance to the target inside the true region, over the source's (1 = no edit)
                entry["methods"][name]["region_move"] = mean_ci(moved, resamples, seed).to_dict()
            iou = rows_here.get(f"{name}:iou", np.array([]))
            iou = iou[np.isfinite(iou)]
            if iou.size:  # how well the row's mask finds the true region
                entry["methods"][name]["mask_iou"] = mean_ci(iou, resamples, seed).to_dict()
            for key in PRESENCE_KEYS:  # the change in the edited classes' presence (evaluation.presence)
                if (figure := _presence_figure(rows_here.get(f"{name}:{key}"), resamples, seed)) is not None:
                    entry["methods"][name][key] = figure
        report["tasks"][task] = entry
    return report


def _presence_figure(changes: np.ndarray | None, resamples: int, seed: int) -> dict[str, Any] | None:
    """Mean presence change [95% CI] over the triplets that have one (a class the tagger knows), their
    number, and the shares where it went up and down; None when none has one."""
    from foleyflow.evaluation.bootstrap import mean_ci

    changes = np.asarray([] if changes is None else changes, np.float64)
    changes = changes[np.isfinite(changes)]
    if not changes.size:
        return None
    return mean_ci(changes, resamples, seed).to_dict() | {"n": int(changes.size), "raised": float(np.mean(changes > 0)),
                                                          "lowered": float(np.mean(changes < 0))}


def format_table(report: Mapping[str, Any]) -> str:
    """A Markdown table: one row per task and method, the oracle mask's gap beside each masked row."""
    lines = [
        f"steps {report['steps']}{_guidance_clause(report)}{_t_start_clause(report)}{_removal_clause(report)}; L1 = log-mel L1 to the true target"
        " (lower is better); gap closed = (identity - method) / (identity - floor), 95% bootstrap CI;"
        " vs no edit = the method's L1 minus the unedited source's, per triplet (below 0: better than no edit);"
        " region move = inside the true edit region, the kept latent's distance to the target latent over the source's"
        " (1: as far as not editing, below 1: towards the target; not for add, whose onset is free);"
        " mask IoU = frames where the row's mask is >= 0.5 against the oracle mask's, intersection over union (not for add);"
        f" **add** is scored against the {report.get('add_scoring', 'true target')}, **replace** against the"
        f" {report.get('replace_scoring', 'true target')}, with identity against the same target (floor: the true target's;"
        " replace's region move and mask IoU use the data set's spans).",
        "",
        "| task | n | method | L1 | gap closed [95% CI] | vs no edit [95% CI] | oracle mask, same compositing | mask share (empty) | mask IoU | region move | s / edit | NFE | forward s | overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, entry in report["tasks"].items():
        lines.append(f"| {task} | {entry['n']} | identity (source via codec) | {_ci(entry['identity_l1'])} | 0 | | | | | | | | | |")
        lines.append(f"| {task} | {entry['n']} | floor (target via codec) | {_ci(entry['floor_l1'])} | 1 | | | | | | | | | |")
        for name, row in entry["methods"].items():
            oracle = entry["methods"].get("oracle + " + name.partition(" + ")[2]) if " + " in name else None
            lines.append(
                f"| {task} | {row.get('n', entry['n'])} | {name} | {_ci(row['l1'])} | {_ci(row['gap_closed'])} | {_ci(row['vs_unedited']) if 'vs_unedited' in row else ''} |"
                f" {_ci(oracle['gap_closed']) if oracle else ''} |"
                f" {_share(row)} | {_ci(row['mask_iou']) if 'mask_iou' in row else ''} | {_ci(row['region_move']) if 'region_move' in row else ''} | {row['seconds_per_edit']:.2f} | {row['nfe']} | {row['forward_seconds']:.3f} | {row['overhead']:.2f} |"
            )
    return "\n".join(lines + presence_table(report))


def presence_table(report: Mapping[str, Any]) -> list[str]:
    """The class-presence figures as a second table (no lines when the run measured none)."""
    def cells(figure, share: str) -> str:
        return f"{_signed(figure)} | {100 * figure[share]:.0f}%" if figure else " | "

    body = []
    for task, entry in report["tasks"].items():
        named = [("true target", {key: entry[f"target_{key}"] for key in PRESENCE_KEYS if f"target_{key}" in entry})]
        named += [(name, row) for name, row in entry["methods"].items()]
        for name, row in named:
            old, new = row.get("presence_old"), row.get("presence_new")
            if old is None and new is None:
                continue
            body.append(f"| {task} | {(new or old)['n']} | {name} | {cells(new, 'raised')} | {cells(old, 'lowered')} |")
    if not body:
        return []
    return [
        "",
        "Class presence (`evaluation/presence.py`): the in-world tagger's probability of the class, the most"
        " confident 0.96 s window, minus the source's, per triplet, mean [95% CI]; new = the class an add or"
        " replace brings in (up is right), old = the class a remove or replace takes out (down is right).",
        "",
        "| task | n | row | new class: change [95% CI] | raised on | old class: change [95% CI] | lowered on |",
        "|---|---|---|---|---|---|---|",
        *body,
    ]


def _signed(estimate: Mapping[str, float]) -> str:
    return f"{estimate['value']:+.3f} [{estimate['ci95_low']:+.3f}, {estimate['ci95_high']:+.3f}]"


def _share(row: Mapping[str, Any]) -> str:
    """"0.12 (41%)": mean mask share and the share of items whose mask is empty."""
    return f"{row['mask_share']:.2f} ({100 * row['empty_mask_fraction']:.0f}%)" if "mask_share" in row else ""


def _t_start_clause(report: Mapping[str, Any]) -> str:
    """", t_start 0.5 for the mask rows" when the report has mask rows at one t_start; else nothing."""
    if report.get("t_start") in (None, ""):
        return ""
    region = f" ({report['region_t_start']} for the region rows)" if report.get("region_t_start") not in (None, report["t_start"]) else ""
    return f", t_start {report['t_start']} for the mask rows{region}"


def _removal_clause(report: Mapping[str, Any]) -> str:
    """", removal gains (unet in a marked region)" for an editor with a remover; else nothing."""
    if "removal" not in report:
        return ""
    region = f" ({report['region_removal']} in a marked region)" if report["region_removal"] != report["removal"] else ""
    return f", removal {report['removal']}{region}"


def _ci(estimate: Mapping[str, float]) -> str:
    return f"{estimate['value']:.3f} [{estimate['ci95_low']:.3f}, {estimate['ci95_high']:.3f}]"


def _guidance_clause(report: Mapping[str, Any]) -> str:
    return f", guidance {report['cfg_scale']:g}" if report.get("cfg_scale") is not None else ""


def _load(model) -> Editor:
    return model if isinstance(model, Editor) else Editor.from_pretrained(model)


def with_config(editor: Editor, **changes) -> Editor:
    """A shallow copy of ``editor`` with these config fields changed, so that an editor the caller
    passed in keeps its config."""
    changed = copy.copy(editor)
    changed.config = dataclasses.replace(editor.config, **changes)
    return changed


def with_guidance(editor: Editor, cfg_scale: float | None) -> Editor:
    """``editor`` guided at ``cfg_scale`` unless told otherwise (None: its own scale)."""
    return editor if cfg_scale is None else with_config(editor, cfg_scale=cfg_scale)


def with_removal(editor: Editor, removal: str | None) -> Editor:
    """``editor`` removing by ``removal`` everywhere, a marked region's included (None: as its
    config says)."""
    if removal is None:
        return editor
    check_removal(removal, editor.remover is not None)
    return with_config(editor, removal=removal, region_removal=removal)


def pair_rows(report_a: Mapping[str, Any], row_a: str, report_b: Mapping[str, Any], row_b: str,
              resamples: int = 2000, seed: int = 0, true_target: bool = False) -> dict[str, dict[str, Any]]:
    """Row ``row_a`` of one ``--per-triplet`` report minus row ``row_b`` of another (or the same),
    triplet by triplet, per task the first report has: the mean difference with its paired bootstrap
    95% CI and the share of triplets where A is lower. Both must hold the same triplets in the same
    order (same split, seed and per-task count), which their ids prove. ``true_target``: a task
    scored against a best-aligned target is paired on its L1 to the data set's own target instead."""
    from foleyflow.evaluation.bootstrap import mean_ci

    for task in (t for t in ALIGNABLE_TASKS if t in report_a["tasks"]):  # the tasks paired
        scoring_a, scoring_b = (report.get(f"{task}_scoring", "true target") for report in (report_a, report_b))
        if scoring_a != scoring_b:
            raise InputError(f"the reports score {task} differently ({scoring_a} vs {scoring_b}): rerun one")
    paired = {}
    for task, rows_a in report_a["tasks"].items():
        rows_b = report_b["tasks"].get(task)
        if rows_b is None:
            raise InputError(f"the second report has no {task} triplets")
        if "triplet_ids" not in rows_a or "triplet_ids" not in rows_b:
            raise InputError("pairing needs reports written with --json --per-triplet")
        if rows_a["triplet_ids"] != rows_b["triplet_ids"]:
            raise InputError(f"the reports hold different {task} triplets (same split, seed and per-task count needed)")
        # both reports score the task alike (checked above); only an aligned task has a second figure
        own_target = true_target and report_a.get(f"{task}_scoring") == ALIGNED_SCORING
        differences = _per_triplet(rows_a, row_a, own_target) - _per_triplet(rows_b, row_b, own_target)
        differences = differences[np.isfinite(differences)]  # a reference row may lack some triplets
        paired[task] = {"n": int(differences.size), "difference": mean_ci(differences, resamples, seed).to_dict(),
                        "share_lower": float(np.mean(differences < 0))}
    return paired


def _per_triplet(rows: Mapping[str, Any], name: str, true_target: bool = False) -> np.ndarray:
    if name not in rows["methods"]:
        raise InputError(f"no row {name!r}; rows: {', '.join(rows['methods'])}")
    row = rows["methods"][name]
    if true_target and "per_triplet_true_target_l1" not in row:
        raise InputError(f"row {name!r} has no L1 to the data set's own target per triplet (the report predates that figure): rerun it")
    return np.asarray(row["per_triplet_true_target_l1" if true_target else "per_triplet_l1"], np.float64)
