"""In-world backbones: training recipes through the shared trainer, mAP and recall@K."""

import json

import numpy as np
import pytest
import torch

from foleyflow.audio.io import write_audio
from foleyflow.evaluation.heldout import average_precision, chance_recall, mean_average_precision, recall_at_k, retrieval_hits

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
        write_audio(root / f"{i}.wav", audio)
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
    config = json.loads((tagger_dir / "config.json").read_text())
    assert config["input_seconds"] == 0.5
    code, out, err = cli("eval", "tagger", "--model", str(tagger_dir), "--clips", str(clips), "--bootstrap", "20")
    assert code == 0, err
    assert "on 2 test clips" in out and 0.0 <= float(out.split("mAP ")[1].split()[0]) <= 1.0

    (tmp_path / "clap.json").write_text(json.dumps(_config(tmp_path, "clap", clips, embed_dim=8, init_audio_from=str(tagger_dir))))
    AcceleratorState._reset_state(reset_partial_state=True)
    code, out, err = cli("train", "clap", "--config", str(tmp_path / "clap.json"), "--out", str(tmp_path / "run_clap"))
    assert code == 0, err
    clap_dir = tmp_path / "run_clap" / "model"
    assert json.loads((clap_dir / "config.json").read_text())["class"] == "InworldClap"
    code, out, err = cli("eval", "clap", "--model", str(clap_dir), "--clips", str(clips), "--bootstrap", "20")
    assert code == 0, err
    # the printed recall is the trained model's own, as the library computes it on the same clips
    from foleyflow.evaluation.heldout import clap_figures, clap_pairs

    expected = clap_figures(clap_pairs(clap_dir, clips, "test"), resamples=20, seed=0)
    assert f"R@1 {expected.recall[1].format(4)}, R@5 {expected.recall[5].format(4)} over 2 captions x 2 test clips" in out
    assert f"chance R@1 {expected.chance[1]:.4f}" in out


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
    # events shorter than the trunk's 32 frames are padded inside the model: the filter scores
    # them as the backbone does instead of failing
    short = [clip[:1200] for clip in clips]
    expected = [float(backbone.features(c)["audio_embedding"] @ t) for c, t in zip(short, backbone.embed_text(captions))]
    np.testing.assert_allclose(scorer.scores(short, captions), expected, atol=1e-5)


def test_retrieval_counts_any_clip_that_carries_the_caption():
    # caption 0 belongs to clips 0 and 2; clip 2 ranks first, so caption 0 is retrieved at 1
    similarity = np.array([[0.1, 0.5, 0.9], [0.2, 0.8, 0.3]])
    relevant = np.array([[True, False, True], [False, True, False]])
    hits = retrieval_hits(similarity, (1,), relevant)
    assert hits[1].tolist() == [True, True]
    assert retrieval_hits(similarity, (1,), np.array([[True, False, False], [False, True, False]]))[1].tolist() == [False, True]


def test_chance_recall_matches_enumerating_every_ranking():
    import itertools

    relevant = np.array([[True, False, True, False], [False, False, False, True]])
    for k in (1, 2):
        rankings = list(itertools.permutations(range(4)))
        expected = np.mean([[any(relevant[q, c] for c in order[:k]) for order in rankings] for q in range(2)])
        assert chance_recall(relevant, k) == pytest.approx(expected)
    assert chance_recall(relevant, 5) == 1.0  # k beyond the gallery


def test_contrastive_loss_spreads_the_target_over_positives():
    from foleyflow.evaluation.backbones.inworld import ClapModel

    torch.manual_seed(0)
    model = ClapModel(embed_dim=4, channels=SMALL)
    audio = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    logits = (model.logit_scale.exp() * audio @ text.T).detach().numpy()

    def soft_ce(rows, targets):
        log_p = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        return float(-(targets * log_p).sum(axis=1).mean())

    eye = np.eye(3)
    model.requires_grad_(False)
    assert float(model.contrastive_loss(audio, text)) == pytest.approx((soft_ce(logits, eye) + soft_ce(logits.T, eye)) / 2, abs=1e-5)
    positives = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    target = np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]])
    loss = float(model.contrastive_loss(audio, text, positives))
    assert loss == pytest.approx((soft_ce(logits, target) + soft_ce(logits.T, target)) / 2, abs=1e-5)


