import numpy as np
import pytest
import soundfile as sf

from foleyflow.audio.io import AUDIO_OUTPUT_FORMATS, SAMPLE_RATE, audio_output_format, load_audio, load_original, write_audio
from foleyflow.errors import InputError


def _sine(freq, rate, seconds=1.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([tone] * channels, axis=1) if channels > 1 else tone


def _peak_frequency(audio, rate):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return np.fft.rfftfreq(audio.size, 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_24", "flac"), ("OGG", "VORBIS", "ogg")])
@pytest.mark.parametrize("rate,channels", [(44_100, 2), (8_000, 1), (48_000, 6)])
def test_reads_any_format_rate_and_channel_count_as_mono_16k(tmp_path, fmt, subtype, ext, rate, channels):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _sine(1000, rate, channels=channels), rate, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - SAMPLE_RATE) <= 2  # 1 s at 16 kHz
    assert abs(_peak_frequency(audio, SAMPLE_RATE) - 1000) < 5
    assert 0.4 < np.abs(audio).max() < 0.6  # downmix averages identical channels: level kept


def test_downmix_averages_channels(tmp_path):
    stereo = np.stack([np.full(1600, 0.5), np.full(1600, -0.1)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), 0.2, atol=1e-6)


def test_write_wav_is_16_bit_pcm_and_round_trips(tmp_path):
    audio = (0.3 * np.sin(np.linspace(0, 100, 16000))).astype(np.float32)
    out = write_audio(tmp_path / "out.wav", audio)
    info = sf.info(out)
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", SAMPLE_RATE, 1)
    np.testing.assert_allclose(load_audio(out), audio, atol=1 / 32768 + 1e-6)
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind


def test_write_wav_refuses_nan_and_leaves_no_file(tmp_path):
    with pytest.raises(InputError, match="NaN"):
        write_audio(tmp_path / "bad.wav", np.array([0.0, np.nan], dtype=np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, audio_format, lossless", [(".flac", "FLAC", True), (".ogg", "OGG", False), (".opus", "OGG", False), (".mp3", "MP3", False),
                                                                (".WAV", "WAV", True)])
def test_write_audio_takes_the_format_from_the_suffix(tmp_path, suffix, audio_format, lossless):
    audio = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(16000) / SAMPLE_RATE)).astype(np.float32)
    out = write_audio(tmp_path / f"out{suffix}", audio)
    assert (sf.info(out).format, sf.info(out).subtype) == (audio_format, AUDIO_OUTPUT_FORMATS[suffix.lower()][1])
    back = load_audio(out)
    assert abs(_peak_frequency(back, SAMPLE_RATE) - 1000) < 5
    if lossless:
        np.testing.assert_allclose(back, audio, atol=1 / 32768 + 1e-6)
    else:  # a lossy codec may pad the start or the end by a frame or so
        assert abs(back.size - audio.size) < 2400 and 0.2 < np.abs(back).max() < 0.4
    assert [path.name for path in tmp_path.iterdir()] == [f"out{suffix}"]


@pytest.mark.parametrize("name, message", [("out.aac", "foleyflow writes no '.aac' audio"), ("out", "no suffix")])
def test_write_audio_refuses_a_suffix_with_no_format_and_leaves_no_file(tmp_path, name, message):
    with pytest.raises(InputError, match=message) as error:
        write_audio(tmp_path / name, np.zeros(1600, np.float32))
    assert all(suffix in str(error.value) for suffix in AUDIO_OUTPUT_FORMATS)
    assert list(tmp_path.iterdir()) == []
    assert audio_output_format("x.Mp3") == ("MP3", "MPEG_LAYER_III")


def test_load_original_keeps_rate_and_channels_and_write_audio_takes_them(tmp_path):
    stereo = np.stack([_sine(1000, 44_100), _sine(3000, 44_100)], axis=1).astype(np.float32)
    out = write_audio(tmp_path / "s.flac", stereo, 44_100)
    recording = load_original(out)
    assert (recording.rate, recording.samples.shape, recording.subtype) == (44_100, (44_100, 2), "PCM_16")
    np.testing.assert_allclose(recording.samples, stereo, atol=1 / 32768 + 1e-6)


def test_float_samples_beyond_full_scale_are_kept_in_a_float_file_and_clipped_in_an_integer_one(tmp_path):
    loud = np.array([0.5, 1.5, -2.0], np.float32)
    np.testing.assert_array_equal(sf.read(write_audio(tmp_path / "f.wav", loud, like_subtype="FLOAT"), dtype="float32")[0], loud)
    assert np.abs(sf.read(write_audio(tmp_path / "i.wav", loud), dtype="float32")[0]).max() <= 1.0


def test_write_audio_keeps_a_sample_format_where_the_output_format_takes_it(tmp_path):
    audio = np.zeros(160, np.float32)
    assert sf.info(write_audio(tmp_path / "a.wav", audio, like_subtype="FLOAT")).subtype == "FLOAT"
    assert sf.info(write_audio(tmp_path / "a.flac", audio, like_subtype="FLOAT")).subtype == "PCM_16"  # FLAC has no float: its default
    assert sf.info(write_audio(tmp_path / "b.flac", audio, like_subtype="PCM_24")).subtype == "PCM_24"
    assert sf.info(write_audio(tmp_path / "a.ogg", audio, like_subtype="PCM_24")).subtype == "VORBIS"


def test_a_codec_refuses_a_rate_it_does_not_take(tmp_path):
    with pytest.raises(InputError, match=r"\.mp3 takes .* kHz, not 96 kHz"):
        write_audio(tmp_path / "hi.mp3", np.zeros((960, 2), np.float32), 96_000)
    with pytest.raises(InputError, match="holds at most 2 channels, not 3"):
        write_audio(tmp_path / "surround.mp3", np.zeros((480, 3), np.float32), 48_000)
    with pytest.raises(InputError, match="holds at most 8 channels, not 9"):
        write_audio(tmp_path / "many.flac", np.zeros((480, 9), np.float32), 48_000)
    with pytest.raises(InputError, match=r"\.ogg takes at most 192 kHz, not 352.8 kHz"):  # libvorbis would crash the process
        audio_output_format("dxd.ogg", 352_800)
    assert audio_output_format("ok.mp3", 44_100) == ("MP3", "MPEG_LAYER_III") and audio_output_format("any.flac", 96_000)[0] == "FLAC"
    assert list(tmp_path.iterdir()) == []


def test_rejects_non_audio_bytes(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(InputError, match="not a readable audio file"):
        load_audio(path)


def test_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(path)


def test_rejects_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0), SAMPLE_RATE)
    with pytest.raises(InputError, match="no samples"):
        load_audio(path)


def test_rejects_nan_and_inf_samples(tmp_path):
    for bad in (np.nan, np.inf):
        path = tmp_path / "bad.wav"
        sf.write(path, np.array([0.1, bad, 0.2]), SAMPLE_RATE, subtype="FLOAT")
        with pytest.raises(InputError, match="NaN or infinite"):
            load_audio(path)


def test_rejects_files_longer_than_the_limit(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(SAMPLE_RATE * 3), SAMPLE_RATE)
    with pytest.raises(InputError, match="longer than the limit of 2 s"):
        load_audio(path, max_seconds=2)
    assert load_audio(path, max_seconds=None).size == SAMPLE_RATE * 3


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_atomic_outputs_get_the_permissions_of_a_plain_open(tmp_path):
    from foleyflow import atomic

    with atomic.atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    # mkstemp alone gives 0600; compare with a file a plain open() makes (0666 less the umask)
    (tmp_path / "plain.txt").write_text("x")
    mode = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == mode != 0o600
