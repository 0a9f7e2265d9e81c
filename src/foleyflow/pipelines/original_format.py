"""An edit made at 16 kHz mono carried back onto the recording in its own rate and channels.

The editor works on the 16 kHz mono mix of a recording (``audio.io.to_mono_at_rate``); a sound
designer's file is often 44.1 or 48 kHz and stereo, and giving back 16 kHz mono would throw away
everything the edit never touched. So the edit is written as a change to the recording:

1. On the resynthesis grid of spectral compositing (``compositing.spectra``), the edited mix ``Y``
   against the source mix ``X`` splits into a real gain ``G = min(|Y| / |X|, 1)``, the part of the
   edit that only makes bins quieter (a removal by gains is nothing else), and a residual
   ``N = Y - G X``, whatever the edit brings that the source did not have (an added sound).
2. Each channel's own 16 kHz version ``x_c`` becomes ``y_c = istft(G X_c + N)``: the gain on every
   channel keeps a removed sound's place in the stereo image, the residual goes to every channel
   alike (centred), and the channels' mean is the edit (the mix is their mean, and both steps are
   linear in the channel).
3. Back at the recording's rate, the channel gets ``y_c - x_c`` added (resampled; zero wherever the
   edit left the mix alone, so there the recording comes back as it was), and what lies above the
   editor's 8 kHz follows the gain of the edit's top band (6-8 kHz) frame by frame: a removed
   sound does not leave its highest partials behind, and an added one does not lift the recording's
   own treble (the gain is at most 1).

4. All of it only where the edit changed the mix's samples (``changed_span``, with short fades):
   a frame of the gain that straddles the edge of an edit reaches ``SPECTRAL_N_FFT`` / 2 samples
   beyond it, which in the mix the residual cancels but in a channel unlike the mix (a spaced
   pair's) it does not.

A 16 kHz mono recording gets exactly the editor's output back.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
import torch

from foleyflow.audio.io import SAMPLE_RATE, to_mono_at_rate
from foleyflow.pipelines.compositing import SPECTRAL_HOP, SPECTRAL_N_FFT, resynthesised, spectra

TOP_BAND_HZ = (6000.0, SAMPLE_RATE / 2)  # the editor's highest band: its gain is carried above the editor's 8 kHz
SILENT_POWER = 1e-20  # bins (or a frame's top band) this quiet in the source get gain 1: nothing there to scale
CHANGED = 1e-7  # a mix sample the edit moved by more than this is edited (unedited ones come back exact)
SPAN_MARGIN_SECONDS, SPAN_FADE_SECONDS = 0.001, 0.002
STRETCH_PAD_SECONDS = 0.25  # well past an STFT frame (64 ms) and the resamplers' filters either side of an edit


def gain_and_residual(source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(bins, frames) real gain G in [0, 1] and complex residual N with G * source + N = edited, of
    the two STFTs (``spectra``)."""
    source_magnitude = source.abs()
    audible = source_magnitude.square() > SILENT_POWER
    gain = torch.where(audible, (edited.abs() / source_magnitude.clamp_min(1e-30)).clamp(max=1.0), torch.ones_like(source_magnitude))
    return gain, edited - gain * source


def top_band_gain(gain: torch.Tensor, source: torch.Tensor) -> np.ndarray:
    """(frames,) the amplitude gain of the edit over ``TOP_BAND_HZ`` in each frame: the energy of
    the source's STFT there after the gain over before it (1 where the source has none)."""
    frequencies = np.fft.rfftfreq(SPECTRAL_N_FFT, 1.0 / SAMPLE_RATE)
    band = torch.from_numpy((frequencies >= TOP_BAND_HZ[0]) & (frequencies <= TOP_BAND_HZ[1]))
    power = source.abs().square()[band]
    before, after = power.sum(0), (gain[band].square() * power).sum(0)
    return torch.where(before > SILENT_POWER, (after / before.clamp_min(1e-30)).sqrt(), torch.ones_like(before)).numpy()


def frame_curve_at_rate(per_frame: np.ndarray, frames: int, rate: int) -> np.ndarray:
    """(frames,) samples at ``rate`` of a per-STFT-frame value, linear between frame centres (frame k
    at k * hop / 16 kHz seconds; held beyond the first and the last)."""
    centres = np.arange(per_frame.size) * SPECTRAL_HOP / SAMPLE_RATE
    return np.interp(np.arange(frames) / rate, centres, per_frame)


