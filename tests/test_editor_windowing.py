"""Windowing: every length comes back exactly; the identity is exact; cross-fades are continuous."""

import numpy as np
import pytest

from foleyflow.errors import InputError
from foleyflow.pipelines.windowing import overlap_add, process_in_windows, window_starts


@pytest.mark.parametrize("length", [1, 99, 1000, 1001, 2500, 7777])
def test_identity_processing_gives_back_the_input_exactly(length):
    audio = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    out = process_in_windows(audio, window=1000, overlap=200, process=lambda w: w)
    assert out.shape == audio.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, audio, atol=1e-6)


def test_short_clips_are_padded_for_processing_and_trimmed_back():
    seen = []
    out = process_in_windows(np.ones(300, np.float32), 1000, 100, lambda w: seen.append(w.copy()) or w * 2)
    assert seen[0].shape == (1, 1000) and seen[0][0, 300:].max() == 0.0
    assert out.shape == (300,) and np.all(out == 2.0)


def test_windows_cover_the_clip_and_the_last_ends_on_its_end():
    starts = window_starts(2500, 1000, 200)
    assert starts == [0, 750, 1500] and all(b - a <= 800 for a, b in zip(starts, starts[1:]))
    assert window_starts(1000, 1000, 200) == [0]


def test_crossfades_are_continuous_between_windows_that_disagree():
    # Each window is replaced by a different constant: a hard cut would jump by 1.0 at once.
    out = process_in_windows(np.zeros(5000, np.float32), 1000, 400, lambda w: np.arange(len(w))[:, None] + np.zeros_like(w))
    assert out[0] == 0.0 and out[-1] == len(window_starts(5000, 1000, 400)) - 1
    assert np.max(np.abs(np.diff(out))) <= 1.0 / 400 + 1e-6


def test_overlap_add_works_on_leading_axes():
    chunks = np.ones((3, 2, 10))
    joined = overlap_add(chunks, [0, 8, 15], 25)
    assert joined.shape == (2, 25) and np.allclose(joined, 1.0)


def test_bad_settings_and_empty_input_are_input_errors():
    with pytest.raises(InputError):
        window_starts(10, 5, 5)
    with pytest.raises(InputError):
        process_in_windows(np.zeros(0, np.float32), 10, 2, lambda w: w)