def test_clip_list_reads_a_corpus_manifest_and_crops_short_clips_anywhere(tmp_path):
    from foleyflow.evaluation.recipes import crop, read_clip_list

    (tmp_path / "audio").mkdir()
    write_audio(tmp_path / "audio" / "dog-1.wav", np.full(100, 0.5))
    row = {"clip_id": "dog-1", "label": "dog", "captions": ["A dog barks", "A dog yaps"], "split": "val", "role": "event"}
    (tmp_path / "clips.jsonl").write_text(json.dumps(row) + "\n")
    (clip,) = read_clip_list(tmp_path / "clips.jsonl")
    assert clip.path == tmp_path / "audio" / "dog-1.wav" and clip.labels == ("dog",)
    assert clip.captions == ("A dog barks", "A dog yaps") and clip.caption == "A dog barks" and clip.split == "val"

    audio = np.ones(10, dtype=np.float32)
    starts = {int(np.flatnonzero(crop(audio, 40, random=True))[0]) for _ in range(40)}
    assert len(starts) > 5 and max(starts) <= 30  # a random offset, the clip always whole
    assert all(crop(audio, 40, random=True).sum() == 10 for _ in range(5))
    assert np.flatnonzero(crop(audio, 40, random=False)).tolist() == list(range(10))


def test_tagger_front_end_is_not_trained():
    from foleyflow.evaluation.backbones.inworld import build_tagger

    model = build_tagger(["a", "b"], tuple(SMALL))
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW"}


def test_registry_lists_the_backbone_recipes_without_importing_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import foleyflow

    code = "import sys, foleyflow.training.registry as r; print(sorted(r.RECIPES)); print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(foleyflow.__file__).parents[1])}  # this checkout, not an installed copy
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split("\n")
    assert "'clap'" in out[0] and "'tagger'" in out[0] and out[1] == "False"


