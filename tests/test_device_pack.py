"""tools/device/pack.py: the train clips travel losslessly as FLAC, under the cap; the test split never does."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import soundfile as sf

PACK = Path(__file__).resolve().parents[1] / "tools" / "device" / "pack.py"


def _pack_module():
    spec = importlib.util.spec_from_file_location("device_pack", PACK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_audio_keeps_train_clips_exactly_and_stops_at_the_budget(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records, originals = [], {}
    for k in range(8):
        clip_id, split = f"clip{k}", ("test" if k % 4 == 3 else "train")
        audio = (rng.standard_normal(4000) * 3000).astype(np.int16)
        sf.write(corpus / "audio" / f"{clip_id}.wav", audio, 16000, subtype="PCM_16")
        records.append({"clip_id": clip_id, "split": split, "label": "dog", "role": "event", "captions": ["A dog barks"],
                        "source": "test", "original_path": f"{clip_id}.wav", "licence": "CC0", "recording": clip_id})
        originals[clip_id] = audio
    (corpus / "clips.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    pack = _pack_module()

    everything = pack.pack_audio(corpus, tmp_path / "all", budget=10**9, seed=0)
    assert sorted(everything) == sorted(r["clip_id"] for r in records if r["split"] == "train")
    for clip_id in everything:
        audio, rate = sf.read(tmp_path / "all" / f"{clip_id}.flac", dtype="int16")
        assert rate == 16000 and np.array_equal(audio, originals[clip_id])

    one_size = (tmp_path / "all" / f"{everything[0]}.flac").stat().st_size
    some = pack.pack_audio(corpus, tmp_path / "some", budget=int(2.5 * one_size), seed=0)
    sizes = sum(p.stat().st_size for p in (tmp_path / "some").glob("*.flac"))
    assert 1 <= len(some) < len(everything) and sizes <= 2.5 * one_size
    assert sorted(p.stem for p in (tmp_path / "some").glob("*.flac")) == sorted(some)
