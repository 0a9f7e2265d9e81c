"""What carrying an edit back to the recording's rate and channels keeps (``foleyflow bench carry``).

No held-out recording here is stereo at a high rate, so the benchmark builds one from each held-out
"remove" triplet, whose true target is known: the scene is resampled to ``RATE`` and placed in a
spaced-pair image, the bed on the left and ``BED_DELAY_SECONDS`` later on the right, the event at
full level on the left and at ``RIGHT_EVENT_GAIN`` on the right. The editor hears the mix; each
way of writing its output is scored per channel against the bed (the truth):

* in the event's span (where its smoothed magnitude is above ``EVENT_SPAN`` of its peak), the dB of
  the unedited recording's error removed, 10 log10(sum |recording - truth|^2 / sum |output - truth|^2),
  pooled over clips, and the paired per-clip difference of the carried edit and the 16 kHz output;
* outside it (below ``QUIET`` of its peak), how close the output stays to the recording (SNR, dB,
  median over clips): what a user hears of the edit where nothing was meant to change.
Every error energy is at least the 16-bit quantisation noise of its samples (``energies``): below
that a written file holds no error, and a bed of digital silence under an event would otherwise
give a clip an unbounded figure.

Rows: the editor's 16 kHz mono output resampled into both channels (what foleyflow wrote before),
the edit carried back (``original_format.carry_edit_to_original``), the same with its gain taken
out (residual only: the ablation that says why the gain is there), each channel edited on its own
(twice the editing; a reference) and, for scale, the editor's own output against the mix's truth.
The treble above 8 kHz is not measured here: the corpus is 16 kHz, so the scenes have none
(``tests/test_original_format.py`` checks it on synthetic sound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from foleyflow.audio.io import SAMPLE_RATE, to_mono_at_rate
from foleyflow.evaluation.bootstrap import Estimate, mean_ci
from foleyflow.pipelines.editor import Editor
from foleyflow.pipelines.original_format import carry_edit_to_original, resample_to

RATE = 48_000
BED_DELAY_SECONDS = 0.005
RIGHT_EVENT_GAIN = 0.25
EVENT_SPAN, QUIET = 0.1, 1e-4
QUANTISATION_POWER = 2.0 ** -30 / 12  # a 16-bit step (2^-15) squared over 12: the noise of writing the output
SPAN_SMOOTHING_SECONDS = 0.01
WAYS = ("16 kHz output in both channels", "carried (shipped)", "carried, residual only (no gain)", "each channel edited on its own")


@dataclass
class CarryFigures:
    clips: int
    removed_db: dict[str, tuple[float, float, float]]  # way -> (left, right, both channels), pooled over clips
    mono_removed_db: float  # the editor's own output against the mix's truth, pooled
    outside_snr_db: dict[str, float]  # way -> median SNR to the recording outside the event
    carried_minus_16k: Estimate  # per clip, both channels pooled within the clip (dB)
    seconds_per_clip: float
    carry_seconds_per_clip: float


def stereo_scene(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recording, truth, event) at ``RATE``, (frames, 2) each, from a 16 kHz remove triplet."""
    frames = len(target) * RATE // SAMPLE_RATE
    bed = resample_to(np.asarray(target, np.float64), SAMPLE_RATE, RATE, frames)
    event = resample_to(np.asarray(source, np.float64) - np.asarray(target, np.float64), SAMPLE_RATE, RATE, frames)
    delay = round(BED_DELAY_SECONDS * RATE)
    truth = np.stack([bed, np.concatenate([np.zeros(delay), bed[:-delay]])], axis=1)
    events = np.stack([event, RIGHT_EVENT_GAIN * event], axis=1)
    return truth + events, truth, events