def test_equal_error_threshold_balances_the_two_error_rates():
    from foleyflow.evaluation.heldout import equal_error_threshold

    true_scores = np.array([0.5, 0.6, 0.7, 0.8])
    mismatched = np.array([0.1, 0.2, 0.3, 0.55])
    cut = equal_error_threshold(true_scores, mismatched)
    assert (true_scores <= cut).mean() == (mismatched > cut).mean() == 0.25
    assert equal_error_threshold(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 0.2  # separable: every pair right


def test_bench_backbones_prints_figures_with_cis_and_stores_the_calibration(tmp_path, cli):
    from foleyflow.evaluation.backbones.inworld import ClapModel, build_tagger, save_clap, save_tagger

    clips = _clip_list(tmp_path)
    save_tagger(tmp_path / "tagger", build_tagger(["high", "low"], tuple(SMALL)), ["high", "low"], input_seconds=0.5)
    save_clap(tmp_path / "clap", ClapModel(embed_dim=8, channels=SMALL), input_seconds=0.5, dtype=torch.float16)
    code, out, err = cli("bench", "backbones", "--tagger", str(tmp_path / "tagger"), "--clap", str(tmp_path / "clap"), "--clips", str(clips),
                         "--split", "train", "--bootstrap", "50", "--json", str(tmp_path / "b.json"), "--write-calibration")
    assert code == 0, err
    figures = json.loads((tmp_path / "b.json").read_text())
    mAP = figures["tagger"]["mAP"]
    assert mAP["ci95_low"] <= mAP["value"] <= mAP["ci95_high"] and figures["tagger"]["clips"] == 8 and figures["tagger"]["seconds"] == 0.5
    assert f"mAP {mAP['value']:.4f} [{mAP['ci95_low']:.4f}, {mAP['ci95_high']:.4f}] on 8 train clips" in out
    # two captions ("a low tone", "a high tone") over the 8 train clips, four clips each
    assert figures["clap"]["queries"] == 2 and figures["clap"]["chance"]["R@1"] == pytest.approx(0.5)
    assert figures["clap"]["recall"]["R@5"]["value"] == 1.0  # five clips always include one of each half
    calibration = figures["clap_calibration"]
    assert calibration["true_pairs"] == 8 and calibration["mismatched_pairs"] == 8 and "equal-error threshold" in out
    assert json.loads((tmp_path / "clap" / "config.json").read_text())["calibration"] == calibration


def test_clap_positives_by_caption_or_by_label(tmp_path):
    from foleyflow.errors import InputError
    from foleyflow.evaluation.recipes import ClapRecipe

    clips = _clip_list(tmp_path)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    captions = ["a dog", "a hound", "a dog", "a dog"]
    by_caption = ClapRecipe({"clips": str(clips)}).positives(targets, captions)
    assert by_caption.tolist() == [[c1 == c2 for c2 in captions] for c1 in captions]
    by_label = ClapRecipe({"clips": str(clips), "positives": "label"}).positives(targets, captions)
    assert by_label[0, 1] and by_label[1, 0] and by_label[0, 2] and not by_label[1, 2]  # same label set, or same caption
    assert not by_label[1, 3]  # an unlabelled clip matches by caption only
    assert ClapRecipe({"clips": str(clips), "positives": "none"}).positives(targets, captions) is None
    with pytest.raises(InputError, match="freeze_audio needs init_audio_from"):
        ClapRecipe({"clips": str(clips), "freeze_audio": True})


def test_clap_with_a_frozen_tagger_trunk_trains_only_the_rest(tmp_path, cli):
    from accelerate.state import AcceleratorState
    from safetensors.torch import load_file

    from foleyflow.evaluation.backbones.inworld import build_tagger, save_tagger

    clips = _clip_list(tmp_path)
    save_tagger(tmp_path / "tagger", build_tagger(["high", "low"], tuple(SMALL)), ["high", "low"])
    frozen = _config(tmp_path, "clap", clips, embed_dim=8, init_audio_from=str(tmp_path / "tagger"), freeze_audio=True, frozen_crops=2)
    (tmp_path / "frozen.json").write_text(json.dumps(frozen))
    AcceleratorState._reset_state(reset_partial_state=True)
    code, out, err = cli("train", "clap", "--config", str(tmp_path / "frozen.json"), "--out", str(tmp_path / "run"))
    assert code == 0, err
    tagger_weights = load_file(str(tmp_path / "tagger" / "model.safetensors"))
    clap_weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    trunk = [k for k in tagger_weights if not k.startswith("fc_audioset")]
    assert all(torch.equal(clap_weights[f"audio_encoder.{k}"], tagger_weights[k]) for k in trunk)  # BatchNorm statistics too


def test_short_clips_are_zero_padded_to_the_trunks_minimum_and_longer_ones_left_alone(tmp_path):
    from foleyflow.evaluation.backbones.inworld import MIN_SAMPLES, InworldClapBackbone, InworldTaggerBackbone, build_tagger, save_clap, save_tagger, ClapModel

    torch.manual_seed(0)
    save_tagger(tmp_path / "tagger", build_tagger(["a", "b"], (2, 2, 4, 4, 4, 8)), ["a", "b"])
    save_clap(tmp_path / "clap", ClapModel(embed_dim=8, channels=(2, 2, 4, 4, 4, 8)))
    tagger, clap = InworldTaggerBackbone(tmp_path / "tagger"), InworldClapBackbone(tmp_path / "clap")
    short = 0.1 * np.random.default_rng(0).standard_normal(1600).astype(np.float32)  # 0.1 s: 11 mel frames
    padded = np.pad(short, (0, MIN_SAMPLES - short.size))
    for backbone, key in ((tagger, "embedding"), (clap, "audio_embedding")):
        np.testing.assert_array_equal(backbone.features(short)[key], backbone.features(padded)[key])
    longer = np.concatenate([padded, short[:80]])  # at the minimum already: not padded further
    with torch.no_grad():
        direct = tagger.model(torch.from_numpy(longer)[None])["embedding"][0].numpy()
    np.testing.assert_array_equal(tagger.features(longer)["embedding"], direct)
