"""Pairing by file name and the content-keyed feature cache."""

import numpy as np
import pytest

from foleyflow.errors import InputError
from foleyflow.evaluation.cache import FeatureCache
from foleyflow.evaluation.pairing import audio_files, pair_by_name


def _touch(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"RIFF" + name.encode())
    return folder


def test_pairs_by_stem_across_formats(tmp_path):
    gen = audio_files(_touch(tmp_path / "gen", "b.wav", "a.wav", "notes.txt"))
    ref = audio_files(_touch(tmp_path / "ref", "a.flac", "b.wav"))
    pairs = pair_by_name(gen, ref)
    assert [(p.name, p.generated.name, p.reference.name) for p in pairs] == [("a", "a.wav", "a.flac"), ("b", "b.wav", "b.wav")]


def test_unpaired_files_are_named_and_stop_the_run(tmp_path):
    gen = audio_files(_touch(tmp_path / "gen", "a.wav", "x.wav"))
    ref = audio_files(_touch(tmp_path / "ref", "a.wav", "y.wav", "z.wav"))
    with pytest.raises(InputError) as error:
        pair_by_name(gen, ref)
    message = str(error.value)
    assert "2 reference files have no generated file (y, z)" in message
    assert "1 generated files have no reference file (x)" in message


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        audio_files(tmp_path / "missing")
    with pytest.raises(InputError, match="no audio files"):
        audio_files(_touch(tmp_path / "empty", "readme.txt"))
    with pytest.raises(InputError, match="share the name 'a'"):
        audio_files(_touch(tmp_path / "dup", "a.wav", "a.flac"))


def test_cache_is_keyed_by_content_and_fingerprint(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    audio = _touch(tmp_path / "a", "one.wav")
    calls = []

    def compute():
        calls.append(1)
        return {"embedding": np.arange(3.0)}

    first = cache.get_or_compute(audio / "one.wav", "panns-x", compute)
    second = cache.get_or_compute(audio / "one.wav", "panns-x", compute)
    np.testing.assert_array_equal(first["embedding"], second["embedding"])
    assert len(calls) == 1 and cache.hits == 1
    cache.get_or_compute(audio / "one.wav", "panns-y", compute)  # another checkpoint
    assert len(calls) == 2
    (audio / "one.wav").write_bytes(b"changed content")  # same name, new content
    cache.get_or_compute(audio / "one.wav", "panns-x", compute)
    assert len(calls) == 3


def test_disabled_cache_always_computes_and_writes_nothing(tmp_path):
    cache = FeatureCache(tmp_path / "cache", enabled=False)
    audio = _touch(tmp_path / "a", "one.wav")
    for _ in range(2):
        cache.get_or_compute(audio / "one.wav", "k", lambda: {"x": np.zeros(1)})
    assert cache.misses == 2 and not (tmp_path / "cache").exists()
