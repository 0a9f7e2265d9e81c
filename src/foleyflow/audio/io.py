"""Reading and writing audio files.

Reading accepts anything libsndfile decodes (wav, flac, ogg/vorbis, opus, aiff, ...), any
channel count and sample rate: ``load_audio`` returns mono float32 at 16 kHz (channels averaged,
resampled with soxr, high quality), what the models hear; ``load_original`` the file as it is.
Writing is atomic, in the format the file's suffix names (``AUDIO_OUTPUT_FORMATS``: PCM WAV or
FLAC, 16-bit unless an input's sample format is to be kept, Ogg Vorbis or Opus, MP3); any other
suffix is refused rather than given WAV data under a name that says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError

SAMPLE_RATE = 16_000
DEFAULT_MAX_SECONDS = 600.0
# suffix -> (libsndfile format, subtype); the lossless ones at 16 bits, as every output so far
AUDIO_OUTPUT_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"),
                        ".mp3": ("MP3", "MPEG_LAYER_III")}
# What each format takes, checked before anything is written: the rates Opus and MP3 take
# (libsndfile refuses others), the highest rate FLAC holds and Vorbis encodes (libvorbis crashes
# above about 200 kHz), the most channels MP3 and FLAC hold. WAV takes any.
CODEC_RATES = {".opus": (8000, 12000, 16000, 24000, 48000), ".mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)}
MAX_RATE = {".ogg": 192_000, ".flac": 655_350}
MAX_CHANNELS = {".mp3": 2, ".flac": 8}
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # hold samples beyond [-1, 1]: not clipped


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> np.ndarray:
    """Read a file as mono float32 at ``sample_rate``; raise InputError on anything unusable."""
    recording = load_original(path, max_seconds)
    return to_mono_at_rate(recording.samples, recording.rate, sample_rate)


@dataclass(frozen=True)
class Recording:
    """A file as it is: its samples (frames, channels) as float32 (which holds 24-bit samples
    exactly), its rate, and the sample format they were stored in (libsndfile's subtype)."""

    samples: np.ndarray
    rate: int
    subtype: str


def load_original(path: str | os.PathLike, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Recording:
    """A file as it is (``Recording``); InputError on anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise InputError(f"{path}: not a readable audio file ({_short(error)})") from None
    if info.frames == 0:
        raise InputError(f"{path}: the audio has no samples")
    duration = info.frames / info.samplerate
    if max_seconds is not None and duration > max_seconds:
        raise InputError(f"{path}: {duration:.1f} s is longer than the limit of {max_seconds:g} s")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise InputError(f"{path}: could not decode the audio ({_short(error)})") from None
    if data.shape[0] == 0:
        raise InputError(f"{path}: the audio has no samples")
    if not np.isfinite(data).all():
        raise InputError(f"{path}: the audio contains NaN or infinite samples")
    return Recording(data, file_rate, info.subtype)


def channel_words(channels: int) -> str:
    """"mono", or "N channels": how a command line or a page names a channel count."""
    return "mono" if channels == 1 else f"{channels} channels"


def to_mono_at_rate(data: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Average channels of a (frames, channels) or (frames,) array and resample to ``sample_rate``."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def audio_output_format(path: str | os.PathLike, sample_rate: int | None = None, channels: int | None = None) -> tuple[str, str]:
    """(format, subtype) the suffix of ``path`` names; InputError for a suffix with no audio format,
    or (given them) a rate or a channel count that format does not take."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in AUDIO_OUTPUT_FORMATS:
        suffixes = ", ".join(AUDIO_OUTPUT_FORMATS)
        problem = f"foleyflow writes no '{path.suffix}' audio" if path.suffix else "the name has no suffix to say the audio format"
        raise InputError(f"{path}: {problem}; end the name in one of {suffixes}")
    rates, highest = CODEC_RATES.get(suffix), MAX_RATE.get(suffix)
    if sample_rate is not None and rates is not None and sample_rate not in rates:
        raise InputError(f"{path}: {suffix} takes {', '.join(f'{rate / 1000:g}' for rate in rates)} kHz, not {sample_rate / 1000:g} kHz; "
                         "write .wav, which takes any rate")
    if sample_rate is not None and highest is not None and sample_rate > highest:
        raise InputError(f"{path}: {suffix} takes at most {highest / 1000:g} kHz, not {sample_rate / 1000:g} kHz; write .wav, which takes any rate")
    most = MAX_CHANNELS.get(suffix)
    if channels is not None and most is not None and channels > most:
        raise InputError(f"{path}: {suffix} holds at most {most} channels, not {channels}; write .wav, which holds any number")
    return AUDIO_OUTPUT_FORMATS[suffix]


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, like_subtype: str | None = None) -> Path:
    """Write audio, (samples,) or (frames, channels), atomically in the format ``path``'s suffix
    names. Samples are clipped to [-1, 1] unless the sample format is floating point.
    ``like_subtype`` (an input's, e.g. "PCM_24"): the sample format to keep where the output's
    format takes it (a 24-bit WAV edited to .flac stays 24-bit), the format's default otherwise."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        audio = audio.reshape(-1)
    audio_format, subtype = audio_output_format(path, sample_rate, audio.shape[1] if audio.ndim == 2 else 1)
    if like_subtype is not None and sf.check_format(audio_format, like_subtype):
        subtype = like_subtype
    if audio.size == 0:
        raise InputError("refusing to write an empty audio file")
    if not np.isfinite(audio).all():
        raise InputError("refusing to write audio that contains NaN or infinite samples")
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio if subtype in FLOAT_SUBTYPES else np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format=audio_format)
    return path


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
