"""Compositing an edit into its source with an edit mask (issue 9): the source outside, the edit inside.

Modes (``Editor.edit(composite=...)``):
    none              the edited latent as sampled (the paper)
    end               once, on latents: x = m * x_edited + (1 - m) * x_T
    every-step        blended diffusion: after every solver step to time t, the region outside the
                      mask is put back on the source's own path, x_t(x_T) = (1 - (1 - sigma_min) t)
                      eps + t x_T with the *same* noise eps the edit started from, so the inside
                      is generated in the context of the source it will sit in
    audio             once, on waveforms: y = m * decode(x_edited) + (1 - m) * source audio, with
                      the mask interpolated to samples; the codec round trip never touches the
                      unedited region (a source passed through the codec is not the source)
    every-step+audio  both
    spectral          audio, but inside the mask an "add" keeps, in every STFT bin, the louder of the
                      edit and the source, and a "remove" the quieter (``spectral_rule``); other
                      instructions are composited as ``audio``; with a room-tone quantile (the
                      editor's ``room_tone_quantile``), no bin of the edit is quieter than the
                      recording's room tone (``room_tone``; read near the edit with the editor's
                      ``room_tone_seconds``); with a level window (the editor's
                      ``spectral_level``), edit and source are compared by local level, not bin by
                      bin, and replace is bounded both ways (``keep_levels``)
    every-step+spectral  every-step and spectral
With an editor's removal gains (``removal: gains``), a spectral remove scales the source by the
remover's gains instead of the edit's level (``blend_removal``; a replace takes the edit's new
sound over that removal).
Why spectral: a mixture's STFT magnitude is (up to phase) at least each of its parts', so the true
result of adding a sound is nowhere quieter than the source and that of removing one nowhere
louder. Keeping the louder (add) or quieter (remove) bin moves the edit towards the target in every
bin where the edit broke that bound and changes nothing elsewhere: for "remove" it is the bounded
(at most 1) time-frequency mask of source separation, applied to the recording.
Masks are (batch, 1, latent frames, 1) in [0, 1] (``pipelines.masks``) and broadcast over
channels and frequency.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from foleyflow.audio.io import SAMPLE_RATE
from foleyflow.diffusion.flow import RectifiedFlowPath
from foleyflow.errors import InputError
from foleyflow.pipelines.masks import dilate

MODES = ("none", "end", "every-step", "audio", "every-step+audio", "spectral", "every-step+spectral")

# The instruction's task -> which bin the spectral mode keeps; any other task (replace, unknown) has no bound.
SPECTRAL_RULES = {"add": "louder", "remove": "quieter"}
# Resynthesis STFT: the front-end's 1024-point Hann window (audio.mel), hop 256 so that the squared
# windows overlap-add to a constant (torch.istft's condition for an exact round trip).
SPECTRAL_N_FFT, SPECTRAL_HOP = 1024, 256


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"composite must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def latent_end(mode: str) -> bool:
    return mode == "end"


def every_step(mode: str) -> bool:
    return mode.startswith("every-step")


def in_audio(mode: str) -> bool:
    """Composited on waveforms (``audio`` and ``spectral`` modes)."""
    return mode.endswith(("audio", "spectral"))


def unmarked_is_source(composite: str) -> bool:
    """Whether ``composite`` returns the source wherever the mask is 0, whatever was sampled: on
    latents at the end (``end``) or on waveforms (``audio``, ``spectral``; a removal by gains
    too). ``every-step`` alone ends on the source's path at t = 1, sigma_min times the noise away
    from the source, so an edit with no frame marked still depends (barely) on its sampling."""
    return latent_end(composite) or in_audio(composite)


def spectral(mode: str) -> bool:
    return mode.endswith("spectral")


def spectral_rule(task: str | None) -> str | None:
    """"louder", "quieter" or None (no bound) for an instruction's task (``data.language.instruction_task``)."""
    return SPECTRAL_RULES.get(task or "")


