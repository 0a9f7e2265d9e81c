"""An edit of the 16 kHz mono mix carried back onto the recording's own rate and channels."""

import numpy as np
import pytest

from foleyflow.audio.io import to_mono_at_rate
from foleyflow.pipelines.original_format import carry_edit_to_original, changed_samples, frame_curve_at_rate, gain_and_residual


def _tone(freq, rate, seconds, amplitude=0.3):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_a_16k_mono_recording_gets_the_editors_output_back():
    rng = np.random.default_rng(0)
    original = 0.1 * rng.standard_normal((8000, 1))
    edited = (0.5 * original[:, 0] + _tone(700, 16000, 0.5)).astype(np.float32)
    np.testing.assert_allclose(carry_edit_to_original(original, 16000, edited)[:, 0], edited, atol=1e-5)


def test_an_edit_that_changes_nothing_gives_the_recording_back():
    original = 0.1 * np.random.default_rng(1).standard_normal((48000, 2))  # white: energy up to 24 kHz
    unchanged = to_mono_at_rate(original, 48000)
    np.testing.assert_allclose(carry_edit_to_original(original, 48000, unchanged), original, atol=1e-5)


def test_a_removal_keeps_the_stereo_image_no_ghost_in_the_other_channel():
    # left holds a 1 kHz tone, right a 3 kHz one; the edit removes the 1 kHz tone from the mix
    rate, seconds = 48000, 1.0
    original = np.stack([_tone(1000, rate, seconds), _tone(3000, rate, seconds)], axis=1)
    edited = to_mono_at_rate(np.stack([np.zeros(rate), _tone(3000, rate, seconds)], axis=1), rate)
    carried = carry_edit_to_original(original, rate, edited)
    middle = slice(rate // 10, -rate // 10)  # away from the clip's edges
    assert _rms(carried[middle, 0]) < 0.02 * _rms(original[middle, 0])  # the tone is gone from its channel
    np.testing.assert_allclose(carried[middle, 1], original[middle, 1], atol=0.01)  # the other channel keeps its own sound
    # adding the mix's difference to both channels instead would leave half the tone, inverted, in the right one
    assert _rms(carried[middle, 1] - original[middle, 1]) < 0.05 * _rms(0.5 * original[middle, 0])


def test_a_removal_takes_the_treble_above_the_editor_with_it():
    rate = 48000
    noise = 0.1 * np.random.default_rng(2).standard_normal((rate, 1))  # broadband, 0-24 kHz
    mix = to_mono_at_rate(noise, rate)
    edited = mix.copy()
    edited[: mix.size // 2] = 0.0  # the first half removed
    carried = carry_edit_to_original(noise, rate, edited)[:, 0]
    first, second = slice(rate // 20, rate // 2 - rate // 20), slice(rate // 2 + rate // 20, -rate // 20)
    assert _rms(carried[first]) < 0.02 * _rms(noise[first, 0])  # above 8 kHz too: not only the editor's band
    np.testing.assert_allclose(carried[second], noise[second, 0], atol=1e-4)


def test_an_added_sound_goes_to_every_channel_and_the_recording_stays_under_it():
    rate, seconds = 44100, 1.0
    rng = np.random.default_rng(3)
    original = 0.05 * rng.standard_normal((rate, 2))
    mix = to_mono_at_rate(original, rate)
    added = _tone(2000, 16000, seconds)
    added[: added.size // 2] = 0.0  # the tone enters halfway
    carried = carry_edit_to_original(original, rate, (mix + added).astype(np.float32))
    tone = _tone(2000, rate, seconds)
    late, early = slice(rate // 2 + rate // 10, -rate // 10), slice(rate // 10, rate // 2 - rate // 10)
    for c in range(2):
        change = carried[:, c] - original[:, c]
        amplitude = 0.3 * np.dot(change[late], tone[late]) / np.dot(tone[late], tone[late])  # projection onto the tone
        assert amplitude == pytest.approx(0.3, rel=0.05)  # the whole tone in each channel: the channels' mean is the edit
        assert _rms(change[early]) < 1e-3  # before it enters, the recording as it was, treble included


def test_channels_unlike_the_mix_stay_exact_outside_the_edited_span():
    rate = 48000
    bed = 0.1 * np.random.default_rng(7).standard_normal(rate + 240)
    original = np.stack([bed[240:], bed[:-240]], axis=1)  # a spaced pair: each channel far from the mix
    mix = to_mono_at_rate(original, rate)
    edited = mix.copy()
    edited[6000:10000] *= 0.1  # 0.375-0.625 s at 16 kHz
    carried = carry_edit_to_original(original, rate, edited)
    before, after = slice(0, int(0.37 * rate)), slice(int(0.63 * rate), None)  # the span's 1 ms margin and 2 ms fade lie between
    np.testing.assert_allclose(carried[before], original[before], atol=1e-6)
    np.testing.assert_allclose(carried[after], original[after], atol=1e-6)
    inside = slice(int(0.4 * rate), int(0.6 * rate))
    assert _rms(carried[inside]) < 0.15 * _rms(original[inside])


def test_the_gain_and_residual_rebuild_the_edit_and_the_gain_never_amplifies():
    rng = np.random.default_rng(4)
    source = 0.1 * rng.standard_normal(4000)
    edited = 0.3 * source + _tone(500, 16000, 0.25)
    from foleyflow.pipelines.compositing import resynthesised, spectra

    gain, residual = gain_and_residual(*spectra(source, edited))
    assert float(gain.min()) >= 0.0 and float(gain.max()) <= 1.0

    np.testing.assert_allclose(resynthesised(gain * spectra(source)[0] + residual, source.size), edited, atol=1e-9)


def test_a_per_frame_value_is_interpolated_between_frame_centres():
    curve = frame_curve_at_rate(np.array([0.0, 1.0]), 48000, 48000)  # frames at 0 and 256 / 16000 s
    assert curve[0] == 0.0 and curve[384] == pytest.approx(0.5) and curve[768] == 1.0 and curve[-1] == 1.0


def test_bench_carry_scores_each_way_of_writing_the_edit(cli, monkeypatch, tmp_path):
    import types

    import foleyflow.pipelines.edit_bench as edit_bench
    import foleyflow.pipelines.editor as editor_module

    rng = np.random.default_rng(6)
    items = []
    for index in range(3):
        bed = 0.05 * rng.standard_normal(4800)
        event = np.zeros(4800)
        event[1600:3200] = _tone(900 + 300 * index, 16000, 0.1)
        items.append({"task": "remove", "source": (bed + event).astype(np.float32), "target": bed.astype(np.float32), "instruction": "Remove the tone"})

    class SilencingEditor:  # removes everything in the event's span, touches nothing outside it
        def edit(self, audio, instruction):
            out = np.array(audio, np.float32)
            out[1600:3200] *= 0.1
            return types.SimpleNamespace(audio=out)

    seen = {}
    monkeypatch.setattr(edit_bench, "test_triplets", lambda split, count, seed, root, tasks: seen.update(split=split, count=count, tasks=tasks) or items)
    monkeypatch.setattr(editor_module.Editor, "from_pretrained", classmethod(lambda cls, name: SilencingEditor()))
    code, out, err = cli("bench", "carry", "--n", "3", "--out", str(tmp_path / "carry.md"))
    assert code == 0, err
    assert seen == {"split": "test", "count": 3, "tasks": ["remove"]}
    rows = {line.split(" | ")[0].strip("| "): [cell.strip(" |") for cell in line.split(" | ")[1:]] for line in out.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| output")}
    assert set(rows) >= {"16 kHz output in both channels", "carried (shipped)", "carried, residual only (no gain)", "each channel edited on its own"}
    carried, squeezed = rows["carried (shipped)"], rows["16 kHz output in both channels"]
    # the bed is a spaced pair: squeezing it through 16 kHz mono changes it everywhere, the carried edit only where it edits
    assert float(carried[3]) > 70 and float(squeezed[3]) < 20, out  # carried: at the 16-bit floor (bed 0.05 rms: 75 dB)
    assert float(carried[0]) > 10 and float(carried[1]) > 0  # the tone's span silenced in both channels: its error mostly gone
    assert (tmp_path / "carry.md").read_text().strip() == out.strip()


def test_only_the_stretch_around_the_edit_is_worked_on_and_it_matches_the_whole_file():
    from foleyflow.pipelines.original_format import _carry_stretch, edited_stretch

    rate = 44100
    original = 0.1 * np.random.default_rng(9).standard_normal((3 * rate, 2))
    mix = to_mono_at_rate(original, rate)
    assert edited_stretch(changed_samples(mix, mix.copy()), rate, original.shape[0]) is None  # nothing changed: nothing to do
    edited = mix.copy()
    edited[20000:24000] *= 0.2  # 1.25-1.5 s
    changed = changed_samples(mix, edited)
    (lo16, hi16), (lo, hi) = edited_stretch(changed, rate, original.shape[0])
    assert lo16 % 1280 == 0 and hi16 % 1280 == 0  # whole samples at 16 and 44.1 kHz (every 160) on the STFT's hop (256)
    assert lo16 <= 20000 - 4000 and hi16 >= 24000 + 4000 and (lo, hi) == (lo16 * rate // 16000, hi16 * rate // 16000)
    whole = original.astype(np.float32)
    _carry_stretch(whole, rate, mix.astype(np.float64), edited.astype(np.float64), changed)  # the whole file as one stretch
    np.testing.assert_allclose(carry_edit_to_original(original, rate, edited), whole, atol=1e-5)
    left = original[:, 0]  # (samples,): one channel
    np.testing.assert_array_equal(carry_edit_to_original(left, rate, to_mono_at_rate(left, rate)), left[:, None].astype(np.float32))
