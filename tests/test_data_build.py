"""The editing set built from the synthetic corpus: exact mixes, balance, splits, resume, CLAP filter."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from foleyflow.data.builder import BuildConfig, build_editing_set
from foleyflow.data.datasets import ClipDataset, TripletDataset
from foleyflow.data.manifest import read_clips, read_jsonl
from foleyflow.data.recipes import MIX_PEAK_LIMIT, NUM_SAMPLES, edit_mask
from foleyflow.interfaces.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("editing")
    code = main(["data", "build", "--source", "synthetic", "--out", str(out), "--bases", "20", "--seed", "0",
                 "--workers", "1", "--no-progress", "--clap", "none"])
    assert code == 0
    return out


def _independent_placement(corpus, part: dict) -> np.ndarray:
    """Re-derive a part's contribution from the WAV on disk, without the library's render code."""
    audio, rate = sf.read(str(corpus / "audio" / f"{part['clip_id']}.wav"), dtype="float32")
    assert rate == 16000
    end = len(audio) if part["length"] == 0 else part["offset"] + part["length"]
    audio = audio[part["offset"]:end]
    frame = np.zeros(NUM_SAMPLES, dtype=np.float32)
    stop = min(NUM_SAMPLES, part["onset"] + len(audio))
    frame[part["onset"]:stop] = audio[: stop - part["onset"]] * np.float32(part["gain"])
    return frame


def test_build_writes_120_balanced_triplets(built):
    triplets = read_jsonl(built / "triplets.jsonl")
    assert len(triplets) == 120
    assert Counter(t["task"] for t in triplets) == {"add": 40, "remove": 40, "replace": 40}
    per_split = Counter((t["split"], t["task"]) for t in triplets)
    for split in ("train", "val", "test"):
        assert per_split[(split, "add")] == per_split[(split, "remove")] == per_split[(split, "replace")] > 0
    build = json.loads((built / "build.json").read_text())
    assert build["clap_filter"]["applied"] is False and "--clap none" in build["clap_filter"]["reason"]
    assert not (built / "clap_scores.jsonl").exists()


def test_remove_gives_back_x_exactly_and_mixes_match_recipes(built):
    corpus = built / "corpus"
    for split in ("train", "val", "test"):
        data = TripletDataset(split, root=built)
        for item in (data[i] for i in range(len(data))):
            scene = data.scenes[item["scene_id"]]
            x = data.render(item["scene_id"], "X")
            a_events = {k: _independent_placement(corpus, v["part"].to_dict()) for k, v in scene.events.items()}
            xa, xb = x + a_events["A"], x + a_events["B"]
            assert item["source"].shape == item["target"].shape == (NUM_SAMPLES,)
            expected = {"X": x, "XA": xa, "XB": xb}
            t = data.triplets[[tt["triplet_id"] for tt in data.triplets].index(item["triplet_id"])]
            assert np.array_equal(item["source"], expected[t["source"]])
            assert np.array_equal(item["target"], expected[t["target"]])
            if item["task"] == "remove":
                assert (item["target"] == x).all()  # Remove(X + A) == X, sample for sample
            assert max(np.abs(item["source"]).max(), np.abs(item["target"]).max()) <= MIX_PEAK_LIMIT


def test_edit_region_covers_every_changed_sample(built):
    data = TripletDataset("train", root=built)
    for i in range(0, len(data), 5):
        item = data[i]
        changed = np.flatnonzero(item["source"] != item["target"])
        inside = np.zeros(NUM_SAMPLES, dtype=bool)
        for start, end in item["edit_spans"]:
            inside[start:end] = True
        assert changed.size > 0 and inside[changed].all()
        assert item["edit_mask"].shape == (1024,) and item["edit_mask"][changed // 160].all()


def test_edit_mask_marks_overlapping_hops():
    mask = edit_mask([[320, 481]], num_frames=10, hop=160)
    assert mask.tolist() == [False, False, True, True, False, False, False, False, False, False]
    assert not edit_mask([], num_frames=4).any()


def test_splits_are_by_recording(built):
    clips = read_clips(built / "corpus")
    split_of = {}
    for clip in clips:
        assert split_of.setdefault(clip.recording, clip.split) == clip.split
    for label in {c.label for c in clips}:
        assert {c.split for c in clips if c.label == label} == {"train", "val", "test"}


def test_scene_events_stay_in_their_split(built):
    clips = {c.clip_id: c for c in read_clips(built / "corpus")}
    for row in read_jsonl(built / "scenes.jsonl"):
        used = [p["clip_id"] for p in row["parts"]] + [e["part"]["clip_id"] for e in row["events"].values()]
        assert {clips[c].split for c in used} == {row["split"]}
        labels = row["labels"] + [row["events"]["A"]["label"], row["events"]["B"]["label"]]
        assert len(labels) == len(set(labels)) and len(row["labels"]) <= 3


def test_build_is_idempotent_and_resumes(built, tmp_path):
    out = tmp_path / "again"
    config = BuildConfig(bases=20, seed=0, chunk_size=3)
    build_editing_set(built / "corpus", out, config, workers=1, progress=False)
    first = (out / "triplets.jsonl").read_bytes()
    assert first == (built / "triplets.jsonl").read_bytes()  # chunking does not change the result
    (out / "chunks" / "train-0000003.jsonl").unlink()
    report = build_editing_set(built / "corpus", out, config, workers=1, progress=False)
    assert report["render"]["triplets"] == 18  # only the missing chunk was rendered again
    assert (out / "triplets.jsonl").read_bytes() == first


def test_other_settings_in_the_same_folder_are_refused(built):
    code = main(["data", "build", "--source", "synthetic", "--out", str(built), "--bases", "20", "--seed", "1",
                 "--workers", "1", "--no-progress", "--clap", "none"])
    assert code == 2


def test_parallel_build_matches_serial(built, tmp_path):
    build_editing_set(built / "corpus", tmp_path / "par", BuildConfig(bases=20, seed=0, chunk_size=4), workers=2, progress=False)
    assert (tmp_path / "par" / "triplets.jsonl").read_bytes() == (built / "triplets.jsonl").read_bytes()


def test_clap_scorer_filters_and_rebalances(built, tmp_path):
    def scorer(audio, captions):
        assert audio.dtype == np.float32 and audio.shape[1] == NUM_SAMPLES
        return np.array([0.1 if "hiss" in c or "noise" in c.lower() else 0.5 for c in captions])

    report = build_editing_set(built / "corpus", tmp_path / "f", BuildConfig(bases=20, seed=0), workers=1,
                               scorer=scorer, progress=False)
    assert report["clap_filter"]["applied"] and report["clap_filter"]["dropped"] > 0
    triplets = read_jsonl(tmp_path / "f" / "triplets.jsonl")
    assert all("noise" not in t["target_caption"].lower() for t in triplets)
    for split, counts in report["counts"].items():
        assert len(set(counts.values())) == 1


def test_clip_dataset_items(built):
    data = ClipDataset("val", corpus_dir=built / "corpus", num_samples=NUM_SAMPLES)
    item = data[0]
    assert item["audio"].dtype == np.float32 and item["audio"].shape == (NUM_SAMPLES,)
    assert item["role"] in ("event", "bed") and item["caption"] in item["captions"] and item["label"] in data.classes
    raw = ClipDataset("val", corpus_dir=built / "corpus")[0]["audio"]
    assert 0 < raw.size < NUM_SAMPLES or item["role"] == "bed"


def test_stats_command(built, capsys):
    assert main(["data", "stats", "--corpus", str(built / "corpus"), "--out", str(built)]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "96 triplets" in text and "add 32" in text and "CLAP filter: skipped" in text


def test_unknown_split_is_input_error(built):
    from foleyflow.errors import InputError

    with pytest.raises(InputError):
        TripletDataset("dev", root=built)


def test_materialized_mixes_equal_the_recipes(built, tmp_path):
    import shutil

    from foleyflow.data.materialize import materialize_mixes, mix_path

    root = tmp_path / "m"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("corpus", "chunks"))
    assert materialize_mixes(root, progress=False) == 60
    data = TripletDataset("test", root=root)
    item = data[0]
    t = data.triplets[0]
    on_disk, rate = sf.read(str(mix_path(root, t["scene_id"], t["target"])), dtype="float32")
    assert rate == 16000 and np.array_equal(on_disk, item["target"])
    assert materialize_mixes(root, progress=False) == 0  # already there


def test_build_without_a_corpus_is_input_error(tmp_path, capsys):
    assert main(["data", "build", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "not a foleyflow corpus" in capsys.readouterr().err


def test_build_filters_with_the_shipped_clap_by_default_and_records_every_score(built, tmp_path, monkeypatch, capsys):
    import torch

    import foleyflow.models.checkpoint as checkpoint
    from foleyflow.evaluation.backbones.inworld import ClapModel, save_clap

    torch.manual_seed(0)
    shipped = tmp_path / "pretrained"
    save_clap(shipped / "clap", ClapModel(embed_dim=8, channels=(2, 2, 4, 4, 4, 8)))  # a tiny stand-in for the shipped CLAP
    monkeypatch.setattr(checkpoint, "PRETRAINED_ROOT", shipped)
    scores_path = tmp_path / "f" / "clap_scores.jsonl"
    # a random CLAP's cosines sit near 0: the paper's 0.35 drops most mixes, -1 keeps all
    args = ["data", "build", "--corpus", str(built / "corpus"), "--out", str(tmp_path / "f"), "--bases", "20", "--seed", "0",
            "--workers", "1", "--no-progress"]
    assert main(args + ["--clap-threshold", "-1"]) == 0
    build = json.loads((tmp_path / "f" / "build.json").read_text())["clap_filter"]
    assert build["applied"] and build["threshold"] == -1.0 and build["dropped"] == 0 and build["scorer"] == "in-world CLAP (clap)"
    rows = read_jsonl(scores_path)
    scenes = read_jsonl(tmp_path / "f" / "scenes.jsonl")
    assert len(rows) == 3 * len(scenes) and {r["mix"] for r in rows} == {"X", "XA", "XB"}

    median = float(np.median([r["score"] for r in rows]))
    assert main(args + ["--clap-threshold", str(median)]) == 0
    build = json.loads((tmp_path / "f" / "build.json").read_text())["clap_filter"]
    below = {(r["scene_id"], r["mix"]) for r in rows if r["score"] <= median}
    expected_drop = sum((t["scene_id"], t["source"]) in below or (t["scene_id"], t["target"]) in below
                        for t in read_jsonl(built / "triplets.jsonl"))  # built: the same scenes, unfiltered and balanced
    assert build["dropped"] >= expected_drop > 0
    capsys.readouterr()
    assert main(["data", "stats", "--corpus", str(built / "corpus"), "--out", str(tmp_path / "f")]) == 0
    assert f"removed {build['dropped']} triplets, kept {build['kept']}" in capsys.readouterr().out

    assert main(args + ["--clap-threshold", "calibrated"]) == 2
    assert "has no measured threshold" in capsys.readouterr().err


def test_bench_triplets_of_a_task_subset_are_the_full_draws(built):
    """`bench edit --tasks`: a task's triplets do not depend on which other tasks are drawn."""
    from foleyflow.errors import InputError
    from foleyflow.pipelines.edit_bench import test_triplets

    full = test_triplets("test", 6, 0, str(built))
    ids = lambda items: [(t["task"], t["triplet_id"]) for t in items]  # noqa: E731
    for subset in (["add"], ["remove"], ["replace", "add"]):
        part = test_triplets("test", 2 * len(subset), 0, str(built), subset)
        assert ids(part) == [pair for pair in ids(full) if pair[0] in subset]
    assert "event_audio" in test_triplets("test", 1, 0, str(built), ["add"])[0]
    with pytest.raises(InputError, match="tasks must be among"):
        test_triplets("test", 3, 0, str(built), ["move"])