def blend(edited: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m * edited + (1 - m) * source; written out (not lerp) so m = 0 gives ``source`` and m = 1 ``edited`` bit for bit."""
    mask = mask.to(edited)
    return mask * edited + (1 - mask) * source


def blended_flow_solve(
    solver: Callable[..., torch.Tensor],
    model: Callable[..., torch.Tensor],
    x_start: torch.Tensor,
    times: torch.Tensor,
    extra_args: dict,
    path: RectifiedFlowPath,
    x_source: torch.Tensor,
    noise: torch.Tensor,
    mask: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """Solve step by step; after each step to t, keep only the mask's region and take the rest from
    the source path at t. ``mask()`` is asked after every step, so a mask estimated while sampling
    (its running average) can be used as it is known."""
    x = x_start
    for i in range(len(times) - 1):
        x = solver(model, x, times[i : i + 2], extra_args=extra_args, disable=True)
        x = blend(x, path.x_t(x_source, noise, times[i + 1]), mask())
    return x


def blend_audio(edited: np.ndarray, source: np.ndarray, sample_mask: np.ndarray) -> np.ndarray:
    """Waveform compositing: (samples,) edit inside the per-sample mask, the source itself outside."""
    sample_mask = np.asarray(sample_mask, dtype=np.float64)
    return (sample_mask * edited + (1.0 - sample_mask) * source).astype(np.float32)


def bound_spectrum(edited: np.ndarray, source: np.ndarray, rule: str | None, sample_mask: np.ndarray | None = None,
                   room_tone_quantile: float | None = None, level: Sequence[int] | None = None,
                   room_tone_seconds: float | None = None) -> np.ndarray:
    """(samples,) edit bounded by the source in the STFT domain, resynthesised.

    Bin by bin (``level`` None): keep the louder or the quieter of edit and source (complex values:
    magnitude and phase come from the same signal); no rule: the edit. By local level (``level`` =
    (bins, frames), ``keep_levels``): the source's own bins, scaled down or replaced by the edit's.
    Then, with ``room_tone_quantile``, no bin quieter than the recording's room tone (``room_tone``),
    read within ``room_tone_seconds`` of the edit when given."""
    if rule not in ("louder", "quieter", None):
        raise ValueError(f"rule must be 'louder', 'quieter' or None, got {rule!r}")
    if room_tone_quantile is not None and sample_mask is None:
        raise ValueError("the room tone is read outside the edit: it needs the sample mask")
    stft = spectra(edited, source)
    kept = stft[0]
    if level is not None:
        kept = keep_levels(stft[0], stft[1], rule, level)
    elif rule is not None:
        edit_louder = stft[0].abs() > stft[1].abs()
        kept = torch.where(edit_louder if rule == "louder" else ~edit_louder, stft[0], stft[1])
    if room_tone_quantile is not None:
        kept = floor_at_room_tone(kept, stft[1], sample_mask, room_tone_quantile, room_tone_seconds)
    return resynthesised(kept, edited.shape[-1])


def spectra(*signals: np.ndarray) -> torch.Tensor:
    """(len(signals), bins, frames) complex STFTs on the resynthesis grid (``SPECTRAL_N_FFT``, ``SPECTRAL_HOP``).
    A clip shorter than half a window gets silence after it (the centred STFT's reflect padding needs
    more samples than it pads); ``resynthesised`` cuts it off again."""
    window = torch.hann_window(SPECTRAL_N_FFT, periodic=True, dtype=torch.float64)
    stacked = torch.from_numpy(np.stack([np.asarray(x, np.float64) for x in signals]))
    stacked = F.pad(stacked, (0, max(SPECTRAL_N_FFT // 2 + 1 - stacked.shape[-1], 0)))
    return torch.stft(stacked, SPECTRAL_N_FFT, SPECTRAL_HOP, window=window, center=True, return_complex=True)


def resynthesised(stft: torch.Tensor, length: int) -> np.ndarray:
    """(samples,) the inverse of ``spectra`` for one spectrum."""
    window = torch.hann_window(SPECTRAL_N_FFT, periodic=True, dtype=torch.float64)
    return torch.istft(stft, SPECTRAL_N_FFT, SPECTRAL_HOP, window=window, center=True, length=length).numpy()


def floor_at_room_tone(kept: torch.Tensor, source: torch.Tensor, sample_mask: np.ndarray, quantile: float,
                       seconds: float | None = None) -> torch.Tensor:
    """STFT ``kept`` raised to the source's room tone (``room_tone``, read outside ``sample_mask``,
    within ``seconds`` of the edit when given; ``raise_to_floor``); unchanged when too little is left alone."""
    near = None if seconds is None else round(seconds * SAMPLE_RATE / SPECTRAL_HOP)
    floor = room_tone(source.abs(), stft_frame_mask(sample_mask, source.shape[-1]) < 0.5, quantile, near)
    return kept if floor is None else raise_to_floor(kept, source, floor)


def local_level(stft: torch.Tensor, level: Sequence[int]) -> torch.Tensor:
    """(bins, frames) RMS magnitude over a centred window of ``level`` = (bins, frames) around each bin."""
    bins, frames = level
    power = (stft.abs() ** 2)[None, None].float()
    mean = F.avg_pool2d(power, (bins, frames), stride=1, padding=(bins // 2, frames // 2), count_include_pad=False)
    return mean[0, 0].to(torch.float64).sqrt()


def keep_levels(edit: torch.Tensor, source: torch.Tensor, rule: str | None, level: Sequence[int]) -> torch.Tensor:
    """STFT of the source's own bins, scaled by the edit's local level over the source's where that
    is below 1 ("quieter", or no rule), and the edit's bins where it is above ("louder", or no rule).

    Why levels, not bins: a regenerated bed is another realisation of the same noise, so bin by bin
    it is louder or quieter than the source at random, and every bin it wins moves the output away
    from the recording although nothing was meant to change there. Averaged over a few bins and
    frames the two beds agree, and only what the edit really changes (an event gone, an event new)
    shows: removing becomes a bounded time-frequency gain on the recording itself, as in source
    separation."""
    ratio = local_level(edit, level) / local_level(source, level).clamp(min=1e-12)
    kept = source
    if rule in ("quieter", None):
        kept = torch.where(ratio < 1, source * ratio, kept)
    if rule in ("louder", None):
        kept = torch.where(ratio > 1, edit, kept)
    return kept


# Room tone: at least this many STFT frames (hop 256: 64 ms) left alone by the edit to estimate it from.
ROOM_TONE_MIN_FRAMES = 4


def stft_frame_mask(sample_mask: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) the per-sample mask read at each centred STFT frame's centre (frame k at sample k * hop)."""
    sample_mask = np.asarray(sample_mask, dtype=np.float64)
    return sample_mask[np.minimum(np.arange(frames) * SPECTRAL_HOP, sample_mask.size - 1)]


