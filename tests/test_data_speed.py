"""Speed augmentation of train scenes (``data build --speed-range``; data.builder, data.recipes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foleyflow.data.builder import BuildConfig, scene_speeds
from foleyflow.data.datasets import TripletDataset
from foleyflow.data.manifest import read_jsonl
from foleyflow.data.recipes import NUM_SAMPLES, Part, change_speed
from foleyflow.interfaces.cli import main

RATE = 16000


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_a_faster_play_is_shorter_and_higher_by_the_speed(speed):
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)
    played = change_speed(tone, speed)
    assert played.dtype == np.float32
    assert abs(len(played) - RATE / speed) <= 1
    assert _peak_hz(played) == pytest.approx(1000 * speed, abs=2)
    assert change_speed(tone, 1.0) is tone


def test_a_part_at_its_recorded_speed_keeps_the_json_it_had_before_speeds():
    plain = Part("clip", 10, 0.5, 0, 100)
    assert "speed" not in plain.to_dict()  # so recipes and their cache keys are unchanged
    assert Part.from_dict(plain.to_dict()) == plain
    fast = Part("clip", 10, 0.5, 0, 100, speed=1.1)
    assert fast.to_dict()["speed"] == 1.1 and Part.from_dict(fast.to_dict()) == fast


def test_speeds_come_only_to_train_scenes_and_stay_in_range():
    config = BuildConfig(speed_range=0.2)
    for split in ("val", "test"):
        assert {next(scene_speeds(config, split, 3)) for _ in range(5)} == {1.0}
    assert next(scene_speeds(BuildConfig(), "train", 3)) == 1.0
    speeds = list(zip(range(200), scene_speeds(config, "train", 3)))
    values = np.array([s for _, s in speeds])
    assert values.min() >= 1 / 1.2 - 1e-4 and values.max() <= 1.2 + 1e-4
    assert values.min() < 0.9 and values.max() > 1.1  # the range is used, both ways


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    common = ["--bases", "20", "--seed", "0", "--workers", "1", "--no-progress", "--clap", "none"]
    assert main(["data", "build", "--source", "synthetic", "--out", str(root / "plain"), *common]) == 0
    assert main(["data", "build", "--corpus", str(root / "plain" / "corpus"), "--out", str(root / "fast"),
                 "--speed-range", "0.2", *common]) == 0
    return root / "plain", root / "fast"


def test_a_speed_build_changes_train_scenes_only_and_records_its_range(builds):
    plain, fast = ({row["scene_id"]: row for row in read_jsonl(b / "scenes.jsonl")} for b in builds)
    assert plain.keys() == fast.keys()
    for scene_id, row in plain.items():
        if not scene_id.startswith("train"):
            assert fast[scene_id] == row
            continue
        assert fast[scene_id]["labels"] == row["labels"]  # the same draw, at other speeds
        speeds = [p.get("speed", 1.0) for p in fast[scene_id]["parts"]] + [e["part"]["speed"] for e in fast[scene_id]["events"].values()]
        assert all(1 / 1.2 - 1e-4 <= s <= 1.2 + 1e-4 for s in speeds) and any(s != 1.0 for s in speeds)
    configs = [json.loads((b / "build.json").read_text())["config"] for b in builds]
    assert "speed_range" not in configs[0] and configs[1]["speed_range"] == 0.2


def test_a_sped_up_event_is_where_its_span_says_and_removing_it_gives_back_x(builds):
    data = TripletDataset("train", root=builds[1], tasks=("remove",))
    for i in range(len(data)):
        item = data[i]
        event = data.scenes[item["scene_id"]].events[data.triplets[i]["source"][1]]
        part = event["part"]
        x = data.render(item["scene_id"], "X")
        assert (item["target"] == x).all()
        changed = np.flatnonzero(item["source"] != x)
        start, end = event["span"]
        assert changed.size and start <= changed.min() and changed.max() < end
        played = (part.length or len(data.bank(part.clip_id)) - part.offset) / part.speed
        assert abs((end - start) - min(played, NUM_SAMPLES - start)) <= 1
