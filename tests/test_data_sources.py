"""Corpus processing and the source readers, on fabricated package files (no network, no packages)."""

from __future__ import annotations

import io
import struct
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from foleyflow.data.corpus import PEAK_CAP, TARGET_RMS_DBFS, active_rms, assign_splits, process_audio
from foleyflow.data.manifest import ClipRecord
from foleyflow.data.sources import debian, render


def test_process_audio_trims_shortens_and_normalises():
    rate = 44100
    t = np.arange(rate * 6) / rate
    tone = 0.9 * np.sin(2 * np.pi * 440 * t)
    data = np.concatenate([np.zeros(rate), tone, np.zeros(rate)])
    stereo = np.stack([data, data], axis=1)
    event = process_audio(stereo, rate, "event")
    assert event.dtype == np.float32 and event.size == 4 * 16000  # silence trimmed, cut to 4 s
    assert np.abs(event).max() <= PEAK_CAP + 1e-6
    assert abs(20 * np.log10(active_rms(event)) - TARGET_RMS_DBFS) < 3.5
    assert process_audio(np.zeros(rate), rate, "event") is None
    assert process_audio(tone[: rate // 2], rate, "bed") is None  # too short to be a bed


def test_splits_never_divide_a_recording():
    clips = [ClipRecord(f"c{i}", "cow" if i < 40 else "rain", "event", ["x"], "s", "p", "l", f"rec{i // 4}") for i in range(60)]
    assign_splits(clips)
    by_recording = {}
    for clip in clips:
        assert by_recording.setdefault(clip.recording, clip.split) == clip.split
    cows = {c.split for c in clips if c.label == "cow"}
    assert cows == {"train", "val", "test"}
    two_recordings = [ClipRecord(f"d{i}", "bell", "event", ["x"], "s", "p", "l", f"r{i % 2}") for i in range(4)]
    assert {c.split for c in assign_splits(two_recordings)} == {"train"}


def _cow_clips(recordings: range) -> list[ClipRecord]:
    return [ClipRecord(f"c{i}", "cow", "event", ["x"], "s", "p", "l", f"rec{i}") for i in recordings]


def test_a_growing_corpus_keeps_its_recordings_splits_and_fills_the_shares_with_new_ones():
    first = assign_splits(_cow_clips(range(20)))
    kept = {(c.label, c.recording): c.split for c in first}
    plain = {c.recording: c.split for c in assign_splits(_cow_clips(range(40)))}
    grown = {c.recording: c.split for c in assign_splits(_cow_clips(range(40)), kept=kept)}
    assert any(plain[r] != s for (_, r), s in kept.items())  # the plain rule would move some
    assert all(grown[r] == s for (_, r), s in kept.items())
    counts = {s: sum(v == s for v in grown.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 32, "val": 4, "test": 4}  # 10% each of 40, as without history
    assert [c.split for c in assign_splits(_cow_clips(range(20)), kept={})] == [c.split for c in first]


def test_fetching_again_keeps_the_splits_the_corpus_had(tmp_path):
    import json

    from foleyflow.data.manifest import read_clips
    from foleyflow.interfaces.cli import main

    fetch = ["data", "fetch", "--source", "synthetic", "--corpus", str(tmp_path), "--workers", "1", "--no-progress"]
    assert main(fetch) == 0
    rows = [json.loads(line) for line in (tmp_path / "clips.jsonl").read_text().splitlines()]
    moved = next(row for row in rows if row["split"] == "train")
    for row in rows:  # as if an earlier corpus had held this recording out
        if row["recording"] == moved["recording"] and row["label"] == moved["label"]:
            row["split"] = "test"
    (tmp_path / "clips.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(fetch) == 0
    again = {c.clip_id: c.split for c in read_clips(tmp_path)}
    assert again == {row["clip_id"]: row["split"] for row in rows}


def test_a_fresh_fetch_starts_from_the_shipped_splits(tmp_path, monkeypatch):
    import json

    from foleyflow.data import corpus
    from foleyflow.data.manifest import read_clips
    from foleyflow.interfaces.cli import main

    plain = tmp_path / "plain"
    fetch = ["data", "fetch", "--source", "synthetic", "--workers", "1", "--no-progress", "--corpus"]
    assert main([*fetch, str(plain)]) == 0
    clips = read_clips(plain)
    moved = next(c for c in clips if c.split == "train")
    shipped = tmp_path / "splits.json"
    shipped.write_text(json.dumps({"rows": [[moved.label, moved.recording, "test"]]}))
    monkeypatch.setattr(corpus, "SHIPPED_SPLITS", shipped)
    assert main([*fetch, str(tmp_path / "fresh")]) == 0
    fresh = read_clips(tmp_path / "fresh")
    assert {c.split for c in fresh if c.recording == moved.recording} == {"test"}
    shares = lambda cs: Counter((c.label, c.split) for c in {(c.label, c.recording): c for c in cs}.values())  # noqa: E731
    assert shares(fresh) == shares(clips)  # the others were placed around it, in the same shares


def test_the_shipped_splits_are_the_plain_rule_over_their_recordings():
    from foleyflow.data.corpus import shipped_splits

    shipped = shipped_splits()
    assert len(shipped) > 700
    records = [ClipRecord(f"c{i}", label, "event", ["x"], "s", "p", "l", recording) for i, (label, recording) in enumerate(shipped)]
    assert {(c.label, c.recording): c.split for c in assign_splits(records)} == shipped


def _wav_bytes(seconds=0.5, rate=22050):
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(np.arange(int(seconds * rate)) / 5)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_opensfx_catalogue_is_parsed(tmp_path):
    titles = [b'"Cow". Original "Cow - Moan 2.wav" by "X". License: Creative Commons Zero 1.0.\x00', b'"Good Year". By Y.\x00']
    bodies = [bytes([len(t)]) + t + _wav_bytes() for t in titles]
    offset = 8 * len(bodies)
    table, blob = b"", b""
    for body in bodies:
        table += struct.pack("<II", (offset + len(blob)) | 0x80000000, len(body))
        blob += body
    folder = tmp_path / "usr/share/games/openttd/baseset/opensfx"
    folder.mkdir(parents=True)
    (folder / "opensfx.cat").write_bytes(table + blob)
    entries = debian.opensfx_entries(folder / "opensfx.cat")
    assert [e[0][:5] for e in entries] == ['"Cow"', '"Good']
    clips = debian.opensfx_clips(tmp_path)
    assert len(clips) == 1  # the jingle is left out
    cow = clips[0]
    assert cow.label == "cow" and cow.licence == "Creative Commons Zero 1.0" and cow.recording.endswith("Cow - Moan 2.wav")
    audio, rate = cow.load()
    assert rate == 22050 and audio.shape[0] == 11025


def test_dep5_licence_lookup():
    text = ("Format: x\n\nFiles: *\nCopyright: a\nLicense: GPL-2+\n\n"
            "Files: stereo/bell.oga\n stereo/complete.oga\nCopyright: b\nLicense: CC-BY-3.0\n")
    stanzas = debian.dep5_licences(text)
    assert debian.licence_for("usr/share/sounds/freedesktop/stereo/complete.oga", stanzas) == "CC-BY-3.0"
    assert debian.licence_for("usr/share/sounds/freedesktop/stereo/message.oga", stanzas) == "GPL-2+"


def _ogg_files(folder, names):
    for name in names:
        path = folder / f"{name}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000, format="OGG")


def test_tuxpaint_stamps_give_their_hand_labelled_sounds_only(tmp_path):
    _ogg_files(tmp_path / debian.TUXPAINT_STAMPS, ("animals/mammals/dogs/dog", "animals/mammals/dogs/dog_desc",
                                                   "animals/mammals/aquatic/whale", "symbols/math/5_en_GB",
                                                   "animals/mammals/pig_golden2"))
    doc = tmp_path / "usr/share/doc/tuxpaint-stamps-default/copyright"
    doc.parent.mkdir(parents=True)
    doc.write_text("Format: x\n\nFiles: *\nCopyright: a\nLicense: GPL-2\n")
    clips = debian.package_clips("tuxpaint-stamps-default", tmp_path)
    assert [(c.label, c.recording, c.licence) for c in clips] == [
        ("dog", "tuxpaint-stamps-default/dog", "GPL-2"),
        ("pig", "tuxpaint-stamps-default/pig_golden", "GPL-2")]  # numbered variants: one recording
    audio, rate = clips[0].load()
    assert rate == 16000 and audio.shape == (8000, 1)


def test_wesnoth_sounds_are_labelled_by_stem_with_the_package_licence(tmp_path):
    _ogg_files(tmp_path / debian.WESNOTH_SOUNDS, ("ambient/birds1", "horse-hit-1", "horse-hit-2", "human-female-die-3",
                                                  "mace", "horse-canter"))
    clips = debian.package_clips("wesnoth-1.16-data", tmp_path)
    assert [(c.label, c.recording) for c in clips] == [
        ("bird", "wesnoth-1.16-data/birds"), ("horse", "wesnoth-1.16-data/horse-hit"),
        ("horse", "wesnoth-1.16-data/horse-hit"), ("scream", "wesnoth-1.16-data/human-female-die")]
    assert {c.licence for c in clips} == {debian.WESNOTH_LICENCE}


def test_the_extra_packages_join_a_fetch_only_when_named(monkeypatch):
    from foleyflow.data import fetch
    from foleyflow.data.sources import debian as debian_source

    asked = []
    monkeypatch.setattr(debian_source, "debian_raw_clips", lambda say, packages=None: (asked.append(packages), ([], {}))[1])
    fetch.gather_raw_clips(("debian",), say=lambda _: None)
    fetch.gather_raw_clips(("debian-extra",), say=lambda _: None)
    assert asked == [None, debian_source.EXTRA_PACKAGES]
    assert "debian-extra" not in fetch.REAL_SOURCES and not set(debian_source.EXTRA_PACKAGES) & set(debian_source.PACKAGES)


def test_the_fetch_command_offers_exactly_the_library_sources():
    # The CLI spells its choices out (importing data.fetch would load torch before --help); they must not drift.
    from foleyflow.data import fetch
    from foleyflow.interfaces.cli import cli
    from foleyflow.interfaces.commands import load_all

    load_all()
    option = next(p for p in cli.commands["data"].commands["fetch"].params if p.name == "sources")
    assert tuple(option.type.choices) == fetch.SOURCES and tuple(option.default) == fetch.REAL_SOURCES


def test_drumkit_xml_labels_each_layer(tmp_path):
    kit = tmp_path / "usr/share/hydrogen/data/drumkits/TestKit"
    kit.mkdir(parents=True)
    for name in ("kick1.wav", "kick2.wav", "snare.wav"):
        (kit / name).write_bytes(_wav_bytes())
    (kit / "drumkit.xml").write_text(
        "<drumkit_info><name>TestKit</name><license>CC0</license><instrumentList>"
        "<instrument><id>0</id><name>Kick</name><layer><filename>kick1.wav</filename></layer>"
        "<layer><filename>kick2.wav</filename></layer></instrument>"
        "<instrument><id>1</id><name>Snare Rock</name><filename>snare.wav</filename></instrument>"
        "</instrumentList></drumkit_info>")
    clips = debian.drumkit_clips(tmp_path, [])
    assert sorted(c.label for c in clips) == ["kick_drum", "kick_drum", "snare_drum"]
    assert {c.recording for c in clips if c.label == "kick_drum"} == {"hydrogen-drumkits/TestKit/0"}
    assert all(c.licence == "CC0" for c in clips)


def test_midi_phrase_is_well_formed():
    data = render.phrase_midi(40, [60, 64, 67])
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    length = struct.unpack(">I", data[18:22])[0]
    assert data[14:18] == b"MTrk" and len(data) == 22 + length and data.endswith(b"\xff\x2f\x00")
    assert data.count(b"\x90") == 3


def test_missing_renderers_are_skipped_with_install_hint(monkeypatch):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    messages = []
    assert render.speech_raw_clips(messages.append) == ([], {})
    assert render.instrument_raw_clips(messages.append) == ([], {})
    assert "apt-get install espeak-ng" in messages[0] and "fluidsynth" in messages[1]


def test_missing_apt_get_skips_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path))
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    messages = []
    assert debian.download_package("0ad-data", messages.append) is None
    assert "apt-get download 0ad-data" in messages[0]


@pytest.mark.parametrize("source", ["synthetic"])
def test_fetch_synthetic_corpus_via_cli(tmp_path, source):
    from foleyflow.data.manifest import read_clips
    from foleyflow.interfaces.cli import main

    assert main(["data", "fetch", "--source", source, "--corpus", str(tmp_path), "--workers", "1", "--no-progress"]) == 0
    clips = read_clips(tmp_path)
    assert len(clips) == 70 and (tmp_path / "ATTRIBUTION.md").read_text().count("synthetic-") == 70
    assert all((tmp_path / "audio" / f"{c.clip_id}.wav").is_file() for c in clips)


def test_zip_members_decode_in_parallel_workers(tmp_path):
    """Forked workers must not share the parent's zip handle (its file offset is shared)."""
    import zipfile

    from foleyflow.data.corpus import write_corpus

    archive = tmp_path / "pkg/usr/share/games/0ad/mods/public/public.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(24):
            z.writestr(f"audio/actor/fauna/animal/cattle_{i:02d}.wav", _wav_bytes(0.3 + 0.01 * i))
            z.writestr(f"audio/ambient/weather/rain_{i:02d}.wav", _wav_bytes(3.0))
    raws = debian.zero_ad_clips(tmp_path / "pkg")
    assert len(raws) == 48
    messages = []
    clips = write_corpus(tmp_path / "corpus", raws, workers=2, progress=False, say=messages.append)
    assert len(clips) == 48 and not messages


def _zip_handle_id(path):
    return id(debian._zip(path))


def test_each_process_opens_its_own_zip_handle(tmp_path):
    import multiprocessing
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x.wav", _wav_bytes())
    parent = id(debian._zip(str(archive)))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_zip_handle_id, (str(archive),)) != parent
    assert id(debian._zip(str(archive))) == parent  # cached within a process