def room_tone(source_magnitude: torch.Tensor, outside: np.ndarray, quantile: float, near_frames: int | None = None) -> torch.Tensor | None:
    """(bins, 1) the recording's room tone: per frequency, the ``quantile`` of the source's STFT
    magnitude over the frames the edit leaves alone; None when fewer than ``ROOM_TONE_MIN_FRAMES`` are.
    With ``near_frames``, only the frames left alone within that many frames of an edited one count
    (all of them when fewer than ``ROOM_TONE_MIN_FRAMES`` lie that near).

    Why: the target of a remove (or a replace) still holds the scene's bed, and a bed is close to
    stationary, so its level per frequency can be read where nothing is edited. A low quantile reads
    the bed under the other events. Film sound editors fill a cut the same way ("room tone"). Why
    near: the bed that matters is the one around the cut; read over the whole clip, a recording that
    is digitally silent for a quarter of it has a room tone of zero, and a remove there can leave a
    hole where its target holds the bed (val, session 22: docs/editor.md)."""
    outside = torch.from_numpy(np.asarray(outside, dtype=bool))
    if near_frames is not None:
        near = (dilate((~outside).float()[None], near_frames)[0] > 0) & outside
        if int(near.sum()) >= ROOM_TONE_MIN_FRAMES:
            outside = near
    if int(outside.sum()) < ROOM_TONE_MIN_FRAMES:
        return None
    return torch.quantile(source_magnitude[:, outside], quantile, dim=1, keepdim=True)