def residual_only_carry(recording: np.ndarray, mix: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """The ablation: the edit of the mix (edited - mix: the gain taken as 1, all of it residual)
    added to every channel."""
    change = np.asarray(edited, np.float64) - np.asarray(mix, np.float64)
    return recording + resample_to(change, SAMPLE_RATE, RATE, recording.shape[0])[:, None]


def each_channel_edited(editor: Editor, recording: np.ndarray, instruction: str) -> np.ndarray:
    """The reference row: every channel edited on its own, as a mono recording."""
    out = []
    for c in range(recording.shape[1]):
        channel_mix = to_mono_at_rate(recording[:, c:c + 1], RATE)
        out.append(carry_edit_to_original(recording[:, c:c + 1], RATE, editor.edit(channel_mix, instruction).audio, channel_mix)[:, 0])
    return np.stack(out, axis=1)


def span_masks(event: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) boolean samples from the event's smoothed magnitude."""
    width = max(round(SPAN_SMOOTHING_SECONDS * rate), 1)
    envelope = np.convolve(np.abs(event), np.ones(width) / width, mode="same")
    return envelope > EVENT_SPAN * envelope.max(), envelope < QUIET * envelope.max()


def error_energy(error: np.ndarray) -> float:
    """The energy of ``error``, at least the 16-bit quantisation noise of that many samples: an
    error below what a written file can hold is no error (and a bed of digital silence under an
    event would otherwise make a clip's figure unbounded)."""
    return max(float(np.sum(error ** 2)), QUANTISATION_POWER * error.size)


def energies(output: np.ndarray, truth: np.ndarray, recording: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """(energy of the recording's error, energy of the output's error) over ``where`` (``error_energy``)."""
    return error_energy((recording - truth)[where]), error_energy((output - truth)[where])


def db(numerator: float, denominator: float) -> float:
    return 10 * np.log10(max(numerator, 1e-30) / max(denominator, 1e-30))


def carry_benchmark(editor: Editor, items: Sequence[Mapping[str, Any]]) -> CarryFigures:
    import time

    sums = {way: np.zeros((2, 2)) for way in WAYS}  # way -> [channel, (recording error, output error)]
    mono_sums, outside, paired = np.zeros(2), {way: [] for way in WAYS}, []
    started, carry_seconds = time.perf_counter(), 0.0
    for item in items:
        recording, truth, event = stereo_scene(item["source"], item["target"])
        mix = to_mono_at_rate(recording, RATE)
        edited = editor.edit(mix, item["instruction"]).audio
        began = time.perf_counter()
        carried = carry_edit_to_original(recording, RATE, edited, mix)
        carry_seconds += time.perf_counter() - began
        outputs = {
            WAYS[0]: np.repeat(resample_to(edited, SAMPLE_RATE, RATE, recording.shape[0])[:, None], 2, axis=1),
            WAYS[1]: carried.astype(np.float64),
            WAYS[2]: residual_only_carry(recording, mix, edited),
            WAYS[3]: each_channel_edited(editor, recording, item["instruction"]),
        }
        inside, quiet = span_masks(event[:, 0], RATE)
        clip = {}
        for way, output in outputs.items():
            for channel in (0, 1):
                sums[way][channel] += energies(output[:, channel], truth[:, channel], recording[:, channel], inside)
                if quiet.any():
                    kept = recording[quiet, channel]
                    outside[way].append(db(float(np.sum(kept ** 2)), error_energy(output[quiet, channel] - kept)))
            clip[way] = db(*np.sum([energies(output[:, c], truth[:, c], recording[:, c], inside) for c in (0, 1)], axis=0))
        paired.append(clip[WAYS[1]] - clip[WAYS[0]])
        mono_truth = to_mono_at_rate(truth, RATE)[: edited.size]
        inside_16k, _ = span_masks(to_mono_at_rate(event, RATE)[: edited.size], SAMPLE_RATE)
        mono_sums += energies(np.asarray(edited, np.float64), mono_truth, mix[: edited.size], inside_16k)
    return CarryFigures(
        clips=len(items),
        removed_db={way: (db(*s[0]), db(*s[1]), db(*s.sum(0))) for way, s in sums.items()},
        mono_removed_db=db(*mono_sums),
        outside_snr_db={way: float(np.median(values)) if values else float("nan") for way, values in outside.items()},
        carried_minus_16k=mean_ci(np.asarray(paired)),
        seconds_per_clip=(time.perf_counter() - started) / max(len(items), 1),
        carry_seconds_per_clip=carry_seconds / max(len(items), 1),
    )


def markdown(figures: CarryFigures, command: str) -> str:
    lines = [f"Held-out remove triplets: {figures.clips}, as {RATE // 1000} kHz spaced-pair stereo scenes (docs: "
             f"`pipelines/carry_bench.py`). Command: `{command}`", "",
             "| output | event error removed, left (dB) | right, event at 0.25 (dB) | both channels (dB) | outside the event: SNR to the recording (dB, median) |",
             "|---|---|---|---|---|"]
    for way in WAYS:
        left, right, both = figures.removed_db[way]
        lines.append(f"| {way} | {left:.2f} | {right:.2f} | {both:.2f} | {figures.outside_snr_db[way]:.1f} |")
    lines.append(f"| the editor's own 16 kHz output, against the mix's truth | | | {figures.mono_removed_db:.2f} (mono) | |")
    lines += ["", f"Carried minus the 16 kHz output, per clip (both channels): {figures.carried_minus_16k.format(2)} dB. "
              f"{figures.seconds_per_clip:.2f} s per clip in all, {figures.carry_seconds_per_clip:.3f} s of it carrying the edit back.", ""]
    return "\n".join(lines)