def changed_samples(heard: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """(samples,) bool: where the edit moved the 16 kHz mix it was given, ``heard``."""
    return np.abs(np.asarray(edited, np.float64) - np.asarray(heard, np.float64)) > CHANGED


def changed_span(changed: np.ndarray, frames: int, rate: int) -> np.ndarray:
    """(frames,) at ``rate``: 1 where ``changed`` (16 kHz samples, ``changed_samples``) and
    ``SPAN_MARGIN_SECONDS`` around, falling to 0 over ``SPAN_FADE_SECONDS`` (raised cosine) beyond."""
    margin, fade = round(SPAN_MARGIN_SECONDS * SAMPLE_RATE), max(round(SPAN_FADE_SECONDS * SAMPLE_RATE), 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / (fade + 1))
    kernel = np.concatenate([ramp, np.ones(2 * margin + 1), ramp[::-1]])
    weight = np.minimum(np.convolve(changed.astype(np.float64), kernel, mode="same"), 1.0)
    return np.interp(np.arange(frames) / rate, np.arange(weight.size) / SAMPLE_RATE, weight)  # linear: no ringing past the fade


def resample_to(signal: np.ndarray, rate_in: int, rate_out: int, frames: int) -> np.ndarray:
    """``signal`` resampled (soxr, high quality), cut or zero-padded to ``frames`` samples."""
    out = signal if rate_in == rate_out else soxr.resample(signal, rate_in, rate_out, quality="HQ")
    return np.pad(out[:frames], (0, max(frames - out.shape[0], 0)))


def carry_edit_to_original(original: np.ndarray, rate: int, edited: np.ndarray, mix: np.ndarray | None = None) -> np.ndarray:
    """(frames, channels) float32: ``original`` (frames, channels) at ``rate`` with the edit of its
    16 kHz mono mix applied; ``edited`` is the editor's output for that mix (the module's docstring).
    Only the stretch around what the edit changed is worked on (``edited_stretch``); the rest is
    copied, so an edit that changes nothing costs nothing and gives the recording back exactly.
    ``mix``: the 16 kHz mix the editor was given, where the caller has it (else made again)."""
    out = np.array(original, dtype=np.float32).reshape(len(original), -1)  # (samples,) is one channel
    heard = to_mono_at_rate(out, rate) if mix is None else np.asarray(mix)  # to find what the edit changed
    heard = np.pad(heard[: edited.size], (0, max(edited.size - heard.size, 0)))
    changed = changed_samples(heard, edited)
    stretch = edited_stretch(changed, rate, out.shape[0])
    if stretch is not None:
        (lo16, hi16), (lo, hi) = stretch
        _carry_stretch(out[lo:hi], rate, heard[lo16:hi16], np.asarray(edited[lo16:hi16], np.float64), changed[lo16:hi16])
    return out


def edited_stretch(changed: np.ndarray, rate: int, frames: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The samples at 16 kHz and at ``rate`` of one stretch holding every ``changed`` sample (16 kHz,
    ``changed_samples``) and ``STRETCH_PAD_SECONDS`` either side (resamplers and STFT frames settle
    within it); None when the edit changed nothing."""
    edited_at = np.flatnonzero(changed)
    if edited_at.size == 0:
        return None
    # its start on an instant that is a whole sample at both rates and on the STFT's frame grid, so
    # that the stretch's frames are the whole file's (a gain read on other frames differs a little)
    step = math.lcm(SAMPLE_RATE // math.gcd(SAMPLE_RATE, rate), SPECTRAL_HOP)
    pad = round(STRETCH_PAD_SECONDS * SAMPLE_RATE)
    lo16 = max(edited_at[0] - pad, 0) // step * step
    hi16 = min(-(-(edited_at[-1] + 1 + pad) // step) * step, changed.size)
    lo, hi = lo16 * rate // SAMPLE_RATE, frames if hi16 == changed.size else hi16 * rate // SAMPLE_RATE
    return (int(lo16), int(hi16)), (int(lo), int(hi))


def _carry_stretch(stretch: np.ndarray, rate: int, heard: np.ndarray, edited: np.ndarray, changed: np.ndarray) -> None:
    """``carry_edit_to_original`` on one stretch (the module's docstring, steps 1-4), in place in
    ``stretch`` (frames, channels) float32, a channel at a time (memory: one channel in float64)."""
    source, edit = spectra(np.asarray(heard, np.float64), edited)
    gain, residual = gain_and_residual(source, edit)
    frames = stretch.shape[0]
    treble_gain = frame_curve_at_rate(top_band_gain(gain, source), frames, rate) if rate > SAMPLE_RATE else None
    span = changed_span(changed, frames, rate)
    for c in range(stretch.shape[1]):
        channel = stretch[:, c].astype(np.float64)
        x_c = resample_to(channel, rate, SAMPLE_RATE, edited.size)
        y_c = resynthesised(gain * spectra(x_c)[0] + residual, x_c.size)
        change = resample_to(y_c - x_c, SAMPLE_RATE, rate, frames)
        if treble_gain is not None:
            treble = channel - resample_to(x_c, SAMPLE_RATE, rate, frames)  # what the editor never saw
            change += (treble_gain - 1.0) * treble
        stretch[:, c] = channel + span * change
