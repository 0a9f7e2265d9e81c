"""LAION-CLAP from a local transformers-format folder: tiny random model, CLAP-score conventions."""

import json

import numpy as np
import pytest
import torch

from foleyflow.errors import InputError
from foleyflow.evaluation.backbones.laion_clap import LaionClapBackbone, int16_round_trip


@pytest.fixture(scope="module")
def tiny_clap_folder(tmp_path_factory):
    from transformers import ClapConfig, ClapModel, RobertaTokenizerFast

    root = tmp_path_factory.mktemp("laion_clap")
    symbols = [chr(c) for c in range(33, 127)] + ["Ġ"]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{c: i + 4 for i, c in enumerate(symbols)}}
    vocab["<mask>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    RobertaTokenizerFast(vocab_file=str(root / "vocab.json"), merges_file=str(root / "merges.txt")).save_pretrained(root)
    torch.manual_seed(0)
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=80),
        audio_config=dict(hidden_size=32, patch_embeds_hidden_size=4, depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1]),
        projection_dim=8,
    )
    ClapModel(config).save_pretrained(root)
    return root


def test_int16_round_trip_quantises_and_clips():
    audio = np.array([0.5, 1.5, -2.0, 1e-6], dtype=np.float32)
    np.testing.assert_allclose(int16_round_trip(audio), [16383 / 32767, 1.0, -1.0, 0.0], atol=1e-7)


def test_audio_beyond_ten_seconds_is_cropped_deterministically(tiny_clap_folder):
    backbone = LaionClapBackbone(tiny_clap_folder)
    audio = (np.random.default_rng(0).normal(size=48_000 * 12) * 0.1).astype(np.float32)
    first = backbone.features(audio)["audio_embedding"]
    np.testing.assert_array_equal(first, backbone.features(audio)["audio_embedding"])
    np.testing.assert_allclose(first, backbone.features(audio[: 48_000 * 10])["audio_embedding"], atol=1e-6)
    assert first.shape == (8,) and backbone.embed_text(["a dog barks", "rain"]).shape == (2, 8)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(InputError, match="config.json missing"):
        LaionClapBackbone(tmp_path)


def test_eval_uses_laion_clap_at_48_khz(tiny_clap_folder, tmp_path, cli):
    from foleyflow.audio.io import write_audio

    (tmp_path / "gen").mkdir()
    for i in range(2):
        write_audio(tmp_path / "gen" / f"c{i}.wav", np.sin(np.arange(16_000) * (0.1 + i / 10)) * 0.3)
    (tmp_path / "captions.csv").write_text("name,caption\nc0,a hum\nc1,a whistle\n")
    code, out, err = cli("eval", "--generated", str(tmp_path / "gen"), "--captions", str(tmp_path / "captions.csv"),
                         "--backbone", f"laion-clap:{tiny_clap_folder}", "--no-cache", "--bootstrap", "5", "--json", str(tmp_path / "o.json"))
    assert code == 0, err
    assert "LAION-CLAP" in out
    assert -1 <= json.loads((tmp_path / "o.json").read_text())["figures"]["CLAP"]["value"] <= 1