def test_a_replace_target_is_its_base_plus_the_new_event_at_its_onset(built):
    """`bench edit --replace-onset aligned` re-places the new event on the bare scene: at the true
    onset that must be the data set's own target, sample for sample."""
    from foleyflow.errors import InputError
    from foleyflow.pipelines.edit_bench import shifted, test_triplets

    item = test_triplets("test", 1, 0, str(built), ["replace"])[0]
    rebuilt = item["base_audio"] + shifted(item["event_audio"], item["event_onset"], item["target"].size)
    assert np.array_equal(rebuilt, item["target"]) and not np.array_equal(item["base_audio"], item["source"])
    assert item["event_onset"] in [start for start, _ in item["edit_spans"]]
    true = test_triplets("test", 1, 0, str(built), ["replace"], replace_onset="true")[0]
    assert "event_audio" not in true and "base_audio" not in true and true["triplet_id"] == item["triplet_id"]
    with pytest.raises(InputError, match="replace_onset must be one of aligned, true"):
        test_triplets("test", 1, 0, str(built), ["replace"], replace_onset="free")


def test_another_clip_of_the_class_is_placed_and_levelled_like_the_event(built):
    """`bench edit --perfect-sampler`: the new event drawn again from another clip of its class, at
    the same onset and by the data set's level rule."""
    from dataclasses import replace

    from foleyflow.data.builder import another_clip_of_class
    from foleyflow.data.corpus import active_rms
    from foleyflow.data.recipes import placed, segment

    data = TripletDataset("test", root=built)
    clips = read_clips(built / "corpus")
    by_id = {c.clip_id: c for c in clips}
    scene = next(iter(data.scenes.values()))
    event = scene.events["A"]
    x = scene.render("X", data.bank)
    part = another_clip_of_class(scene, "A", x, clips, data.bank, np.random.default_rng(0), data.event_seconds)
    own = by_id[event["part"].clip_id]
    drawn = by_id[part.clip_id]
    assert drawn.label == own.label and drawn.clip_id != own.clip_id and part.onset == event["part"].onset
    kin = [c for c in clips if c.label == own.label and c.clip_id != own.clip_id]
    if any(c.recording != own.recording and c.split == scene.split for c in kin):
        assert drawn.recording != own.recording and drawn.split == scene.split
    else:  # this corpus keeps each class's recordings in different splits: another split's recording
        assert drawn.recording != own.recording
    same_recording = [own] + [c for c in kin if c.recording == own.recording]
    if len(same_recording) > 1:  # with no other recording, another cut of the same one
        cut = another_clip_of_class(scene, "A", x, same_recording, data.bank, np.random.default_rng(0), data.event_seconds)
        assert cut.clip_id != own.clip_id and by_id[cut.clip_id].recording == own.recording
    wanted = active_rms(x) * 10 ** (event["relative_db"] / 20)  # the level rule, lowered only against clipping
    level = active_rms(segment(data.bank(part.clip_id), replace(part, gain=1.0))) * part.gain
    assert level <= wanted * 1.0001 and np.abs(x + placed(part, data.bank)).max() <= MIX_PEAK_LIMIT
    if np.abs(x + placed(replace(part, gain=wanted / level * part.gain), data.bank)).max() <= MIX_PEAK_LIMIT:
        assert level == pytest.approx(wanted, rel=1e-4)
    assert another_clip_of_class(scene, "A", x, [own], data.bank, np.random.default_rng(0)) is None  # no other clip


def test_bench_triplets_carry_a_perfect_sampler_output_on_request(built):
    from foleyflow.pipelines.edit_bench import test_triplets

    items = test_triplets("test", 3, 0, str(built), perfect_sampler=True)
    for item in items:
        if item["task"] == "remove":
            assert "perfect_sampler_audio" not in item
            continue
        out = item["perfect_sampler_audio"]
        base = item.get("base_audio", item["source"])
        assert out.shape == item["target"].shape and not np.array_equal(out, item["target"]) and np.abs(out - base).max() > 0
    again = test_triplets("test", 3, 0, str(built), perfect_sampler=True)
    assert all(np.array_equal(a.get("perfect_sampler_audio", 0), b.get("perfect_sampler_audio", 0)) for a, b in zip(items, again))
    assert "perfect_sampler_audio" not in test_triplets("test", 3, 0, str(built))[0]
