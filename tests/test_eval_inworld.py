"""In-world backbones: training recipes through the shared trainer, mAP and recall@K."""

import json

import numpy as np
import pytest
import torch

from foleyflow.audio.io import write_wav
from foleyflow.evaluation.recipes import average_precision, mean_average_precision, recall_at_k

SMALL = [2, 2, 4, 4, 4, 8]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ap_by_definition(scores, positives):
    # AP = sum over positives of precision at that positive's rank / number of positives.
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if positives[i]:
            hits += 1
            total += hits / rank
    return total / hits


def test_average_precision_matches_its_definition():
    rng = np.random.default_rng(0)
    scores, positives = rng.normal(size=30), rng.random(30) < 0.3
    assert average_precision(scores, positives) == pytest.approx(_ap_by_definition(scores, positives), abs=1e-12)
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    assert mean_average_precision(np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]), targets) == 1.0


def test_recall_at_k_counts_captions_whose_clip_ranks_high_enough():
    similarity = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.3], [0.1, 0.2, 0.3]])  # caption 1 ranks its clip second
    assert recall_at_k(similarity, (1, 2)) == {1: pytest.approx(2 / 3), 2: 1.0}


def _clip_list(root):
    t = np.arange(8000) / 16_000
    rows = []
    for i in range(12):
        label = ["low", "high"][i % 2]
        audio = 0.3 * np.sin(2 * np.pi * (200 if label == "low" else 3000) * t)
        write_wav(root / f"{i}.wav", audio)
        rows.append({"path": f"{i}.wav", "labels": [label], "caption": f"a {label} tone", "split": ["train", "val", "test"][i % 3] if i >= 6 else "train"})
    (root / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "clips.jsonl"


def _config(root, recipe, clips, **options):
    return {"recipe": recipe, "recipe_options": {"clips": str(clips), "seconds": 0.5, "channels": SMALL, **options},
            "max_steps": 3, "batch_size": 4, "val_every": 3, "val_batches": 1, "checkpoint_every": 3, "log_every": 1,
            "ema_decay": None, "optimizer": {"lr": 0.001}}


def test_train_tagger_then_clap_then_held_out_figures(tmp_path, cli):
    from accelerate.state import AcceleratorState

    clips = _clip_list(tmp_path)
    (tmp_path / "tagger.json").write_text(json.dumps(_config(tmp_path, "tagger", clips)))
    AcceleratorState._reset_state(reset_partial_state=True)
    code, out, err = cli("train", "tagger", "--config", str(tmp_path / "tagger.json"), "--out", str(tmp_path / "run_tagger"))
    assert code == 0, err
    tagger_dir = tmp_path / "run_tagger" / "model"
    assert json.loads((tagger_dir / "config.json").read_text())["class_names"] == ["high", "low"]
    code, out, err = cli("eval", "tagger", "--model", str(tagger_dir), "--clips", str(clips))
    assert code == 0, err
    assert "on 2 test clips" in out and 0.0 <= float(out.split("mAP ")[1].split()[0]) <= 1.0

    (tmp_path / "clap.json").write_text(json.dumps(_config(tmp_path, "clap", clips, embed_dim=8, init_audio_from=str(tagger_dir))))
    AcceleratorState._reset_state(reset_partial_state=True)
    code, out, err = cli("train", "clap", "--config", str(tmp_path / "clap.json"), "--out", str(tmp_path / "run_clap"))
    assert code == 0, err
    clap_dir = tmp_path / "run_clap" / "model"
    assert json.loads((clap_dir / "config.json").read_text())["class"] == "InworldClap"
    code, out, err = cli("eval", "clap", "--model", str(clap_dir), "--clips", str(clips))
    assert code == 0, err
    assert "R@1" in out and "R@5 1.0000 on 2 test clips" in out  # two clips: both within the top 5


def test_clap_scorer_matches_the_backbone_and_thresholds(tmp_path):
    from foleyflow.evaluation.backbones.inworld import ClapModel, InworldClapBackbone, save_clap
    from foleyflow.evaluation.clap_filter import ClapScorer

    torch.manual_seed(0)
    save_clap(tmp_path / "clap", ClapModel(embed_dim=8, channels=SMALL))
    scorer = ClapScorer(tmp_path / "clap", batch_size=2)
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=8000).astype(np.float32) * 0.1 for _ in range(3)]
    captions = ["rain", "a dog", "a siren"]
    keep, scores = scorer.keep(clips, captions, threshold=-2.0)
    assert keep.all() and scores.shape == (3,)
    backbone = InworldClapBackbone(tmp_path / "clap")
    expected = [float(backbone.features(c)["audio_embedding"] @ t) for c, t in zip(clips, backbone.embed_text(captions))]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert not scorer.keep(clips, captions, threshold=1.0)[0].any()
