"""`foleyflow data ingest` on a tiny AudioCaps-style corpus, then `data build` on it unchanged."""

from __future__ import annotations

import csv

import numpy as np
import soundfile as sf

from foleyflow.data.datasets import TripletDataset
from foleyflow.data.manifest import read_clips, read_jsonl
from foleyflow.interfaces.cli import main

CAPTIONS = [
    "A dog barks", "A bell rings", "A man speaks", "Birds chirp", "A car horn honks", "Thunder rumbles",
    "A cat meows", "Water splashes", "A drill whirs", "A baby cries", "A man speaks while a dog barks and rain falls",
    "Wind blows and a door slams", "People talk, a dog barks, a car passes and a bell rings",
]


def _write_corpus(folder, rows_per_clip=1):
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, caption in enumerate(CAPTIONS):
        t = np.arange(int(16000 * (6 + i % 4))) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) * (rng.random(t.size) > 0.2)
        sf.write(str(folder / f"yt{i:02d}_30.wav"), np.stack([audio, audio], 1).astype(np.float32), 22050 if i % 2 else 16000)
        for _ in range(rows_per_clip):
            rows.append({"audiocap_id": str(1000 + i), "youtube_id": f"yt{i:02d}", "start_time": "30", "caption": caption})
    rows.append({"audiocap_id": "9999", "youtube_id": "missing", "start_time": "0", "caption": "A ghost"})
    return rows


def test_ingest_then_build(tmp_path, capsys):
    rows = _write_corpus(tmp_path / "audio", rows_per_clip=2)
    csv_path = tmp_path / "captions.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["audiocap_id", "youtube_id", "start_time", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    corpus = tmp_path / "corpus"
    assert main(["data", "ingest", "--csv", str(csv_path), "--audio-dir", str(tmp_path / "audio"), "--corpus", str(corpus),
                 "--split", "train", "--workers", "1", "--no-progress"]) == 0
    assert "1 rows skipped" in capsys.readouterr().out
    clips = {c.original_path: c for c in read_clips(corpus)}
    assert len(clips) == len(CAPTIONS)
    assert clips["yt00_30.wav"].captions == ["A dog barks", "A dog barks"] and clips["yt00_30.wav"].num_events == 1
    assert clips["yt10_30.wav"].num_events == 3 and clips["yt12_30.wav"].num_events == 4
    assert all(c.role == "clip" and c.num_samples <= 163840 for c in clips.values())

    out = tmp_path / "editing"
    assert main(["data", "build", "--corpus", str(corpus), "--out", str(out), "--bases", "3", "--seed", "0",
                 "--workers", "1", "--no-progress", "--clap", "none"]) == 0
    scenes = read_jsonl(out / "scenes.jsonl")
    four_events = clips["yt12_30.wav"].clip_id
    assert all(s["parts"][0]["clip_id"] != four_events for s in scenes)  # more than 3 events: never a base
    data = TripletDataset("train", root=out)
    assert len(data) == 6 * len(scenes)
    for i in range(len(data)):
        item = data[i]
        if item["task"] == "remove":
            assert np.array_equal(item["target"], data.render(item["scene_id"], "X"))
        assert all(end - start <= 4 * 16000 for start, end in item["edit_spans"])  # A/B cut to 4 s
    assert "Remove" in " ".join(t["instruction"] for t in data.triplets) or "Delete" in " ".join(t["instruction"] for t in data.triplets)


def test_ingest_needs_caption_column(tmp_path):
    (tmp_path / "audio").mkdir()
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("id,text\n1,hello\n")
    assert main(["data", "ingest", "--csv", str(csv_path), "--audio-dir", str(tmp_path / "audio"), "--corpus", str(tmp_path / "c")]) == 2