def raise_to_floor(kept: torch.Tensor, source: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """STFT ``kept`` with every bin quieter than ``floor`` raised to it, but never above the source's
    own bin (a recording quieter than its room tone there stays as it was), keeping its phase (the
    source's where ``kept`` is silent)."""
    floor = torch.minimum(floor, source.abs())
    magnitude = kept.abs()
    phase = torch.where(magnitude > 1e-12, kept / magnitude.clamp(min=1e-12), source / source.abs().clamp(min=1e-12))
    return torch.where(magnitude < floor, phase * floor, kept)


def blend_removal(edited: np.ndarray, source: np.ndarray, sample_mask: np.ndarray, gains: np.ndarray, task: str,
                  room_tone_quantile: float | None = None, level: Sequence[int] | None = None,
                  room_tone_seconds: float | None = None, gain_mask: np.ndarray | None = None,
                  samples_per_cell: int | None = None) -> np.ndarray:
    """(samples,) a remove (or replace) made by removal gains (``pipelines.removal``): the source's
    STFT scaled by ``gains`` (cells' bins, cell frames; a cell is a latent frame, ``samples_per_cell``
    samples, by default ``removal.CELL_FRAMES`` mel frames),
    floored at the room tone read outside ``sample_mask``, blended in inside ``gain_mask`` (default
    ``sample_mask``). A replace then takes the edit's bins where its local level is above the
    *source's* (a new sound; the old one, which the edit may have regenerated, stays out), inside
    ``sample_mask``."""
    from foleyflow.pipelines.removal import stft_gains

    if task not in ("remove", "replace"):
        raise ValueError(f"removal gains make a remove or a replace, not {task!r}")
    stft = spectra(source)[0]
    cell = {} if samples_per_cell is None else {"samples_per_cell": samples_per_cell}
    kept = stft * stft_gains(gains, SPECTRAL_N_FFT, SPECTRAL_HOP, stft.shape[-1], **cell).clamp(0, 1)
    if room_tone_quantile is not None:
        kept = floor_at_room_tone(kept, stft, sample_mask, room_tone_quantile, room_tone_seconds)
    removed = blend_audio(resynthesised(kept, source.shape[-1]), source, sample_mask if gain_mask is None else gain_mask)
    if task == "remove":
        return removed
    return blend_audio(with_new_sound(edited, source, removed, level), removed, sample_mask)


def with_new_sound(edited: np.ndarray, source: np.ndarray, removed: np.ndarray, level: Sequence[int] | None) -> np.ndarray:
    """(samples,) ``removed`` with the edit's bins wherever the edit's local level (``level``; bin by
    bin when None) is above the source's."""
    stft = spectra(edited, source, removed)
    louder = local_level(stft[0], level) > local_level(stft[1], level) if level is not None else stft[0].abs() > stft[1].abs()
    return resynthesised(torch.where(louder, stft[0], stft[2]), removed.shape[-1])


def blend_spectral(edited: np.ndarray, source: np.ndarray, sample_mask: np.ndarray, rule: str | None,
                   room_tone_quantile: float | None = None, level: Sequence[int] | None = None,
                   room_tone_seconds: float | None = None) -> np.ndarray:
    """``blend_audio`` of the bounded edit (``bound_spectrum``); bin by bin with no rule and no room tone,
    ``blend_audio`` itself."""
    if rule is not None or room_tone_quantile is not None or level is not None:
        edited = bound_spectrum(edited, source, rule, sample_mask, room_tone_quantile, level, room_tone_seconds)
    return blend_audio(edited, source, sample_mask)
